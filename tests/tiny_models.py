"""Tiny random-weight models in each reranking library's real on-disk layout.

Nothing here downloads anything: the WordPiece vocabulary is written from a fixed word list, the
weights are random (seeded, so every build is identical) and each builder writes the files the
library's own loader expects:

- :func:`build_tiny_cross_encoder`: a BERT sequence classifier with one logit plus its tokenizer,
  loadable by ``sentence_transformers.CrossEncoder``;
- :func:`build_tiny_colbert`: a BERT encoder with ColBERT's projection layer and the
  ``artifact.metadata`` written by colbert-ai's ``ColBERTConfig.save_for_checkpoint``, loadable by
  ``RAGPretrainedModel.from_pretrained``;
- :func:`build_tiny_flashrank`: a one-logit BERT exported to ONNX under the file name FlashRank
  expects, in ``<cache_dir>/<model_name>/`` with the tokenizer and config files FlashRank reads
  (``int8=True`` quantises it, as FlashRank's real files are);
- :func:`build_tiny_qwen3_reranker`: a ``Qwen3ForCausalLM`` with a byte-level BPE tokenizer that
  has the chat tokens of Qwen3-Reranker's prompt and "yes"/"no" as single tokens;
- :func:`build_tiny_modernbert_cross_encoder`: a ``ModernBertForSequenceClassification``
  (gte-reranker-modernbert's layout) with a [CLS]/[SEP] tokenizer;
- :func:`build_tiny_xlmr_cross_encoder`: an ``XLMRobertaForSequenceClassification``
  (bge-reranker-v2-m3's layout) with a unigram tokenizer using ``<s>``/``</s>`` as XLM-R does;
- :func:`build_tiny_remote_code_cross_encoder`: a classifier that ships its own model code
  (``auto_map``), as jina-reranker-v2 does, to exercise the ``trust_remote_code`` opt-in.

The ``build_random_*`` functions build random-weight copies of the REAL architectures (MiniLM-L6-H384
cross-encoder, TinyBERT-L2-H128 FlashRank model, ColBERTv2 = BERT-base with a 128-dim projection):
latency depends on the shapes, not on the weight values, so they give honest latency figures for
models whose weights are not on the machine. Their embedding matrix has the real vocabulary size
(30522) but the tokenizer only uses the small vocabulary below; that leaves the compute per token
unchanged. What must stay realistic is the number of tokens per passage, because attention and the
feed-forward layers scale with it. Every word of :data:`WORDS` is one token, so
:func:`make_passages` builds passages of an exact token length; real text made of words outside the
vocabulary is split into letter pieces (more tokens per word than a real BERT vocabulary gives), so
either use :func:`make_passages`, pass the text's words as ``extra_words`` when building, or measure
the token counts with :func:`count_tokens`.

Pytest session fixtures (``tiny_cross_encoder_dir``, ``tiny_colbert_dir``, ``tiny_flashrank_cache``)
build each model once per session into the session's temporary directory.
"""

from __future__ import annotations

import json
import os
import random
import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

# A fixed list of common English words (and some of the aeronautics vocabulary of the test corpus).
WORDS: tuple[str, ...] = tuple(
    """
    the of and to in is was for that with as on by at from it an be this are which or have has not
    but were been their more can also other all one two three four five six seven eight nine ten
    new first time year years people way day days man men world life work part place case point
    number group problem fact hand high low long short large small great good bad old young right
    left early late same different important public private local national social political
    economic human general full free special real best better few many much most some any each
    every such only own between under over after before during without within through against
    among around about into out up down off near far here there when where why how what who whom
    whose while because although though if then than so very well still just even again never
    always often sometimes usually quickly slowly city country state government company market
    system program question answer result results method methods model models data paper study
    research theory experiment experiments test tests analysis value values water air fire earth
    light heat energy power force speed pressure flow flows wing wings body surface layer boundary
    shock wave waves mach number reynolds laminar turbulent transition velocity temperature
    density drag lift thrust engine aircraft flight jet nozzle supersonic subsonic hypersonic
    plate cylinder cone sphere blunt edge leading trailing angle attack heat transfer skin
    friction buckling shell stress strain load structure structures vibration panel panels
    solution solutions equation equations numerical exact approximate linear nonlinear small
    computer search document documents query queries rank ranking rerank relevance relevant
    passage passages text words word token tokens book books library river mountain sea ocean
    tree trees forest animal animals dog cat bird fish food bread milk coffee tea house home
    room door window street road car train ship boat school student students teacher class
    music art history science language english french german money price cost business bank
    health doctor hospital disease medicine patient patients family child children mother father
    friend friends love war peace army law court police music song game team player players
    """.split()
)

_SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"[unused{i}]" for i in range(10)]
_PUNCT = list(".,;:!?'\"()[]{}-_/\\+=*&%$#@<>|~`^")
_CHARS = list("abcdefghijklmnopqrstuvwxyz0123456789")

# real architectures (BERT-shaped): layers, hidden, heads, intermediate
ARCHITECTURES: dict[str, dict[str, int]] = {
    "minilm-l6-h384": {"layers": 6, "hidden": 384, "heads": 12, "intermediate": 1536},
    "minilm-l12-h384": {"layers": 12, "hidden": 384, "heads": 12, "intermediate": 1536},
    "tinybert-l2-h128": {"layers": 2, "hidden": 128, "heads": 2, "intermediate": 512},
    "bert-base": {"layers": 12, "hidden": 768, "heads": 12, "intermediate": 3072},
}
TINY = {"layers": 2, "hidden": 32, "heads": 2, "intermediate": 64}
# wider than BERT's 0.02 so that random tiny models give clearly different scores to different texts
TINY_INIT_STD = 0.2
REAL_VOCAB_SIZE = 30522  # bert-base-uncased, MiniLM, TinyBERT, ColBERTv2
REPO_ROOT = Path(__file__).resolve().parents[1]


def vocabulary(extra_words: Iterable[str] = ()) -> list[str]:
    """The WordPiece vocabulary: specials, punctuation, characters and their ``##`` pieces, words."""
    vocab: list[str] = []
    seen: set[str] = set()
    for tok in [*_SPECIAL, *_PUNCT, *_CHARS, *(f"##{c}" for c in _CHARS), *WORDS, *sorted(set(extra_words))]:
        tok = tok.lower() if not tok.startswith("[") else tok
        if tok and tok not in seen:
            seen.add(tok)
            vocab.append(tok)
    return vocab


def _words_of(texts: Iterable[str]) -> set[str]:
    """Lower-cased alphanumeric words of ``texts`` (to give real text one token per word)."""
    out: set[str] = set()
    for text in texts:
        out.update(w for w in re.findall(r"[a-z0-9]+", text.lower()) if len(w) < 30)
    return out


def write_tokenizer(directory: Path, *, model_max_length: int = 512, extra_words: Iterable[str] = ()) -> int:
    """Write a lower-casing BERT WordPiece tokenizer (``vocab.txt``, ``tokenizer.json``, configs).

    Returns the vocabulary size.
    """
    from transformers import BertTokenizerFast

    directory.mkdir(parents=True, exist_ok=True)
    vocab = vocabulary(extra_words)
    vocab_file = directory / "vocab.txt"
    vocab_file.write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tok = BertTokenizerFast(vocab_file=str(vocab_file), do_lower_case=True, model_max_length=model_max_length)
    tok.save_pretrained(str(directory))
    return len(vocab)


def _bert_config(
    vocab_size: int,
    arch: dict[str, int],
    *,
    num_labels: int = 1,
    max_position: int = 512,
    init_std: float = 0.02,
):
    from transformers import BertConfig

    return BertConfig(
        initializer_range=init_std,
        vocab_size=vocab_size,
        hidden_size=arch["hidden"],
        num_hidden_layers=arch["layers"],
        num_attention_heads=arch["heads"],
        intermediate_size=arch["intermediate"],
        max_position_embeddings=max_position,
        num_labels=num_labels,
        pad_token_id=0,
    )


