"""Stage 4 makes the judge (the bootstrap the method promises): after stage 4, its chosen model's
skill at stage 4's verdicts is measured on the stage's held-out items, and the model is calibrated
on the labelled sets (steps/calibrate.py: harm, refusal, preference). When every question type
reaches `judge.min_balanced_accuracy`, it judges stages 5 and 6; otherwise they keep the judge they
had (a fixed `model.judge`, or the stage's input model, which a judge-only stage refuses when it
fails its own calibration). The decision is read back from stage4/stage.json, so `status` and a
resumed run see the same judge."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

from pydantic import ValidationError

from .records import EvalItem, Instruction
from .results import JudgeHandoff, JudgeSkill, StageResult, at, rel
from .stage_calibration import calibration
from .stage_context import StageContext
from .stats import summarize_bools, wilson
from .store import read_jsonl
from .tasks.curriculum.stage4 import label_of

MAKER = 4  # the stage whose model becomes the judge
JUDGED = (5, 6)  # the stages it judges when its calibration passes
KINDS = ("judge_choice", "judge_yes_no")


def skill(held: list[Instruction], items: list[EvalItem]) -> JudgeSkill | None:
    """Balanced accuracy over the verdicts A, B, yes and no of the held-out judging items; None if none."""
    labels = {i.id: label_of(i) for i in held if i.task_kind in KINDS}
    outcomes: dict[str, list[bool]] = {}
    for it in items:
        if it.instruction_id in labels:
            outcomes.setdefault(labels[it.instruction_id], []).append(it.all_strict)
    if not outcomes:
        return None
    recall = {v: summarize_bools(o) for v, o in sorted(outcomes.items())}
    ba = sum(r.rate for r in recall.values()) / len(recall)
    n = sum(r.n for r in recall.values())
    if len({r.n for r in recall.values()}) == 1:
        # Equal counts per verdict (stage4.balanced): balanced accuracy is plain accuracy, a binomial rate.
        low, high = wilson(sum(r.successes for r in recall.values()), n)
    else:
        # Unequal counts: normal approximation of a mean of independent binomial rates (its variance is
        # sum p(1-p)/n_k over K verdicts, divided by K^2), clipped to [0, 1].
        se = math.sqrt(sum(r.rate * (1 - r.rate) / r.n for r in recall.values())) / len(recall)
        low, high = max(0.0, ba - 1.96 * se), min(1.0, ba + 1.96 * se)
    return JudgeSkill(n=n, balanced_accuracy=ba, ci_low=low, ci_high=high, recall=recall)


def skill_line(s: JudgeSkill | None, who: str) -> str:
    if s is None:
        return f"{who}: no judging items on the held-out set"
    per = ", ".join(f"{v} {r.successes}/{r.n}" for v, r in s.recall.items())
    return (
        f"{who} as judge on stage 4's held-out items: balanced accuracy {s.balanced_accuracy:.2f} "
        f"[{s.ci_low:.2f}, {s.ci_high:.2f}] on {s.n} ({per})"
    )


def _calibrated(ctx: StageContext, model: Path) -> tuple[list[str], bool]:
    """The model's calibration on every question type, with this stage's judge and safety settings
    (the model itself answers the preference question: no reward model)."""
    judge = ctx.cfg.judge.model_copy(update={"enabled": True, "reward_model": None})
    safety = ctx.cfg.eval.safety.model_copy(update={"enabled": True})
    cfg = ctx.cfg.model_copy(
        update={"judge": judge, "eval": ctx.cfg.eval.model_copy(update={"safety": safety})}
    )
    cal = calibration(dataclasses.replace(ctx, cfg=cfg, handoff_judge=model))
    ctx.engines.release()
    return cal.lines(), all(t.accepted for t in cal.types.values())


def assess(ctx: StageContext, model: Path, base_eval: Path, trained_eval: Path) -> JudgeHandoff:
    """Stage 4's chosen model: its judging skill (and its input model's) and whether it becomes the judge."""
    held = read_jsonl(ctx.stage_dir / "heldout" / "records.jsonl", Instruction)
    base_skill = skill(held, read_jsonl(base_eval, EvalItem))
    trained_skill = skill(held, read_jsonl(trained_eval, EvalItem))
    common = {"model": rel(ctx.run_dir, model), "base_skill": base_skill, "skill": trained_skill}
    if not any(s.stage in JUDGED for s in ctx.recipe.stages):
        return JudgeHandoff(**common, accepted=False, reason="no stage 5 or 6 in the recipe: not calibrated")
    lines, accepted = _calibrated(ctx, model)
    bar = ctx.cfg.judge.min_balanced_accuracy
    reason = (
        f"stage 4's model judges stages 5 and 6: every question type reached {bar:.2f}"
        if accepted
        else f"stage 4's model is not the judge of stages 5 and 6: a question type stayed below {bar:.2f}"
    )
    return JudgeHandoff(**common, calibration=lines, accepted=accepted, reason=reason)


def _stage4(run_dir: Path) -> StageResult | None:
    path = Path(run_dir) / f"stage{MAKER}" / "stage.json"
    try:
        return StageResult.read(path) if path.is_file() else None
    except ValidationError:
        return None  # an older stage.json: no hand-off was made


def judge_for(run_dir: Path, stage: int) -> Path | None:
    """Stage 4's chosen model when stage `stage` is one it judges and its calibration passed, else None."""
    res = _stage4(run_dir) if stage in JUDGED else None
    if res is None or res.handoff is None or not res.handoff.accepted:
        return None
    return at(run_dir, res.handoff.model)


def describe(ctx: StageContext) -> str:
    """One line for stage.json and the report: which model judged this stage, and why that one."""
    if ctx.handoff_judge is not None:
        return f"judge: stage 4's model {rel(ctx.run_dir, ctx.handoff_judge)} (its calibration passed)"
    who = f"model.judge {ctx.recipe.model.judge}" if ctx.recipe.model.judge else "the stage's input model"
    res = _stage4(ctx.run_dir) if ctx.cfg.stage in JUDGED else None
    why = f" ({res.handoff.reason})" if res and res.handoff else ""
    return f"judge: {who}{why}"
