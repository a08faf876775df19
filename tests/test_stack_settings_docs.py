"""The settings shown in the README and rerank.example.toml for engines and rerank servers are
accepted by the backends they name (every key known, every value valid), without any network."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from rerank_core.config import Settings
from rerank_core.registry import RERANKERS, RETRIEVERS, create_reranker, create_retriever

ROOT = Path(__file__).resolve().parents[1]
STACK = {
    "opensearch",
    "elasticsearch",
    "qdrant",
    "pgvector",
    "chroma",
    "http",
    "tei",
    "jina",
    "vllm-score",
    "voyage",
}


def readme_sections() -> dict[str, dict]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    found: dict[str, dict] = {}
    for block in re.findall(r"```toml\n(.*?)```", text, re.S):
        found.update(tomllib.loads(block).get("methods", {}))
    return found


def example_sections() -> dict[str, dict]:
    text = (ROOT / "rerank.example.toml").read_text(encoding="utf-8")
    # the stack's sections are commented out: uncomment the lines that follow a "# [methods." header
    lines, on = [], False
    for line in text.splitlines():
        if re.match(r"# \[methods\.", line):
            on = True
        elif not line.startswith("# ") or line.startswith("# --"):
            on = False
        if on and re.match(r"# (\[|\w+ =)", line):
            lines.append(line[2:])
    return tomllib.loads("\n".join(lines)).get("methods", {})


@pytest.mark.parametrize("source", [readme_sections, example_sections], ids=["README", "example"])
def test_every_stack_method_documented_and_accepted(source):
    sections = source()
    assert STACK <= set(sections), STACK - set(sections)
    for name in STACK:
        settings = Settings(methods={name: sections[name]})
        if name in RETRIEVERS:
            create_retriever(name, settings)
        else:
            assert name in RERANKERS
            create_reranker(name, settings)
