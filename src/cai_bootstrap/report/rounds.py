"""The report's rounds table: every round of a stage (not only the chosen one), its four held-out
measures with 95% Wilson intervals, and McNemar on the gate's measure against the baseline and
against the round before, from the evaluation records alone (paired on the same held-out items)."""

from __future__ import annotations

from pathlib import Path

from ..records import EvalItem
from ..results import StageResult, at
from ..stats import McNemarResult, RateSummary, mcnemar, summarize_bools
from ..steps import evaluate
from ..store import read_jsonl
from .model import IFEVAL_METRICS, RoundRow


def _measures(items: list[EvalItem]) -> dict[str, RateSummary]:
    outcomes = {
        "prompt_strict": [it.all_strict for it in items],
        "prompt_loose": [it.all_loose for it in items],
        "instruction_strict": [p for it in items for p in it.passed_strict],
        "instruction_loose": [p for it in items for p in it.passed_loose],
    }
    return {m: summarize_bools(outcomes[m]) for m in IFEVAL_METRICS}


def _test(before: list[EvalItem], after: list[EvalItem], metric: str) -> McNemarResult:
    b, a, _ = evaluate.paired(before, after, metric)
    return mcnemar(b, a)


def round_rows(run_dir: Path, summary: StageResult, metric: str) -> list[RoundRow]:
    """The baseline and every round, in order; `metric` is the gate's measure (tests use it)."""
    base = read_jsonl(at(run_dir, summary.base_eval), EvalItem)
    rows = [RoundRow(round=0, label="baseline", measures=_measures(base))]
    previous = base
    for r in summary.rounds:
        items = read_jsonl(at(run_dir, r.trained_eval), EvalItem)
        rows.append(
            RoundRow(
                round=r.round,
                label=f"round {r.round}",
                chosen=r.round == summary.chosen_round,
                measures=_measures(items),
                vs_baseline=_test(base, items, metric),
                vs_previous=_test(previous, items, metric) if r.round > 1 else None,
            )
        )
        previous = items
    return rows
