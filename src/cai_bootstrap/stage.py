"""A stage is data: per stage kind, the steps of its baseline (once per stage) and of each round, in
order. `run_steps` runs such a list through the one step runner; pipeline.py runs the rounds.

    baseline: heldout -> eval_base -> content_base -> safety_base (+ per eval.ifeval_files: import,
              base evaluation)
    round:    instructions -> responses -> critique -> pairs -> sft -> dpo -> model -> eval -> content
              -> safety
              (+ per eval.ifeval_files: trained evaluation)

Stages 2-3 start their baseline with `written` (the input model writes their tasks, when enabled;
stage_written.py), which their held-out set and instructions read. What else differs (the task
builders, stages 4-5 reading earlier stages' answers) is in `stage_context.KINDS` and
steps/instructions.py. After the rounds, pipeline.py evaluates the chosen model on every earlier
stage's held-out set (forgetting.py) and, after stage 4, decides the judge hand-off (judge_handoff.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from .modelref import model_ref
from .results import RoundResult, StepTime, rel
from .runner import StepSpec, result_digest, run_step
from .stage_calibration import require_judge
from .stage_content import CONTENT, CONTENT_BASE, comparison
from .stage_context import StageContext
from .stage_data import CRITIQUE, HELDOUT, INSTRUCTIONS, PAIRS, RESPONSES
from .stage_model import DPO, EVAL, EVAL_BASE, MODEL, SAFETY, SAFETY_BASE, SFT, external_steps
from .stage_written import HELDOUT_WRITTEN, INSTRUCTIONS_WRITTEN, WRITTEN

BASELINE = [HELDOUT, EVAL_BASE, CONTENT_BASE, SAFETY_BASE]
ROUND = [INSTRUCTIONS, RESPONSES, CRITIQUE, PAIRS, SFT, DPO, MODEL, EVAL, CONTENT, SAFETY]
# Stages 2-3: the input model may write their tasks first (stage_written.py; off by default).
WRITTEN_BASELINE = [WRITTEN, HELDOUT_WRITTEN, *BASELINE[1:]]
WRITTEN_ROUND = [INSTRUCTIONS_WRITTEN, *ROUND[1:]]
STEPS: dict[int, tuple[list[StepSpec], list[StepSpec]]] = {
    1: (BASELINE, ROUND),
    2: (WRITTEN_BASELINE, WRITTEN_ROUND),
    3: (WRITTEN_BASELINE, WRITTEN_ROUND),
    4: (BASELINE, ROUND),
    5: (BASELINE, ROUND),
    6: (BASELINE, ROUND),
}

# Stage settings no step reads: the pipeline applies them to the steps' results on every run.
NOT_IN_STEPS: dict[str, str] = {
    "stage": "names the stage folder; steps that depend on the stage kind hash it in `extra`",
    "max_rounds": "how many rounds run; each round's steps are cached on their own",
    "gate": "decided afresh from the evaluations on every run, nothing is cached",
    "eval.ifeval_files": "each file is its own import and evaluation steps (`external_steps`)",
}


def plan(ctx: StageContext) -> tuple[list[StepSpec], list[StepSpec]]:
    """(baseline steps, round steps) of this stage, with one step per extra IFEval file."""
    base, rnd = STEPS[ctx.cfg.stage]
    ext_base, ext_round = external_steps(ctx)
    return [*base, *ext_base], [*rnd, *ext_round]


@dataclass
class Progress:
    """Finished steps so far in this stage: folder, result digest and manifest by step name
    (a round's steps shadow nothing of the baseline's: their names differ)."""

    folders: dict[str, Path] = field(default_factory=dict)
    digests: dict[str, str] = field(default_factory=dict)
    manifests: dict[str, dict] = field(default_factory=dict)

    def copy(self) -> Progress:
        return Progress(dict(self.folders), dict(self.digests), dict(self.manifests))


def run_steps(ctx: StageContext, specs: list[StepSpec], done: Progress) -> Progress:
    """Run `specs` in order; each reads earlier steps' folders and is given its models."""
    for spec in specs:
        inputs = {r: done.folders[r] for r in spec.reads}
        models = {role: ctx.model(src, done.folders) for role, src in spec.models.items()}
        manifest = run_step(spec, ctx, inputs, models, done.digests)
        done.folders[spec.name] = spec.folder(ctx.stage_dir, ctx.round)
        done.digests[spec.name] = result_digest(spec, manifest)
        done.manifests[spec.name] = manifest
    return done


def step_times(ctx: StageContext, specs: list[StepSpec], done: Progress) -> list[StepTime]:
    return [
        StepTime(
            step=str(done.folders[s.name].relative_to(ctx.stage_dir)),
            seconds=round(done.manifests[s.name].get("seconds", 0.0), 1),
            counts=done.manifests[s.name].get("counts", {}),
        )
        for s in specs
    ]


def _accuracies(done: Progress, specs: list[StepSpec], suffix: str) -> dict[str, dict]:
    ext = [s.name for s in specs if s.name.startswith("ifeval_") and s.name.endswith(suffix)]
    return {n.removeprefix("ifeval_").removesuffix(suffix): done.manifests[n]["accuracies"] for n in ext}


def baseline(ctx: StageContext) -> Progress:
    """The stage's held-out set and its input model's evaluations on it (same frame, precision, greedy)."""
    require_judge(ctx)  # a judge-only stage stops here, before any work, when its judge failed calibration
    done = run_steps(ctx, plan(ctx)[0], Progress())
    ctx.engines.release()
    return done


def run_round(ctx: StageContext, base: Progress) -> tuple[RoundResult, list[StepTime]]:
    """One round: instructions, answers, critique, pairs, SFT, DPO, merge, held-out evaluations."""
    specs = plan(ctx)
    done = run_steps(ctx, specs[1], base.copy())
    ctx.engines.release()
    safety = done.manifests["safety"].get("result")
    result = RoundResult(
        round=ctx.round,
        generator=model_ref(ctx.generator, ctx.run_dir),  # never a cache path
        model=rel(ctx.run_dir, done.folders["model"]),
        trained_eval=rel(ctx.run_dir, done.folders["eval"] / "records.jsonl"),
        safety=rel(ctx.run_dir, done.folders["safety"]) if safety else None,
        external={
            "base": _accuracies(done, specs[0], "_base"),
            "trained": _accuracies(done, specs[1], "_trained"),
        },
        # The round's steps' own recorded times (their manifests), not this invocation's wall time:
        # a resume that skips finished steps keeps the time they took when they were made.
        seconds=round(sum(done.manifests[s.name].get("seconds", 0.0) for s in specs[1]), 1),
        content=comparison(done.manifests.get("content")),
    )
    return result, step_times(ctx, specs[1], done)


def for_round(ctx: StageContext, r: int, generator: Path) -> StageContext:
    return replace(ctx, round=r, generator=generator)
