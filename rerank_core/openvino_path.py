"""OpenVINO precisions of local encoder models: ``openvino`` (fp32) and ``openvino-int8`` (static int8).

Why a second int8 path next to ONNX Runtime's: on a CPU with VNNI but no AMX, ONNX Runtime's
dynamic int8 sped the MiniLM-L6 cross-encoder up 1.2-1.8x, while OpenVINO with activations
quantised ahead of time (NNCF's post-training quantisation) ran it about 2.2x faster than torch
fp32 on the same length-bucketed batches, scores correlating 0.99 (see the README's precision table).

How a model gets there, once per model and revision (cached beside the ONNX exports, under
``<data_dir>/onnx-cache/<model>__<revision>/<precision>/``, built under a lock):

1. the model's own ``onnx/model.onnx`` when its folder ships one, else an ONNX export made with
   sentence-transformers (as for precision ``onnx``);
2. ``openvino.convert_model`` on that file;
3. for ``openvino-int8``, :func:`nncf.quantize` with the transformer model type and the ``MIXED``
   preset (asymmetric activations: the symmetric default measured Spearman 0.988 against 0.991),
   calibrated on texts of the built-in sample corpus (its queries paired with its passages for a
   cross-encoder), tokenised by the model's own tokenizer. The calibration set is fixed, so the
   cached file never depends on which corpus happened to be open;
4. ``openvino.save_model`` (weights kept at their precision: no fp16 compression).

At run time the torch model that sentence-transformers loaded keeps its tokenizer, pooling,
normalisation and activation; only its transformer network is replaced by :class:`OpenVINONetwork`,
which runs the compiled graph at fp32 inference precision (bf16 on a CPU without AMX measured
0.7x of fp32) with the process's torch thread count, so ``[limits] torch_threads`` holds for it too.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch  # imported only by an OpenVINO load, which has loaded a torch model already

from rerank_core.errors import BackendUnavailable
from rerank_core.precision import OPENVINO_INT8

MODEL_FILE = "openvino_model.xml"
#: calibration items for static int8: enough to settle activation ranges (1,000 items moved MiniLM's
#: nDCG@10 on Cranfield by 0.001, within noise), few enough that quantising takes seconds
CALIBRATION_SIZE = 300
_RECORD = "openvino-source.json"
#: MatMuls left in fp32 by ``openvino-int8``: the feed-forward output projections of the first two
#: layers (BERT, RoBERTa and XLM-R name them ``layer.N/output/dense``, ModernBERT ``layers.N/mlp/Wo``).
#: Their inputs carry the activation outliers of these encoders: quantising them cost the packaged
#: MiniLM a mean cosine of 0.9959 to its fp32 embeddings (nDCG@10 on Cranfield -0.0042); keeping these
#: two in fp32 gave 0.9984 (nDCG +0.0004) for 2.1x encoding instead of 2.4x. Keeping every layer's
#: gave 0.9988 at 1.8x; keeping the last two layers' instead left it at 0.9960.
KEPT_FP32 = (r".*layer\.[01]/output/dense/MatMul.*", r".*layers\.[01]/mlp/Wo/MatMul.*")


# -- calibration texts --------------------------------------------------------------------------------
def _sample_texts() -> tuple[list[str], list[str]]:
    """Passages and queries of the built-in sample corpus (the same on every machine)."""
    folder = Path(__file__).resolve().parent / "sample"
    passages = []
    with open(folder / "corpus.jsonl", encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                row = json.loads(line)
                passages.append(" ".join(p for p in (row.get("title") or "", row.get("text") or "") if p))
    with open(folder / "queries.jsonl", encoding="utf-8") as fh:
        queries = [json.loads(line)["text"] for line in fh if line.strip()]
    return passages, queries


def calibration_inputs(
    tokenizer: Any, names: Iterable[str], *, pairs: bool, max_length: int, size: int | None = None
) -> list[dict[str, Any]]:
    """``size`` model inputs (one item each) from the sample corpus, for the graph's input ``names``.

    Pairs (query, passage) for a cross-encoder; otherwise passages, with every fourth item a query
    (an encoder sees both: corpus encoding and query encoding).
    """
    import random

    import numpy as np

    passages, queries = _sample_texts()
    size = CALIBRATION_SIZE if size is None else size
    rng = random.Random(0)
    wanted = list(names)
    items = []
    for i in range(size):
        passage = passages[rng.randrange(len(passages))]
        query = queries[i % len(queries)]
        if pairs:
            enc = tokenizer([query], [passage], truncation="longest_first", max_length=max_length)
        else:
            enc = tokenizer([query if i % 4 == 3 else passage], truncation=True, max_length=max_length)
        items.append({k: np.asarray(enc[k], dtype=np.int64) for k in wanted if k in enc})
    return items


def recipe(precision: str) -> str:
    """A short hash of how ``precision`` is made here (library versions, calibration, fp32 scope):
    part of the cache folder's name, so a changed recipe builds anew instead of reusing an old file."""
    import hashlib
    from importlib.metadata import PackageNotFoundError, version

    parts = [precision]
    for package in ("openvino", "nncf") if precision == OPENVINO_INT8 else ("openvino",):
        try:
            parts.append(f"{package}={version(package)}")
        except PackageNotFoundError:
            parts.append(f"{package}=?")
    if precision == OPENVINO_INT8:
        parts += [f"calibration={CALIBRATION_SIZE}", "preset=mixed", *KEPT_FP32]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:8]


