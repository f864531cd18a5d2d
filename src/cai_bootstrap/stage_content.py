"""The content steps (steps/content_measures.py): the baseline's held-out answers measured once per
stage, each round's trained answers measured and compared with them. Relevance is scored by the
stage's input model for both, so base and trained answers are judged by the same yardstick."""

from __future__ import annotations

import dataclasses

from .records import EvalItem, Instruction
from .runner import Done, StepSpec
from .stage_context import StageContext
from .steps import content_measures as cm
from .store import read_jsonl, write_jsonl
from .tasks.content_checks import relevance_scorer


def _content(ctx: StageContext, st, inputs, models) -> Done:
    cfg = ctx.cfg.eval.content
    if not cfg.enabled:
        write_jsonl(st.records_path, [])
        return Done(None, {"items": 0}, {"comparison": None})
    held = read_jsonl(inputs["heldout"] / "records.jsonl", Instruction)
    answers = "eval" if "eval" in inputs else "eval_base"
    items = read_jsonl(inputs[answers] / "records.jsonl", EvalItem)
    scorer = relevance_scorer(ctx.engines.get(models["scorer"], evaluation=True)) if cfg.relevance else None
    recs = cm.measure(cfg, held, items, scorer)
    comparison = None
    if "content_base" in inputs:
        base = read_jsonl(inputs["content_base"] / "records.jsonl", cm.ContentRecord)
        c = cm.compare_content(base, recs, cfg.alpha)
        comparison = c.model_dump(mode="json") if c.n else None  # no content requests held out
    # Zero records is a legitimate outcome (a stage that holds out no content requests).
    write_jsonl(st.records_path, recs)
    return Done(None, {"items": len(recs)}, {"comparison": comparison})


CONTENT_BASE = StepSpec(
    "content_base",
    _content,
    settings=("eval.content",),
    ignores={"eval.content.alpha": "used only where base and trained are compared"},
    reads=("heldout", "eval_base"),
    models={"scorer": "base"},
    resources=("tasks/content_checks.py",),
    timeout="evaluation",
    in_round=False,
)
CONTENT = dataclasses.replace(
    CONTENT_BASE, name="content", reads=("heldout", "eval", "content_base"), ignores={}, in_round=True
)


def comparison(manifest: dict | None) -> cm.ContentComparison | None:
    """The content step's comparison from its manifest (None when off or not run)."""
    data = (manifest or {}).get("comparison")
    return cm.ContentComparison.model_validate(data) if data else None
