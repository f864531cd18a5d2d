"""A stage's judge calibration (steps/calibrate.py), cached in the run folder per judge model and
settings, and what the stage's steps do with it: the safety evaluation reports a refused judge's
figures as not measured, the pairs step drops the ties that judge would have ordered, and stage 6,
whose pairs are all judge-ordered, stops unless its judge passes."""

from __future__ import annotations

import json
from importlib import resources

from .config import Recipe
from .constitution import load_constitution
from .engines.holder import model_identity
from .errors import UserError
from .log import step_finished, step_started
from .runner import StepTimeout
from .signing import signed
from .stage_context import StageContext
from .steps import calibrate
from .steps.calibrate import Calibration, Question
from .store import Step, canonical_hash
from .templates import template_hash

# Stages whose preference pairs come from the judge alone (no verifiable constraints).
JUDGE_ONLY_STAGES = (6,)


def questions(ctx: StageContext) -> list[Question]:
    """What this stage asks its judge: harm and refusal for the safety evaluation, preference for pairs."""
    out = [Question.HARM, Question.REFUSAL] if ctx.cfg.eval.safety.enabled else []
    return out + ([Question.PREFERENCE] if ctx.cfg.judge.enabled else [])


# Judge and safety settings the calibration does not read, and why; every other field of the two
# sections is in its key, by the step runner's rule (`signed`). tests/test_signatures.py changes each.
CALIBRATION_IGNORES: dict[str, str] = {
    "judge.enabled": "which questions are asked is in the key itself",
    "judge.principle": "each labelled preference item names its own principle",
    "judge.reward_device": "where the reward model runs, not what it scores",
    "judge.reward_batch_size": "answers per reward-model pass, not what it scores",
    "eval.safety.enabled": "which questions are asked is in the key itself",
    "eval.safety.n_redteam": "the evaluation's prompt subset; calibration uses its labelled sets",
    "eval.safety.n_benign": "the evaluation's prompt subset; calibration uses its labelled sets",
    "eval.safety.max_new_tokens": "the evaluation's answer length; calibration generates nothing",
    "eval.safety.seed": "seeds the evaluation's subsets; judge.seed seeds the calibration's",
}


def calibration_key(ctx: StageContext, qs: list[Question]) -> dict:
    """What a calibration depends on: the questions, the judge's weights and precision, the judge and
    safety settings it reads, the constitution, the templates and the labelled sets."""
    skip = frozenset(CALIBRATION_IGNORES)
    data = resources.files("cai_bootstrap").joinpath("data")
    return {
        "questions": [q.value for q in qs],
        "judge_model": model_identity(ctx.judge),
        "dtype": ctx.recipe.model.dtype,
        "judge": signed(ctx.cfg.judge, skip, "judge."),
        "safety": signed(ctx.cfg.eval.safety, skip, "eval.safety."),
        "constitution": ctx.constitution.digest(),
        "templates": template_hash("safety_judge", "judge"),
        "data": canonical_hash([data.joinpath(q.data_file).read_text(encoding="utf-8") for q in qs]),
    }


def calibration(ctx: StageContext) -> Calibration | None:
    """The stage judge's calibration, computed once per judge and settings (runs/<name>/judge_calibration/);
    None when the stage asks its judge nothing."""
    qs = questions(ctx)
    if not qs:
        return None
    conf = calibration_key(ctx, qs)
    st = Step(ctx.run_dir / "judge_calibration" / canonical_hash(conf), conf, {})
    where = st.folder.relative_to(ctx.run_dir)
    state = st.state()
    if state != "done":
        step_started(where, state)
        needs_model = qs != [Question.PREFERENCE] or not ctx.cfg.judge.reward_model
        engine = ctx.engines.get(ctx.judge) if needs_model else None
        name = str(ctx.judge) + (
            f" (preference: {ctx.cfg.judge.reward_model})" if ctx.cfg.judge.reward_model else ""
        )
        with StepTimeout("evaluation", ctx.recipe.run.timeouts.evaluation):
            cal = calibrate.run(
                qs, ctx.cfg.judge, ctx.cfg.eval.safety, engine, ctx.constitution, judge_name=name
            )
        counts = {q.value: t.n for q, t in cal.types.items()}
        done = st.finish(
            None, counts, {"calibration": cal.model_dump(mode="json"), "lines": cal.lines()}, outputs=()
        )
        step_finished(where, done)
    manifest = json.loads(st.manifest_path.read_text())
    return Calibration.model_validate(manifest["calibration"])


def pair_judge(ctx: StageContext) -> dict | None:
    """The pairs judge's calibration in brief: {'line': ..., 'refused': 'not measured: ...' or None};
    None when the stage's pairs use no judge. Part of the pairs step's signature and manifest."""
    cal = calibration(ctx) if ctx.cfg.judge.enabled else None
    t = cal.types.get(Question.PREFERENCE) if cal else None
    if t is None:
        return None
    return {"line": f"{t.describe()}; {t.bias()}", "refused": cal.refusal(Question.PREFERENCE)}


def require_judge(ctx: StageContext) -> None:
    """Stop a judge-only stage at its start when its judge failed calibration (one line, exit 2)."""
    if ctx.cfg.stage not in JUDGE_ONLY_STAGES or not ctx.cfg.judge.enabled:
        return
    why = (pair_judge(ctx) or {}).get("refused")
    if why:
        raise UserError(
            f"stage {ctx.cfg.stage} orders its pairs by a judge, and judge {ctx.judge} failed calibration "
            f"({why.removeprefix('not measured: ')})",
            "set model.judge to a local model folder that passes `cai-bootstrap calibrate --judge FOLDER`",
        )


def calibrate_alone(recipe: Recipe, judge: str, stage: int | None = None) -> Calibration:
    """`cai-bootstrap calibrate`: calibrate model `judge` (embedded:NAME or a local folder) with one
    stage's judge and safety settings of `recipe` (the first stage by default) on every question type."""
    from . import models
    from .engines.hf import HFEngine

    matching = [s for s in recipe.stages if stage is None or s.stage == stage]
    if not matching:
        raise UserError(
            f"the recipe has no stage {stage}", "pass a stage the recipe lists, or leave --stage out"
        )
    cfg, m = matching[0], recipe.model
    path = models.resolve(judge)
    engine = HFEngine.from_path(
        path, m.dtype, m.resolved_device(), m.batch_size, liger_kernels=m.liger_kernels, canary=m.canary
    )
    try:
        return calibrate.run(
            list(Question),
            cfg.judge,
            cfg.eval.safety,
            engine,
            load_constitution(recipe.constitution),
            judge_name=judge,
        )
    finally:
        models.free(engine.model)