# -- building -----------------------------------------------------------------------------------------
def convert(
    onnx_file: Path, out: Path, precision: str, calibration: Callable[[list[str]], list[dict]]
) -> None:
    """Write ``out/openvino_model.xml`` from ``onnx_file`` (quantised for ``openvino-int8``).

    ``calibration(input_names)`` gives the calibration inputs (only called for int8).
    """
    import openvino as ov

    model = ov.convert_model(str(onnx_file))
    if precision == OPENVINO_INT8:
        import logging

        import nncf

        logging.getLogger("nncf").setLevel(logging.ERROR)
        names = [i.get_any_name() for i in model.inputs]
        data = calibration(names)
        # NNCF draws progress bars on standard output; they are not the user's log (a build runs
        # once per model, so hiding other threads' prints for these seconds costs little)
        with contextlib.redirect_stdout(io.StringIO()):
            model = nncf.quantize(
                model,
                nncf.Dataset(data),
                model_type=nncf.ModelType.TRANSFORMER,
                preset=nncf.QuantizationPreset.MIXED,
                subset_size=len(data),
                ignored_scope=nncf.IgnoredScope(patterns=list(KEPT_FP32), validate=False),
            )
    out.mkdir(parents=True, exist_ok=True)
    ov.save_model(model, str(out / MODEL_FILE), compress_to_fp16=False)


def is_int8_model(path: str | Path) -> bool:
    """Whether an OpenVINO model runs int8 arithmetic (it has FakeQuantize or int8 weights)."""
    import openvino as ov

    model = ov.Core().read_model(str(path))
    return any(
        op.get_type_name() == "FakeQuantize"
        or (
            op.get_type_name() == "Constant" and op.get_output_element_type(0).get_type_name() in ("i8", "u8")
        )
        for op in model.get_ops()
    )


# -- running ------------------------------------------------------------------------------------------
class OpenVINONetwork(torch.nn.Module):
    """Stands in for the Hugging Face network inside a sentence-transformers model.

    Called with the tokenizer's tensors, it returns every output of the compiled graph by name
    (``last_hidden_state`` for an encoder, ``logits`` for a cross-encoder), as torch tensors.
    Not safe across threads: callers hold :func:`rerank_core.encoders.model_lock`, as for torch.
    """

    def __init__(self, compiled: Any, config: Any, source: str) -> None:
        super().__init__()
        self.compiled = compiled
        self.config = config
        self.source = source
        self.input_names = [i.get_any_name() for i in compiled.inputs]
        self.output_names = [o.get_any_name() for o in compiled.outputs]
        self._request = compiled.create_infer_request()
        # sentence-transformers finds a model's device from its tensors
        self.register_buffer("_device_marker", torch.zeros(1), persistent=False)

    def forward(
        self,
        input_ids: Any = None,
        attention_mask: Any = None,
        token_type_ids: Any = None,
        **_: Any,
    ) -> dict[str, Any]:
        given = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
        feed = {}
        for name in self.input_names:
            value = given.get(name)
            if value is None:
                if name == "token_type_ids" and input_ids is not None:
                    value = torch.zeros_like(input_ids)
                else:
                    raise ValueError(f"the OpenVINO model needs input {name!r}")
            feed[name] = value.detach().cpu().numpy()
        self._request.infer(feed)
        return {
            name: torch.from_numpy(self._request.get_output_tensor(i).data.copy())
            for i, name in enumerate(self.output_names)
        }


