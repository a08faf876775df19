"""Numeric precision of local models: what the CPU can do, what ``auto`` picks, and the ONNX cache.

Every local model method takes a ``precision`` option:

- ``fp32``: the model as trained, in torch;
- ``bf16``: torch with bfloat16 autocast (matrix products in bf16, reductions in fp32);
- ``onnx``: the same weights run by ONNX Runtime in fp32 (sentence-transformers ``backend="onnx"``);
- ``onnx-int8``: ONNX Runtime with int8 weights and dynamically quantised activations;
- ``openvino``: the same weights run by OpenVINO in fp32;
- ``openvino-int8``: OpenVINO with int8 weights and activations quantised ahead of time (NNCF,
  calibrated on the built-in sample corpus; see :mod:`rerank_core.openvino_path`);
- ``auto``: the fastest of these that is safe on this CPU (see :func:`choose_auto`).

What ``auto`` picks rests on flags of the CPU, not on guesses from a model name:

- ``bf16`` only where the CPU has AMX-BF16 (``amx_bf16``): there torch's bf16 kernels run on the
  tile unit (measured on such a CPU: MiniLM-L6 cross-encoder 2.25x faster than fp32, scores
  correlating 1.0000). AVX512-BF16 alone is not enough: on a CPU with ``avx512_bf16`` but no AMX,
  bf16 autocast measured 0.4-0.8x of fp32 (slower), and on CPUs with neither it is emulated and
  several times slower;
- else, for encoder models where the CPU has int8 dot-product instructions (``avx512_vnni``,
  ``avx_vnni`` or ``amx_int8``): ``openvino-int8`` where OpenVINO and NNCF are installed (on a
  VNNI CPU without AMX it measured about 2.2x torch fp32 for the MiniLM-L6 cross-encoder and
  2x for corpus encoding, against 1.2x and 1.5x for ``onnx-int8``), else ``onnx-int8`` where ONNX
  Runtime with Optimum is installed;
- else ``fp32`` (ONNX Runtime fp32 alone measured 0.95x of torch, OpenVINO fp32 1.05x: not worth
  a conversion).

Decoder (causal-LM) rerankers and ColBERT have no int8 path here; ``auto`` gives them ``bf16`` on
AMX-BF16 and ``fp32`` elsewhere.

ONNX files come from the model's own folder when it ships them (``onnx/model.onnx``, and a
quantised ``onnx/model_*int8*.onnx``); otherwise the model is exported (and quantised) once into
``<data_dir>/onnx-cache/<model>__<revision>/<precision>/`` (not ``@``: the Hugging Face loaders read
``name@x`` as a revision), with a file lock so two processes never
export the same model at once. A cached copy is complete only once its ``.complete`` marker exists.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import re
import shutil
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rerank_core.errors import InvalidMethod

FP32 = "fp32"
BF16 = "bf16"
ONNX = "onnx"
ONNX_INT8 = "onnx-int8"
OPENVINO = "openvino"
OPENVINO_INT8 = "openvino-int8"
AUTO = "auto"
PRECISIONS: tuple[str, ...] = (FP32, BF16, ONNX, ONNX_INT8, OPENVINO, OPENVINO_INT8, AUTO)
#: what a method runs when no precision is configured: the model as trained, so scores never change
#: silently; ``auto`` is one setting away (``precision = "auto"`` under ``[methods.<name>]``)
DEFAULT_PRECISION = FP32
TORCH_PRECISIONS: tuple[str, ...] = (FP32, BF16, AUTO)  # methods without an ONNX path

# model families, for what auto may pick
ENCODER = "encoder"  # BERT-like cross-encoders and sentence-transformers encoders: all paths
DECODER = "decoder"  # causal-LM rerankers: torch only
TORCH_ONLY = "torch-only"  # ColBERT through RAGatouille

INT8_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})
BF16_FLAGS = frozenset({"amx_bf16"})
# flags worth reporting (the benchmark's "cpu" entry)
REPORTED_FLAGS = (
    "avx2",
    "avx512f",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_int8",
    "amx_bf16",
)
COMPLETE = ".complete"


def check_precision(method: str, value: object, allowed: tuple[str, ...] = PRECISIONS) -> str:
    """``value`` as a precision name (:data:`DEFAULT_PRECISION` when None); :class:`InvalidMethod` otherwise."""
    if value is None:
        return DEFAULT_PRECISION if DEFAULT_PRECISION in allowed else allowed[0]
    text = str(value).strip().lower()
    if text not in allowed:
        raise InvalidMethod(
            f"{method} option precision={value!r} is not one of {', '.join(allowed)}",
            hint=f"set precision to one of: {', '.join(allowed)} ('auto' picks the fastest safe one for this CPU)",
        )
    return text


# -- the CPU ------------------------------------------------------------------------------------------
def _flags_from_proc() -> frozenset[str] | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith(("flags", "Features")):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        return None
    return None


def _flags_from_torch() -> frozenset[str]:
    """What torch can tell about the CPU where /proc/cpuinfo is missing (macOS, Windows)."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a requirement
        return frozenset()
    found: set[str] = set()
    checks = {
        "avx2": "_is_avx2_supported",
        "avx512f": "_is_avx512_supported",
        "avx512_bf16": "_is_avx512_bf16_supported",
        "avx512_vnni": "_is_vnni_supported",
        "amx_tile": "_is_amx_tile_supported",
    }
    for flag, name in checks.items():
        check = getattr(torch.cpu, name, None)
        try:
            if check is not None and check():
                found.add(flag)
        except Exception:  # noqa: BLE001 - an unanswerable probe means "not known to be there"
            pass
    if "amx_tile" in found:  # torch reports the tile unit; every AMX CPU so far has int8 and bf16 on it
        found.update({"amx_int8", "amx_bf16"})
    return frozenset(found)


