"""Small helpers shared by the local neural rerankers (cross-encoder, ColBERT, FlashRank)."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

from rerank_core.errors import InvalidMethod


def check_options(method: str, options: Mapping[str, Any], known: set[str]) -> None:
    """Raise :class:`InvalidMethod` for an option the method does not take (a typo in the config)."""
    unknown = sorted(set(options) - known)
    if unknown:
        raise InvalidMethod(
            f"{method} does not take the option(s) {', '.join(map(repr, unknown))}",
            hint=f"{method} options are: {', '.join(sorted(known))}",
        )


def positive_int(method: str, options: Mapping[str, Any], key: str, default: int | None) -> int | None:
    """``options[key]`` as a positive int (``default`` when absent or None)."""
    value = options.get(key)
    if value is None:
        return default
    try:
        number = int(value)
        valid = number > 0 and float(value) == number and not isinstance(value, bool)
    except (TypeError, ValueError):
        valid = False
    if not valid:
        raise InvalidMethod(
            f"{method} option {key}={value!r} is not a positive whole number",
            hint=f"set {key} to a whole number such as {default or 32}, or leave it out",
        )
    return number


def one_of(method: str, options: Mapping[str, Any], key: str, choices: tuple[str, ...]) -> str:
    value = options.get(key)
    if value is None:
        return choices[0]
    if value not in choices:
        raise InvalidMethod(
            f"{method} option {key}={value!r} is not one of {', '.join(choices)}",
            hint=f"set {key} to one of: {', '.join(choices)} (default {choices[0]})",
        )
    return str(value)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Swallow a library's prints, progress bars and warnings for the duration of the block.

    It swaps ``sys.stdout``/``sys.stderr`` for the whole process while it runs, so keep the block
    to the library call.
    """
    with (
        contextlib.redirect_stdout(io.StringIO()),
        contextlib.redirect_stderr(io.StringIO()),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore")
        yield


@contextlib.contextmanager
def keep_root_logging() -> Iterator[None]:
    """Undo ``logging.basicConfig`` calls made inside the block (FlashRank makes one per model)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        for handler in list(root.handlers):
            if handler not in handlers:
                root.removeHandler(handler)
        root.setLevel(level)


def truncation_note(truncated: list[bool], limit: int, what: str = "passages") -> tuple[str, ...]:
    count = sum(truncated)
    if not count:
        return ()
    return (f"{count} of {len(truncated)} {what} were cut at {limit} tokens; text past that was not scored.",)
