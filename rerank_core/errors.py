"""Typed errors raised by the core.

Every error carries a message that says what went wrong and what to do next. The pages turn them
into ``st.error`` at the boundary; the command line prints them; nothing here prints and returns
None.
"""

from __future__ import annotations


class RerankError(Exception):
    """Base class for every error the core raises on purpose."""

    kind = "error"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(message if not hint else f"{message} {hint}")

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} Fix: {self.hint}"


class BackendUnavailable(RerankError):
    """A method cannot run here: a package is missing, weights are absent, a key is not set."""

    kind = "unavailable"


class ModelNotFound(BackendUnavailable):
    """Model weights were not found locally and the hub cannot be reached."""

    kind = "model-not-found"

    def __init__(self, model: str, looked_in: list[str], *, hint: str | None = None) -> None:
        self.model = model
        self.looked_in = list(looked_in)
        where = "; ".join(looked_in) if looked_in else "nowhere"
        super().__init__(
            f"Model '{model}' is not available: looked in {where}.",
            hint=hint
            or (
                "download it once with network access (it is then cached), or put the model "
                "folder under the configured models directory (RERANK_MODELS_DIR) or give its "
                "local path as the model."
            ),
        )


class MissingAPIKey(BackendUnavailable):
    kind = "missing-api-key"


class HostedCallError(RerankError):
    """A hosted API call failed (after retries where they apply)."""

    kind = "hosted-call-failed"

    def __init__(
        self, message: str, *, status: int | None = None, hint: str | None = None, unreachable: bool = False
    ):
        self.status = status
        self.unreachable = unreachable  # no connection could be made (nothing answered)
        super().__init__(message, hint=hint)


class HostedTimeout(HostedCallError):
    kind = "timeout"


class MethodFailed(RerankError):
    """A local method raised while scoring."""

    kind = "failed"


class InvalidMethod(RerankError):
    """A method name or option the registry does not know."""

    kind = "invalid-method"


class CorpusFormatError(RerankError):
    """Input data that cannot be read. Names the file and, where known, the line."""

    kind = "corpus-format"

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        hint: str | None = None,
    ) -> None:
        self.file = file
        self.line = line
        where = ""
        if file:
            where = f"{file}"
            if line is not None:
                where += f", line {line}"
            where += ": "
        super().__init__(where + message, hint=hint)


class ConfigError(RerankError):
    kind = "config"


class EngineSettingError(ConfigError):
    """A search engine (or database) shows that a setting is wrong: a missing index, collection or
    table, an unknown field or column, a query it refuses. ``setting`` names what to change
    (``[methods.opensearch] index``)."""

    kind = "engine-setting"

    def __init__(self, message: str, *, setting: str, hint: str | None = None) -> None:
        self.setting = setting
        super().__init__(message, hint=hint or f"fix {setting} in the settings file")
