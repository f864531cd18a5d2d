"""RESULTS.md rows from a stage folder: per round, the four held-out rates with Wilson 95% intervals,
McNemar against the stage's baseline (prompt- and instruction-level strict), pairs and SFT examples,
and minutes per step (from the manifests).

    PYTHONPATH=src python3 benchmarks/results_table.py runs/NAME/stage1
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cai_bootstrap.records import EvalItem
from cai_bootstrap.stats import compare, wilson
from cai_bootstrap.steps import evaluate
from cai_bootstrap.store import read_jsonl


def _rate(items: list[EvalItem], metric: str) -> str:
    acc = evaluate.accuracies(items)
    n = acc["n_prompts"] if metric.startswith("prompt") else acc["n_instructions"]
    k = round(acc[metric] * n)
    lo, hi = wilson(k, n)
    return f"{100 * acc[metric]:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]"


def _mcnemar(base: list[EvalItem], trained: list[EvalItem], metric: str) -> str:
    ob, ot, by_type = evaluate.paired(base, trained, metric)
    m = compare(ob, ot, by_type).mcnemar
    return f"b={m.b} c={m.c} p={m.p_value:.2g}"


def _minutes(folder: Path) -> str:
    parts = []
    for step in ("instructions", "responses", "critique", "pairs", "sft", "dpo", "model", "eval", "safety"):
        m = folder / step / "manifest.json"
        if m.exists():
            parts.append(f"{step} {json.loads(m.read_text()).get('seconds', 0) / 60:.1f}")
    return ", ".join(parts)


def rows(stage: Path) -> list[str]:
    base = read_jsonl(stage / "eval_base" / "records.jsonl", EvalItem)
    metrics = ("prompt_strict", "prompt_loose", "instruction_strict", "instruction_loose")
    out = [
        "| model | "
        + " | ".join(metrics)
        + " | McNemar prompt strict | McNemar instr. strict | pairs | SFT | minutes per step |",
        "|---" * 10 + "|",
        "| base | " + " | ".join(_rate(base, m) for m in metrics) + " | | | | | |",
    ]
    for rd in sorted(stage.glob("round*"), key=lambda p: int(p.name[5:])):
        if not (rd / "eval" / "records.jsonl").exists():
            continue
        trained = read_jsonl(rd / "eval" / "records.jsonl", EvalItem)
        counts = json.loads((rd / "pairs" / "manifest.json").read_text())["counts"]
        out.append(
            f"| {rd.name} | "
            + " | ".join(_rate(trained, m) for m in metrics)
            + f" | {_mcnemar(base, trained, 'prompt_strict')} | {_mcnemar(base, trained, 'instruction_strict')}"
            + f" | {counts['pairs']} | {counts['sft_examples']} | {_minutes(rd)} |"
        )
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("stage_dir", type=Path, help="a stage folder, e.g. runs/NAME/stage1")
    ns = parser.parse_args()
    if not (ns.stage_dir / "eval_base" / "records.jsonl").is_file():
        parser.error(f"{ns.stage_dir} is not a stage folder (no eval_base/records.jsonl)")
    print("\n".join(rows(ns.stage_dir)))