def _seed(seed: int) -> None:
    import torch

    random.seed(seed)
    torch.manual_seed(seed)


# -- cross-encoder ---------------------------------------------------------------------------------
IDENTITY_ACTIVATION = "torch.nn.modules.linear.Identity"


def build_random_cross_encoder(
    directory: str | Path,
    layers: int,
    hidden: int,
    heads: int,
    intermediate: int,
    vocab_size: int | None = REAL_VOCAB_SIZE,
    *,
    seed: int = 0,
    init_std: float = 0.02,
    model_max_length: int = 512,
    activation_fn: str | None = IDENTITY_ACTIVATION,
    num_labels: int = 1,
    extra_words: Iterable[str] = (),
) -> Path:
    """A BERT cross-encoder (``num_labels`` logits, one by default) with random weights, loadable by ``CrossEncoder``.

    ``activation_fn`` is stored the way the ms-marco cross-encoders store it (Identity: predict
    returns raw logits); ``None`` leaves it out, and sentence-transformers then applies a sigmoid.
    ``vocab_size=None`` sizes the embedding to the tiny vocabulary.
    """
    from transformers import BertForSequenceClassification

    directory = Path(directory)
    n_vocab = write_tokenizer(directory, model_max_length=model_max_length, extra_words=extra_words)
    _seed(seed)
    arch = {"layers": layers, "hidden": hidden, "heads": heads, "intermediate": intermediate}
    config = _bert_config(max(vocab_size or 0, n_vocab), arch, init_std=init_std, num_labels=num_labels)
    if activation_fn:
        config.sbert_ce_default_activation_function = activation_fn
    model = BertForSequenceClassification(config).eval()
    model.save_pretrained(str(directory))
    return directory


def build_tiny_cross_encoder(
    directory: str | Path, *, seed: int = 0, activation_fn: str | None = IDENTITY_ACTIVATION
) -> Path:
    """A 2-layer, 32-wide BERT cross-encoder with one logit (a few hundred kB, under a second)."""
    return build_random_cross_encoder(
        directory, **TINY, vocab_size=None, seed=seed, init_std=TINY_INIT_STD, activation_fn=activation_fn
    )


# -- ColBERT ---------------------------------------------------------------------------------------
def build_random_colbert(
    directory: str | Path,
    layers: int,
    hidden: int,
    heads: int,
    intermediate: int,
    vocab_size: int | None = REAL_VOCAB_SIZE,
    *,
    dim: int = 128,
    seed: int = 0,
    init_std: float = 0.02,
    extra_words: Iterable[str] = (),
) -> Path:
    """A ColBERT checkpoint folder (BERT + ``dim``-wide projection + ``artifact.metadata``)."""
    import torch
    from colbert.infra.config import ColBERTConfig
    from transformers import BertModel

    directory = Path(directory).resolve()
    n_vocab = write_tokenizer(directory, extra_words=extra_words)
    _seed(seed)
    arch = {"layers": layers, "hidden": hidden, "heads": heads, "intermediate": intermediate}
    config = _bert_config(max(vocab_size or 0, n_vocab), arch, init_std=init_std)
    bert = BertModel(config).eval()
    linear = torch.nn.Linear(hidden, dim, bias=False)
    torch.nn.init.normal_(linear.weight, std=init_std)
    # colbert-ai's HF_ColBERT keeps the encoder under "bert." and the projection under "linear."
    state = {f"bert.{k}": v.contiguous() for k, v in bert.state_dict().items()}
    state["linear.weight"] = linear.weight.detach().contiguous()
    from safetensors.torch import save_file

    save_file(state, str(directory / "model.safetensors"), metadata={"format": "pt"})
    config.save_pretrained(str(directory))
    ColBERTConfig(checkpoint=str(directory), dim=dim).save_for_checkpoint(str(directory))
    return directory


def build_tiny_colbert(directory: str | Path, *, dim: int = 16, seed: int = 0) -> Path:
    """A 2-layer, 32-wide ColBERT checkpoint with ``dim``-dimensional token vectors."""
    return build_random_colbert(
        directory, **TINY, vocab_size=None, dim=dim, seed=seed, init_std=TINY_INIT_STD
    )


