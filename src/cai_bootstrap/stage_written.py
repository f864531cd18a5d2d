"""Stages 2-3's model-written tasks as a baseline step: the stage's input model writes passages and
questions (stage 2) or words and categories (stage 3); tasks/curriculum/written.py keeps those whose
check computes. The held-out set and every round's instructions read its records, so both splits
draw on one pool, split by topic or subject."""

from __future__ import annotations

import dataclasses
from collections import Counter

from .engines import Sampling
from .errors import StepFailed
from .runner import Done, StepSpec
from .stage_context import StageContext
from .stage_data import HELDOUT, INSTRUCTIONS, TASK_DATA
from .tasks.curriculum import written


def _write(ctx: StageContext, st, inputs, models) -> Done:
    cfg = ctx.cfg.instructions.model_written
    if not cfg.enabled:
        return Done(None, {"written": 0, "kept": 0})  # no records file: the packaged lists alone
    sampling = Sampling(
        n=1, temperature=cfg.temperature, top_p=cfg.top_p, max_new_tokens=cfg.max_new_tokens, seed=ctx.seed
    )
    items = written.write(
        ctx.engines.get(models["writer"]), ctx.cfg.stage, cfg.samples, cfg.shots, sampling, ctx.seed
    )
    ctx.engines.release()
    dropped = Counter(i.reason for i in items if not i.kept)
    if not any(i.kept for i in items):
        why = ", ".join(f"{r}: {n}" for r, n in dropped.most_common(3))
        raise StepFailed(
            f"stage {ctx.cfg.stage}: the model wrote {len(items)} tasks and none could be kept ({why})",
            "raise instructions.model_written.samples or max_new_tokens, or set model_written.enabled: false",
        )
    counts = {"written": len(items), "kept": sum(i.kept for i in items), "dropped": sum(dropped.values())}
    return Done(items, counts, {"dropped": dict(dropped.most_common())})


WRITTEN = StepSpec(
    "written",
    _write,
    settings=("instructions.model_written",),
    models={"writer": "base"},
    resources=TASK_DATA,
    timeout="generation",
    extra=lambda ctx: {"seed": ctx.seed, "stage": ctx.cfg.stage, "dtype": ctx.recipe.model.dtype},
    in_round=False,
)
# Stages 2-3 read the written step's records, an input; stage 1's steps keep the section in their
# signatures (it changes nothing there, and a test checks that every setting is read somewhere).
_VIA_RECORDS = {"instructions.model_written": "read through the written step's records, an input"}
HELDOUT_WRITTEN = dataclasses.replace(
    HELDOUT, reads=("written",), ignores={**HELDOUT.ignores, **_VIA_RECORDS}
)
INSTRUCTIONS_WRITTEN = dataclasses.replace(
    INSTRUCTIONS, reads=(*INSTRUCTIONS.reads, "written"), ignores={**INSTRUCTIONS.ignores, **_VIA_RECORDS}
)