def compile_model(path: Path) -> Any:
    """The model at ``path`` compiled for this CPU: fp32 arithmetic outside int8 parts, latency mode."""
    import openvino as ov

    config = {
        "INFERENCE_PRECISION_HINT": "f32",
        "PERFORMANCE_HINT": "LATENCY",
        "INFERENCE_NUM_THREADS": max(1, int(torch.get_num_threads())),
    }
    return ov.Core().compile_model(str(path), "CPU", config)


def transformer_module(model: Any) -> Any:
    """The sentence-transformers Transformer module of ``model`` (its first module)."""
    first = model[0]
    if not hasattr(first, "model") or not hasattr(first, "model_forward_params"):
        raise TypeError(f"{type(first).__name__} is not a transformer module")
    return first


def load_openvino(
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
    """Load ``location`` with sentence-transformers (``cls``) and run its network with OpenVINO.

    Uses the cached OpenVINO model for (model, revision, precision), made now when missing. Returns
    the model and a note saying which file runs. Failures raise :class:`BackendUnavailable`
    naming the model and the fix: the method never runs another precision in its place.
    """
    from rerank_core.precision import (
        ONNX,
        _quiet_export,
        build_once,
        cache_dir,
        export_onnx,
        model_revision,
        openvino_runtime_available,
        own_onnx_file,
    )

    if not openvino_runtime_available():
        raise BackendUnavailable(
            f"precision {precision} for {model_id} needs OpenVINO, NNCF and (to export the model) ONNX "
            "Runtime with Optimum, which are not all installed.",
            hint="pip install -r requirements.txt (it pins openvino, nncf, onnxruntime and optimum), "
            "or choose precision fp32",
        )
    model = cls(location, **load_kwargs)
    module = transformer_module(model)
    revision = model_revision(location) if is_local else "hub"
    target = cache_dir(data_dir, model_id, revision, f"{precision}-{recipe(precision)}")
    limit = int(getattr(model, "max_seq_length", None) or 512)

    def calibration(names: list[str]) -> list[dict]:
        return calibration_inputs(model.tokenizer, names, pairs=pairs, max_length=limit)

    def build(tmp: Path) -> None:
        own = own_onnx_file(location, ONNX) if is_local else None
        if own is not None:
            source, origin = Path(location) / own, f"the model's own {own}"
        else:
            name = export_onnx(cls, location, tmp / "onnx-export", ONNX, load_kwargs)
            source, origin = tmp / "onnx-export" / name, "an ONNX export"
        with _quiet_export():
            convert(source, tmp, precision, calibration)
        shutil.rmtree(tmp / "onnx-export", ignore_errors=True)  # the OpenVINO files stand alone
        (tmp / _RECORD).write_text(
            json.dumps({"from": origin, "precision": precision}) + "\n", encoding="utf-8"
        )

    try:
        built = build_once(target, build)
        compiled = compile_model(target / MODEL_FILE)
    except Exception as exc:  # noqa: BLE001 - every conversion failure is reported the same way
        raise BackendUnavailable(
            f"{model_id} could not be converted to OpenVINO for precision {precision} "
            f"({type(exc).__name__}: {str(exc)[:300]}).",
            hint="choose precision fp32 or onnx-int8 for this model (its architecture may have no ONNX "
            "export), or put an ONNX file in the model folder (onnx/model.onnx)",
        ) from exc
    origin = json.loads((target / _RECORD).read_text(encoding="utf-8")).get("from", "")
    module.model = OpenVINONetwork(compiled, module.model.config, str(target / MODEL_FILE))
    if precision == OPENVINO_INT8:
        how = "converted from " + origin + " and quantised now" if built else "from the cache"
    else:
        how = "converted from " + origin + " now" if built else "from the cache"
    return model, f"{precision}: {MODEL_FILE} {how} ({target})"


__all__ = [
    "CALIBRATION_SIZE",
    "OpenVINONetwork",
    "calibration_inputs",
    "compile_model",
    "convert",
    "is_int8_model",
    "load_openvino",
]