# -- FlashRank -------------------------------------------------------------------------------------
def flashrank_onnx_name(model_name: str) -> str:
    from flashrank.Config import model_file_map

    if model_name not in model_file_map:
        raise KeyError(f"FlashRank knows no model {model_name!r}; known: {sorted(model_file_map)}")
    return model_file_map[model_name]


def build_random_flashrank(
    cache_dir: str | Path,
    model_name: str,
    layers: int,
    hidden: int,
    heads: int,
    intermediate: int,
    vocab_size: int | None = REAL_VOCAB_SIZE,
    *,
    seed: int = 0,
    init_std: float = 0.02,
    model_max_length: int = 512,
    extra_words: Iterable[str] = (),
    int8: bool = False,
) -> Path:
    """``<cache_dir>/<model_name>/`` as FlashRank lays it out: ONNX one-logit BERT plus tokenizer files.

    ``int8=True`` quantises the ONNX file (dynamic int8 weights, as FlashRank's real TinyBERT and
    MiniLM files are: 4.3 MB for TinyBERT's 4.4M parameters).
    """
    import torch
    from transformers import BertForSequenceClassification

    folder = Path(cache_dir) / model_name
    onnx_name = flashrank_onnx_name(model_name)
    n_vocab = write_tokenizer(folder, model_max_length=model_max_length, extra_words=extra_words)
    _seed(seed)
    arch = {"layers": layers, "hidden": hidden, "heads": heads, "intermediate": intermediate}
    config = _bert_config(max(vocab_size or 0, n_vocab), arch, init_std=init_std)
    config.save_pretrained(str(folder))
    model = BertForSequenceClassification(config).eval()

    class _Logits(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.inner(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).logits

    example = (
        torch.ones((2, 8), dtype=torch.long),
        torch.ones((2, 8), dtype=torch.long),
        torch.zeros((2, 8), dtype=torch.long),
    )
    axes = {0: "batch", 1: "sequence"}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes about constants in the attention mask
        torch.onnx.export(
            _Logits(model),
            example,
            str(folder / onnx_name),
            input_names=["input_ids", "attention_mask", "token_type_ids"],
            output_names=["logits"],
            dynamic_axes={
                "input_ids": axes,
                "attention_mask": axes,
                "token_type_ids": axes,
                "logits": {0: "batch"},
            },
            opset_version=17,
            dynamo=False,
        )
    if int8:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        fp32 = folder / (onnx_name + ".fp32")
        (folder / onnx_name).rename(fp32)
        quantize_dynamic(str(fp32), str(folder / onnx_name), weight_type=QuantType.QInt8)
        fp32.unlink()
    return folder


def build_tiny_flashrank(
    cache_dir: str | Path, model_name: str = "ms-marco-TinyBERT-L-2-v2", *, seed: int = 0, int8: bool = False
) -> Path:
    """A 2-layer, 32-wide one-logit BERT in FlashRank's layout; returns ``<cache_dir>/<model_name>``."""
    return build_random_flashrank(
        cache_dir, model_name, **TINY, vocab_size=None, seed=seed, init_std=TINY_INIT_STD, int8=int8
    )


# -- current reranker architectures ----------------------------------------------------------------
QWEN3_CHAT_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"]


def build_tiny_qwen3_reranker(directory: str | Path, *, seed: int = 0) -> Path:
    """A Qwen3-Reranker-shaped causal LM: ``Qwen3ForCausalLM`` (2 layers, 32 wide, grouped-query
    attention) and a byte-level BPE tokenizer holding Qwen3's chat tokens and "yes"/"no"."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=1200,
        special_tokens=QWEN3_CHAT_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    corpus = [" ".join(WORDS)] * 4 + ["yes no yes no", "Judge whether the Document meets the requirements"]
    tok.train_from_iterator(corpus, trainer=trainer)
    tok.add_tokens(["yes", "no"])  # single tokens, as in Qwen3's vocabulary
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        model_max_length=512,
    )
    fast.padding_side = "left"
    fast.save_pretrained(str(directory))
    _seed(seed)
    config = Qwen3Config(
        vocab_size=len(fast),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
        max_position_embeddings=512,
        initializer_range=TINY_INIT_STD,
        tie_word_embeddings=True,
        pad_token_id=fast.pad_token_id,
        eos_token_id=fast.eos_token_id,
    )
    config.architectures = ["Qwen3ForCausalLM"]
    Qwen3ForCausalLM(config).eval().save_pretrained(str(directory))
    return directory


def build_tiny_modernbert_cross_encoder(directory: str | Path, *, seed: int = 0) -> Path:
    """A ModernBERT sequence classifier with one logit (gte-reranker-modernbert-base's layout)."""
    from transformers import ModernBertConfig, ModernBertForSequenceClassification

    directory = Path(directory)
    n_vocab = write_tokenizer(directory, model_max_length=512)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(directory))
    _seed(seed)
    config = ModernBertConfig(
        vocab_size=n_vocab,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=512,
        global_attn_every_n_layers=2,
        local_attention=16,
        num_labels=1,
        initializer_range=TINY_INIT_STD,
        pad_token_id=tok.pad_token_id,
        cls_token_id=tok.cls_token_id,
        sep_token_id=tok.sep_token_id,
        bos_token_id=tok.cls_token_id,
        eos_token_id=tok.sep_token_id,
        classifier_pooling="mean",
    )
    config.architectures = ["ModernBertForSequenceClassification"]
    config.sbert_ce_default_activation_function = IDENTITY_ACTIVATION
    ModernBertForSequenceClassification(config).eval().save_pretrained(str(directory))
    return directory


def build_tiny_xlmr_cross_encoder(directory: str | Path, *, seed: int = 0) -> Path:
    """An XLM-R sequence classifier with one logit (bge-reranker-v2-m3's layout) and a unigram
    tokenizer that frames pairs as ``<s> A </s></s> B </s>``, as XLM-R's does."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import XLMRobertaConfig, XLMRobertaForSequenceClassification, XLMRobertaTokenizerFast

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    specials = ["<s>", "<pad>", "</s>", "<unk>"]
    pieces = [(t, 0.0) for t in specials]
    pieces += [("\u2581" + w, -5.0) for w in WORDS] + [(c, -10.0) for c in _CHARS + _PUNCT]
    pieces += [("\u2581", -8.0), ("<mask>", 0.0)]
    seen: set[str] = set()
    pieces = [p for p in pieces if not (p[0] in seen or seen.add(p[0]))]  # one id per piece
    tok = Tokenizer(models.Unigram(pieces, unk_id=3, byte_fallback=False))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", 0), ("</s>", 2)],
    )
    fast = XLMRobertaTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        cls_token="<s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token="<mask>",
        model_max_length=512,
    )
    fast.save_pretrained(str(directory))
    _seed(seed)
    config = XLMRobertaConfig(
        vocab_size=len(fast),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=514,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        num_labels=1,
        initializer_range=TINY_INIT_STD,
    )
    config.architectures = ["XLMRobertaForSequenceClassification"]
    XLMRobertaForSequenceClassification(config).eval().save_pretrained(str(directory))
    return directory


_REMOTE_CONFIG = """from transformers import BertConfig


class TinyRemoteConfig(BertConfig):
    model_type = "tiny-remote-reranker"
"""
_REMOTE_MODEL = """from transformers import BertForSequenceClassification

from .configuration_tiny_remote import TinyRemoteConfig


class TinyRemoteReranker(BertForSequenceClassification):
    config_class = TinyRemoteConfig
"""


def build_tiny_remote_code_cross_encoder(directory: str | Path, *, seed: int = 0) -> Path:
    """A one-logit classifier whose config points at model code shipped in the folder (``auto_map``)."""
    directory = Path(directory)
    build_tiny_cross_encoder(directory, seed=seed)
    (directory / "configuration_tiny_remote.py").write_text(_REMOTE_CONFIG, encoding="utf-8")
    (directory / "modeling_tiny_remote.py").write_text(_REMOTE_MODEL, encoding="utf-8")
    config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    config["model_type"] = "tiny-remote-reranker"
    config["architectures"] = ["TinyRemoteReranker"]
    config["auto_map"] = {
        "AutoConfig": "configuration_tiny_remote.TinyRemoteConfig",
        "AutoModelForSequenceClassification": "modeling_tiny_remote.TinyRemoteReranker",
    }
    (directory / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    return directory


# -- random copies of the real architectures -------------------------------------------------------
@dataclass(frozen=True)
class RandomLike:
    """Which real model a random copy stands for."""

    kind: str  # "cross-encoder", "flashrank" or "colbert"
    arch: str  # a key of ARCHITECTURES
    stands_for: str
    int8: bool = False  # the real file is int8 (FlashRank's), so the copy is quantised like it


REAL_MODELS: dict[str, RandomLike] = {
    "cross-encoder/ms-marco-MiniLM-L-6-v2": RandomLike(
        "cross-encoder", "minilm-l6-h384", "cross-encoder/ms-marco-MiniLM-L-6-v2"
    ),
    "cross-encoder/ms-marco-MiniLM-L-12-v2": RandomLike(
        "cross-encoder", "minilm-l12-h384", "cross-encoder/ms-marco-MiniLM-L-12-v2"
    ),
    "ms-marco-TinyBERT-L-2-v2": RandomLike(
        "flashrank", "tinybert-l2-h128", "FlashRank ms-marco-TinyBERT-L-2-v2", int8=True
    ),
    "ms-marco-MiniLM-L-12-v2": RandomLike(
        "flashrank", "minilm-l12-h384", "FlashRank ms-marco-MiniLM-L-12-v2", int8=True
    ),
    "colbert-ir/colbertv2.0": RandomLike("colbert", "bert-base", "colbert-ir/colbertv2.0"),
}


def build_random_like(
    model_id: str, directory: str | Path, *, seed: int = 0, extra_words: Iterable[str] = ()
) -> Path:
    """A random-weight copy of a real model's architecture (see :data:`REAL_MODELS`).

    Returns the folder to hand to the reranker as its model: the model folder for a cross-encoder
    or ColBERT, ``<directory>/<model_name>`` for FlashRank (whose cache dir is ``directory``).
    """
    if model_id not in REAL_MODELS:
        raise KeyError(f"no random copy for {model_id!r}; known: {sorted(REAL_MODELS)}")
    spec = REAL_MODELS[model_id]
    arch = ARCHITECTURES[spec.arch]
    if spec.kind == "cross-encoder":
        return build_random_cross_encoder(directory, **arch, seed=seed, extra_words=extra_words)
    if spec.kind == "flashrank":
        return build_random_flashrank(
            directory, model_id, **arch, seed=seed, extra_words=extra_words, int8=spec.int8
        )
    return build_random_colbert(directory, **arch, dim=128, seed=seed, extra_words=extra_words)


# -- inputs with an exact token count --------------------------------------------------------------
def make_passages(n: int, n_tokens: int, *, seed: int = 0) -> list[str]:
    """``n`` passages of exactly ``n_tokens`` word tokens each (no specials) for these tokenizers."""
    rng = random.Random(seed)
    words = [w for w in WORDS if w.isalpha()]
    out = []
    for _ in range(n):
        body = [rng.choice(words) for _ in range(n_tokens - 1)]
        out.append(" ".join(body) + ".")  # the full stop is one more token
    return out


def count_tokens(tokenizer_dir: str | Path, texts: list[str], query: str | None = None) -> list[int]:
    """Tokens per text (or per (query, text) pair) with the model's tokenizer, specials included."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    enc = tok([query] * len(texts), texts, verbose=False) if query is not None else tok(texts, verbose=False)
    return [len(ids) for ids in enc["input_ids"]]


# -- pytest session fixtures -----------------------------------------------------------------------
def _build_once(tmp_path_factory: pytest.TempPathFactory, name: str, build) -> Path:
    """Build into a per-session folder once, even when several modules import these fixtures."""
    root = tmp_path_factory.getbasetemp() / "tiny-models" / name
    done = root / ".complete"
    if not done.exists():
        root.mkdir(parents=True, exist_ok=True)
        result = build(root)
        done.write_text(json.dumps({"path": str(result)}), encoding="utf-8")
    return Path(json.loads(done.read_text(encoding="utf-8"))["path"])


@pytest.fixture(scope="session")
def tiny_cross_encoder_dir(tmp_path_factory) -> Path:
    """A tiny one-logit BERT cross-encoder folder (raw-logit activation, as the ms-marco models)."""
    return _build_once(tmp_path_factory, "cross-encoder", build_tiny_cross_encoder)


@pytest.fixture(scope="session")
def tiny_colbert_dir(tmp_path_factory) -> Path:
    """A tiny ColBERT checkpoint folder with ``artifact.metadata`` (absolute path).

    Also keeps colbert-ai's compiled C++ extension in ``.rerank-data/torch_extensions`` at the
    repository root (unless TORCH_EXTENSIONS_DIR is set), so test runs compile it only once.
    """
    os.environ.setdefault("TORCH_EXTENSIONS_DIR", str(REPO_ROOT / ".rerank-data" / "torch_extensions"))
    return _build_once(tmp_path_factory, "colbert", build_tiny_colbert)


@pytest.fixture(scope="session")
def tiny_flashrank_cache(tmp_path_factory) -> tuple[Path, str]:
    """``(cache_dir, model_name)`` with a tiny ``ms-marco-TinyBERT-L-2-v2`` stand-in in FlashRank's layout."""
    name = "ms-marco-TinyBERT-L-2-v2"
    folder = _build_once(tmp_path_factory, "flashrank", lambda root: build_tiny_flashrank(root, name))
    return folder.parent, name


@pytest.fixture(scope="session")
def tiny_flashrank_int8_cache(tmp_path_factory) -> tuple[Path, str]:
    """``(cache_dir, model_name)`` with an int8 tiny ``ms-marco-TinyBERT-L-2-v2`` (as FlashRank ships it)."""
    name = "ms-marco-TinyBERT-L-2-v2"
    folder = _build_once(
        tmp_path_factory, "flashrank-int8", lambda root: build_tiny_flashrank(root, name, int8=True)
    )
    return folder.parent, name


@pytest.fixture(scope="session")
def tiny_qwen3_reranker_dir(tmp_path_factory) -> Path:
    return _build_once(tmp_path_factory, "qwen3-reranker", build_tiny_qwen3_reranker)


@pytest.fixture(scope="session")
def tiny_modernbert_dir(tmp_path_factory) -> Path:
    return _build_once(tmp_path_factory, "modernbert", build_tiny_modernbert_cross_encoder)


@pytest.fixture(scope="session")
def tiny_xlmr_dir(tmp_path_factory) -> Path:
    return _build_once(tmp_path_factory, "xlmr", build_tiny_xlmr_cross_encoder)


def build_tiny_causal_lm(directory: str | Path, words: Iterable[str], *, seed: int = 0) -> Path:
    """A 2-layer Llama with random weights and a word-level tokenizer (one token per word of ``words``,
    split on whitespace and punctuation), saved as a local causal-LM folder ``transformers`` loads."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    names = dict.fromkeys(["[UNK]", "[PAD]", *words, "<", ">", "/", ":", "?", "."])
    vocab = {w: i for i, w in enumerate(names)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]")
    fast.save_pretrained(folder)
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=512,
        pad_token_id=vocab["[PAD]"],
        initializer_range=0.5,  # large random weights: outputs depend strongly on the input
    )
    model = LlamaForCausalLM(config)
    with torch.no_grad():  # a real pad token has a real embedding (padding_idx zeroed it)
        model.model.embed_tokens.weight[vocab["[PAD]"]] = torch.randn(32)
    model.save_pretrained(folder)
    return folder