@functools.lru_cache(maxsize=1)
def _detected_flags() -> frozenset[str]:
    flags = _flags_from_proc()
    return flags if flags is not None else _flags_from_torch()


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (from /proc/cpuinfo, else from torch's probes). Tests replace this."""
    return _detected_flags()


@dataclass(frozen=True)
class CpuSupport:
    """What the numeric paths can count on, from the CPU flags."""

    flags: frozenset[str]

    @property
    def native_bf16(self) -> bool:
        """bf16 runs faster than fp32 in torch (AMX-BF16; AVX512-BF16 alone measured slower)."""
        return bool(self.flags & BF16_FLAGS)

    @property
    def fast_int8(self) -> bool:
        """int8 dot products in hardware (VNNI or AMX-INT8)."""
        return bool(self.flags & INT8_FLAGS)

    @property
    def reported(self) -> list[str]:
        return [f for f in REPORTED_FLAGS if f in self.flags]


def cpu_support() -> CpuSupport:
    return CpuSupport(cpu_flags())


def onnx_runtime_available() -> bool:
    """ONNX Runtime and Optimum (what sentence-transformers' ONNX backend needs) are installed."""
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("onnxruntime", "optimum.onnxruntime"))


def openvino_runtime_available() -> bool:
    """OpenVINO and NNCF (what ``openvino-int8`` needs) are installed; ONNX export needs Optimum too."""
    import importlib.util

    return onnx_runtime_available() and all(
        importlib.util.find_spec(m) is not None for m in ("openvino", "nncf")
    )


@dataclass(frozen=True)
class Choice:
    """A resolved precision and, for ``auto``, why it was chosen."""

    precision: str
    reason: str = ""


def choose_auto(family: str = ENCODER, support: CpuSupport | None = None) -> Choice:
    """The precision ``auto`` runs for a model ``family`` on this CPU (see the module docstring)."""
    support = support or cpu_support()
    if support.native_bf16:
        return Choice(BF16, "auto: bf16 (the CPU has AMX-BF16)")
    if family == ENCODER and support.fast_int8:
        if openvino_runtime_available():
            return Choice(
                OPENVINO_INT8, "auto: openvino-int8 (the CPU has int8 dot products and no AMX-BF16)"
            )
        if onnx_runtime_available():
            return Choice(
                ONNX_INT8,
                "auto: onnx-int8 (the CPU has int8 dot products and no AMX-BF16; openvino-int8, faster here, "
                "needs openvino and nncf)",
            )
        return Choice(FP32, "auto: fp32 (int8 would suit this CPU, but onnxruntime/optimum are missing)")
    why = "no AMX-BF16" + ("" if family != ENCODER else " and no int8 dot-product instructions")
    return Choice(FP32, f"auto: fp32 ({why} on this CPU)")


