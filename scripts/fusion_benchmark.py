"""When does fusing a reranker's order with the first stage's pay? Measured on Cranfield (or any BEIR folder).

Runs one evaluation (the code behind ``evaluate``) with the first stage, the offline rerankers and their
fusions on the same candidates, in each fusion mode (RRF k=60; weighted min-max scores with equal
weights), then fits the weights of ``first stage + each reranker`` by 5-fold cross-validation by query
(held-out figures only). For each fusion it prints nDCG@10 and its difference from the BEST of its
components on the same queries, with a paired randomisation test (two-sided) and a 95% bootstrap interval
of the difference: a fusion "pays" when the interval is above zero (the verdict's rule and its interval).

    python scripts/fusion_benchmark.py                       # Cranfield next to the repository, BM25 top 100
    python scripts/fusion_benchmark.py --depth 50 --json fusion.json

Uses the packaged MiniLM (offline). Encodings are cached under the data folder (``RERANK_CACHE_DIR``).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RERANKERS = ("bi-encoder", "late-interaction")


def _against_best(fused: dict[str, float], parts: dict[str, dict[str, float]]) -> dict[str, Any]:
    """The fusion against the best of its components, by the verdict's own estimate and rule."""
    from rerank_core.analysis import estimate_lift

    means = {c: sum(v.values()) / len(v) for c, v in parts.items()}
    best = max(means, key=lambda c: means[c])
    lift = estimate_lift("fusion", parts[best], fused)
    return {
        "nDCG@10": sum(fused.values()) / len(fused),
        "best_component": best,
        "best_component_nDCG@10": means[best],
        "diff": lift.lift,
        "ci95": [lift.ci_low, lift.ci_high],
        "p": lift.p_value,
        "pays": lift.clearly_positive,
    }


def _compare(report: Any, name: str, components: list[str]) -> dict[str, Any]:
    fused = report.methods[name].per_query["nDCG@10"]
    row = _against_best(fused, {c: report.methods[c].per_query["nDCG@10"] for c in components})
    latency = report.methods[name].latency or {}
    row["p50_ms"] = latency.get("p50")
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default=str(ROOT.parent / "shared" / "data" / "cranfield"))
    parser.add_argument("--first-stage", default="bm25")
    parser.add_argument("--depth", type=int, default=100)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--json", help="also write the figures as JSON here")
    args = parser.parse_args(argv)

    from rerank_core.config import load_settings
    from rerank_core.evaluation import run_evaluation
    from rerank_core.fusion import fit_fusion
    from rerank_core.pipeline import Runtime
    from rerank_core.readers import read_beir

    dataset = read_beir(args.dataset).dataset
    settings = load_settings()
    runtime = Runtime()
    fs = args.first_stage
    fusions = [f"fusion:{fs}+{r}" for r in RERANKERS] + [
        f"fusion:{'+'.join(RERANKERS)}",
        f"fusion:{fs}+{'+'.join(RERANKERS)}",
    ]
    out: dict[str, Any] = {"dataset": dataset.name, "first_stage": fs, "depth": args.depth, "modes": {}}
    print(
        f"{dataset.name}: {len(dataset.judged_query_ids)} queries, first stage {fs} top {args.depth}; nDCG@10"
    )
    for mode, options in (("rrf", {"mode": "rrf", "k": 60}), ("weighted", {"mode": "weighted"})):
        mode_settings = replace(settings, methods={**settings.methods, "fusion": options})
        report = run_evaluation(
            dataset, fs, args.depth, [fs, *RERANKERS, *fusions], settings=mode_settings, runtime=runtime
        )
        if mode == "rrf":
            out["methods"] = {m: report.methods[m].metrics["nDCG@10"] for m in (fs, *RERANKERS)}  # type: ignore[index]
            for m, v in out["methods"].items():
                print(f"  {m:<44} {v:.4f}")
        rows = {}
        for name in fusions:
            parts = name.split(":", 1)[1].split("+")
            rows[name] = row = _compare(report, name, parts)
            print(
                f"  {name + ' (' + mode + ')':<44} {row['nDCG@10']:.4f}  vs best part {row['best_component']} "
                f"{row['diff']:+.4f} (95% CI {row['ci95'][0]:+.4f} to {row['ci95'][1]:+.4f}, p = {row['p']:.3f})"
                f", p50 {row['p50_ms']:.0f} ms{'  pays' if row['pays'] else ''}"
            )
        out["modes"][mode] = rows
    fitted: dict[str, Any] = {}
    for reranker in RERANKERS:
        fit = fit_fusion(
            dataset,
            fs,
            args.depth,
            [fs, reranker],
            name=f"fit-{fs}-{reranker}",
            mode="weighted",
            folds=args.folds,
            settings=settings,
            runtime=runtime,
        )
        summary = fit.summary()
        row = _against_best(fit.held_out, fit.components)
        fitted[reranker] = {**summary, **row, "fold_weights": [list(w) for w in fit.config.fold_weights]}
        print(
            f"  fitted weighted {fs}+{reranker}, held out ({args.folds} folds): {summary['held_out']:.4f} "
            f"vs best part {row['best_component']} {row['diff']:+.4f} (95% CI {row['ci95'][0]:+.4f} to "
            f"{row['ci95'][1]:+.4f}, p = {row['p']:.3f}){'  pays' if row['pays'] else ''}; equal weights "
            f"{summary['unfitted']:.4f}; weights per fold "
            f"{', '.join('/'.join(f'{w:g}' for w in ws) for ws in fit.config.fold_weights)}"
        )
    out["fitted"] = fitted
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