def auto_note(requested: str, family: str = ENCODER) -> str:
    """What ``auto`` chose and why, as a result note ("" when ``requested`` is not ``auto``)."""
    return choose_auto(family).reason + "." if requested == AUTO else ""


def resolve(requested: str, family: str = ENCODER, support: CpuSupport | None = None) -> Choice:
    """``requested`` itself, or what ``auto`` picks."""
    return choose_auto(family, support) if requested == AUTO else Choice(requested)


@contextlib.contextmanager
def autocast(precision: str) -> Iterator[None]:
    """Inference mode, plus bf16 autocast on the CPU when ``precision`` is bf16."""
    import torch

    with torch.inference_mode():
        if precision == BF16:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                yield
        else:
            yield


# -- the ONNX cache ----------------------------------------------------------------------------------
_SNAPSHOT = re.compile(r"[\\/]snapshots[\\/]([0-9a-f]{7,64})(?:[\\/]|$)")
_WEIGHTS = (".safetensors", ".bin", ".onnx", ".pt", ".pth", ".json", ".model", ".txt")


def model_revision(location: str | Path) -> str:
    """A short identity of the model's files: the hub commit of a cached snapshot, else a content hash.

    The hash covers every weight, config and tokenizer file (name, size, and the first and last
    MiB of each), so a changed local folder gets a new cache entry while an unchanged one reuses it.
    """
    text = str(location)
    found = _SNAPSHOT.search(text)
    if found:
        return found.group(1)[:12]
    path = Path(location)
    h = hashlib.sha256()
    if path.is_file():
        files = [path]
        root = path.parent
    else:
        root = path
        files = sorted(
            p
            for p in path.rglob("*")
            if p.is_file() and p.suffix in _WEIGHTS and "onnx-cache" not in p.parts and ".git" not in p.parts
        )
    for p in files:
        size = p.stat().st_size
        h.update(str(p.relative_to(root)).encode())
        h.update(str(size).encode())
        with open(p, "rb") as fh:
            h.update(fh.read(1 << 20))
            if size > 2 << 20:
                fh.seek(-(1 << 20), os.SEEK_END)
                h.update(fh.read())
    return h.hexdigest()[:12]


def cache_dir(data_dir: str | Path, model: str, revision: str, precision: str) -> Path:
    """Where the converted copy of ``model`` at ``revision`` for ``precision`` lives (ONNX or OpenVINO)."""
    name = model.strip("/\\").replace("\\", "/")
    if Path(model).is_absolute() or model.startswith((".", "~")):
        name = "/".join(name.split("/")[-2:])  # a local folder: its last two parts say enough
    safe = re.sub(r"[^A-Za-z0-9._-]+", "--", name)[-120:] or "model"
    return Path(data_dir).resolve() / "onnx-cache" / f"{safe}__{revision}" / precision


_process_locks: dict[str, threading.Lock] = {}
_process_locks_guard = threading.Lock()


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` across threads of this process and, on POSIX, across processes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with _process_locks_guard:
        local = _process_locks.setdefault(str(path), threading.Lock())
    with local, open(path, "a+b") as fh:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: threads of this process only
            yield
            return
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def build_once(target: Path, build: Callable[[Path], None]) -> bool:
    """Make ``target`` with ``build(tmp)`` unless a complete copy exists. True when it was built now.

    ``build`` writes into a fresh sibling folder that is renamed into place once it succeeded, so
    a crash never leaves a half-written copy that looks complete; the lock makes a second process
    wait for the first and then reuse its copy.
    """
    if (target / COMPLETE).exists():
        return False
    with file_lock(target.parent / f".{target.name}.lock"):
        if (target / COMPLETE).exists():
            return False
        tmp = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:8]}"
        try:
            build(tmp)
            (tmp / COMPLETE).write_text("ok\n", encoding="utf-8")
            if target.exists():
                shutil.rmtree(target)
            os.replace(tmp, target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return True


_INT8_FILE = re.compile(r"^model_.*(q|u)int8.*\.onnx$")


def own_onnx_file(folder: str | Path, precision: str) -> str | None:
    """The ONNX file a model folder ships for ``precision`` (relative path), if any.

    ``onnx``: ``onnx/model.onnx`` (or ``model.onnx``); ``onnx-int8``: a quantised
    ``onnx/model_*int8*.onnx``, preferring the one made for this CPU's instructions.
    """
    root = Path(folder)
    if not root.is_dir():
        return None
    if precision == ONNX:
        for name in ("onnx/model.onnx", "model.onnx"):
            if (root / name).is_file():
                return name
        return None
    if precision == ONNX_INT8:
        found = sorted(
            str(p.relative_to(root)).replace("\\", "/")
            for sub in (root / "onnx", root)
            if sub.is_dir()
            for p in sub.iterdir()
            if p.is_file() and _INT8_FILE.match(p.name)
        )
        if not found:
            return None
        prefer = "avx512_vnni" if cpu_support().fast_int8 else "avx2"
        return next((f for f in found if prefer in f), found[0])
    return None


def int8_file_suffix() -> str:
    """The name part of a quantised file made for this CPU's int8 instructions."""
    return "qint8_vnni_perchannel" if cpu_support().fast_int8 else "qint8_avx2_perchannel"


def quantize_file(source: str | Path, target: str | Path) -> None:
    """Dynamic int8 quantisation with ONNX Runtime: per-channel int8 weights for the MatMuls with a
    weight, activations quantised per batch at run time; everything else stays fp32.

    The MatMuls between two activations (attention scores) stay fp32: quantising them too, as
    Optimum's default configurations do, moved MiniLM's nDCG@10 on Cranfield by -0.0034 against
    -0.0005 without. VNNI CPUs take int8 at full range; others (AVX2) need the reduced range.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    large = Path(source).stat().st_size > (1 << 31) - (1 << 26)  # protobuf's 2 GB limit
    quantize_dynamic(
        str(source),
        str(target),
        weight_type=QuantType.QInt8,
        per_channel=True,
        reduce_range=not cpu_support().fast_int8,
        op_types_to_quantize=["MatMul"],
        use_external_data_format=large,
    )


def is_int8_graph(path: str | Path) -> bool:
    """Whether an ONNX file runs int8 arithmetic (quantised MatMuls or QLinear/Integer operators)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return any(
        n.op_type in {"MatMulInteger", "DynamicQuantizeLinear", "QLinearMatMul", "MatMulIntegerToFloat"}
        or n.op_type.startswith("QLinear")
        or n.op_type == "DynamicQuantizeMatMul"
        for n in model.graph.node
    )


_FILE_RECORD = "onnx-file.txt"
_CHATTY_LOGGERS = ("sentence_transformers", "optimum", "transformers", "root")


@contextlib.contextmanager
def _quiet_export() -> Iterator[None]:
    """Keep the exporters' advice ("save the exported model", tracer warnings) out of the user's log."""
    import logging
    import warnings

    loggers = [logging.getLogger(n if n != "root" else None) for n in _CHATTY_LOGGERS]
    levels = [lg.level for lg in loggers]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for lg, level in zip(loggers, levels, strict=True):
                lg.setLevel(level)


def export_onnx(cls: type, location: str, out: Path, precision: str, load_kwargs: dict) -> str:
    """Export ``location`` to ONNX with sentence-transformers into ``out`` (quantised for onnx-int8).

    Returns the ONNX file to load, relative to ``out``. ``cls`` is ``CrossEncoder`` or
    ``SentenceTransformer``; ``load_kwargs`` are its loading arguments (device, max_length, ...).
    """
    with _quiet_export():
        return _export(cls, location, out, precision, load_kwargs)


def _export(cls: type, location: str, out: Path, precision: str, load_kwargs: dict) -> str:
    model = cls(location, backend="onnx", model_kwargs={"export": True}, **load_kwargs)
    model.save_pretrained(str(out))
    name = "onnx/model.onnx"
    if precision == ONNX_INT8:
        suffix = int8_file_suffix()
        quantize_file(out / name, out / f"onnx/model_{suffix}.onnx")
        (out / name).unlink(missing_ok=True)  # the int8 file stands alone; keep the cache small
        name = f"onnx/model_{suffix}.onnx"
    if not (out / name).is_file():
        raise FileNotFoundError(f"the export wrote no {name}")
    (out / _FILE_RECORD).write_text(name + "\n", encoding="utf-8")
    return name


def load_onnx(
    cls: type,
    location: str,
    model_id: str,
    precision: str,
    data_dir: str | Path,
    *,
    is_local: bool,
    load_kwargs: dict,
) -> tuple[Any, str]:
    """Load ``location`` with sentence-transformers' ONNX backend at ``precision`` (onnx or onnx-int8).

    Uses the model's own ONNX file when its folder has one, else the cached export (made now if
    missing). Returns the model and a note saying which file runs. Export failures raise
    :class:`~rerank_core.errors.BackendUnavailable` naming the model and the fix: the method never
    runs another precision in its place.
    """
    from rerank_core.errors import BackendUnavailable

    if not onnx_runtime_available():
        raise BackendUnavailable(
            f"precision {precision} for {model_id} needs ONNX Runtime and Optimum, which are not installed.",
            hint="pip install -r requirements.txt (it pins onnxruntime, optimum and optimum-onnx), "
            "or choose precision fp32 or bf16",
        )
    own = own_onnx_file(location, precision) if is_local else None
    if own is not None:
        model = cls(location, backend="onnx", model_kwargs={"file_name": own}, **load_kwargs)
        return model, f"{precision}: the model's own {own}"
    revision = model_revision(location) if is_local else "hub"
    target = cache_dir(data_dir, model_id, revision, precision)

    def build(tmp: Path) -> None:
        export_onnx(cls, location, tmp, precision, load_kwargs)

    try:
        built = build_once(target, build)
    except Exception as exc:  # noqa: BLE001 - every export failure is reported the same way
        raise BackendUnavailable(
            f"{model_id} could not be exported to ONNX for precision {precision} "
            f"({type(exc).__name__}: {str(exc)[:300]}).",
            hint="choose precision fp32 or bf16 for this model (its architecture may have no ONNX export), "
            "or put an ONNX file in the model folder (onnx/model.onnx, onnx/model_qint8_*.onnx)",
        ) from exc
    name = (target / _FILE_RECORD).read_text(encoding="utf-8").strip()
    local = {k: v for k, v in load_kwargs.items() if k != "local_files_only"}
    model = cls(str(target), backend="onnx", model_kwargs={"file_name": name}, local_files_only=True, **local)
    how = "exported and quantised now" if built else "from the cache"
    if precision == ONNX:
        how = "exported now" if built else "from the cache"
    return model, f"{precision}: {name} {how} ({target})"


#: precisions that run a converted copy of the model (ONNX Runtime or OpenVINO) instead of torch
CONVERTED: tuple[str, ...] = (ONNX, ONNX_INT8, OPENVINO, OPENVINO_INT8)


def load_converted(
    cls: type,
    location: str,
    model_id: str,
    precision: str,
    data_dir: str | Path,
    *,
    is_local: bool,
    load_kwargs: dict,
    pairs: bool,
) -> tuple[Any, str]:
    """Load ``location`` at a :data:`CONVERTED` precision: :func:`load_onnx`, or OpenVINO's
    :func:`rerank_core.openvino_path.load_openvino` (``pairs``: calibrate on (query, passage) pairs)."""
    if precision in (OPENVINO, OPENVINO_INT8):
        from rerank_core.openvino_path import load_openvino

        return load_openvino(
            cls,
            location,
            model_id,
            precision,
            data_dir,
            is_local=is_local,
            load_kwargs=load_kwargs,
            pairs=pairs,
        )
    return load_onnx(cls, location, model_id, precision, data_dir, is_local=is_local, load_kwargs=load_kwargs)


__all__ = [
    "CONVERTED",
    "AUTO",
    "BF16",
    "DECODER",
    "DEFAULT_PRECISION",
    "ENCODER",
    "FP32",
    "ONNX",
    "ONNX_INT8",
    "OPENVINO",
    "OPENVINO_INT8",
    "PRECISIONS",
    "TORCH_ONLY",
    "TORCH_PRECISIONS",
    "Choice",
    "CpuSupport",
    "auto_note",
    "autocast",
    "build_once",
    "cache_dir",
    "check_precision",
    "choose_auto",
    "cpu_flags",
    "cpu_support",
    "file_lock",
    "int8_file_suffix",
    "export_onnx",
    "is_int8_graph",
    "load_converted",
    "load_onnx",
    "model_revision",
    "own_onnx_file",
    "quantize_file",
    "resolve",
]
