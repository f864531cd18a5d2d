"""Nothing forgotten: after a stage, its chosen model answers the held-out set of every earlier stage
of the run; each answer set is paired (McNemar, same items) with the answers of the model that
finished that stage. A significant drop is flagged, and `gate.stop_on_forgetting` makes it stop the
run like a failed gate (after the report is written).

Each evaluation is a step (stageN/forgetting_stageM) declared like the held-out evaluation, with
the earlier stage's eval settings (same decoding as the answers it is compared with) and that
stage's held-out step as its input."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from pydantic import ValidationError

from .errors import GateFailed
from .log import log
from .records import EvalItem, Instruction
from .results import ForgettingCell, StageResult, StepTime, at, rel
from .runner import Done, StepSpec, result_digest
from .stage import Progress, run_steps, step_times
from .stage_context import StageContext
from .stage_data import HELDOUT
from .stage_model import EVAL
from .stats import compare
from .steps import evaluate
from .store import read_jsonl


def _eval_later(ctx: StageContext, st, inputs, models) -> Done:
    (folder,) = inputs.values()  # the earlier stage's held-out step
    held = read_jsonl(folder / "records.jsonl", Instruction)
    engine = ctx.engines.get(models["evaluated"], evaluation=True)
    tag = f"after_stage{ctx.cfg.stage}"
    items = evaluate.run(held, engine, tag, ctx.cfg.eval.max_new_tokens, st)
    return Done(items, {"items": len(items)}, {"accuracies": evaluate.accuracies(items)})


def spec(m: int) -> StepSpec:
    """The step that evaluates the stage's chosen model (its context's generator) on stage m's held-out."""
    return dataclasses.replace(
        EVAL,
        name=f"forgetting_stage{m}",
        run=_eval_later,
        reads=(f"heldout_stage{m}",),
        models={"evaluated": "generator"},
        extra=lambda ctx, m=m: {**EVAL.extra(ctx), "heldout_stage": m},
        in_round=False,
    )


def _earlier(ctx: StageContext) -> list[tuple]:
    """(settings, result) of each earlier recipe stage that finished in this run folder."""
    out = []
    for cfg in ctx.recipe.stages:
        path = ctx.run_dir / f"stage{cfg.stage}" / "stage.json"
        if cfg.stage >= ctx.cfg.stage:
            continue
        if not path.is_file():
            log.info("forgetting: stage %d has no result in this run folder, not measured", cfg.stage)
            continue
        try:
            out.append((cfg, StageResult.read(path)))
        except ValidationError:
            log.warning(
                "forgetting: stage %d's stage.json is from an older cai-bootstrap, not measured", cfg.stage
            )
    return out


def _cell(ctx: StageContext, cfg_m, res_m: StageResult, folder: Path) -> ForgettingCell:
    base = read_jsonl(at(ctx.run_dir, res_m.chosen.trained_eval), EvalItem)
    later = read_jsonl(folder / "records.jsonl", EvalItem)
    metric = cfg_m.gate.metric  # how stage m's own held-out result was judged
    ob, ot, by_type = evaluate.paired(base, later, metric)
    c = compare(ob, ot, by_type)
    alpha = ctx.cfg.gate.forgetting_alpha
    return ForgettingCell(
        after_stage=ctx.cfg.stage,
        heldout_stage=cfg_m.stage,
        eval=rel(ctx.run_dir, folder / "records.jsonl"),
        metric=metric,
        comparison=c,
        dropped=c.mcnemar.b > c.mcnemar.c and c.mcnemar.p_value < alpha,
        alpha=alpha,
    )


def run(ctx: StageContext, chosen: Path) -> tuple[list[ForgettingCell], list[StepTime]]:
    """Evaluate `chosen` (the stage's chosen merged model) on every earlier stage's held-out set."""
    cells, times = [], []
    for cfg_m, res_m in _earlier(ctx):
        held = ctx.run_dir / f"stage{cfg_m.stage}" / "heldout"
        key = f"heldout_stage{cfg_m.stage}"
        done = Progress(
            folders={key: held},
            digests={key: result_digest(HELDOUT, json.loads((held / "manifest.json").read_text()))},
        )
        # The earlier stage's decoding settings: its answers are the other half of each pair.
        cfg = ctx.cfg.model_copy(update={"eval": cfg_m.eval})
        mctx = dataclasses.replace(ctx, cfg=cfg, round=0, generator=chosen)
        step = spec(cfg_m.stage)
        done = run_steps(mctx, [step], done)
        times += step_times(ctx, [step], done)
        cells.append(_cell(ctx, cfg_m, res_m, done.folders[step.name]))
    ctx.engines.release()
    return cells, times


def enforce(stage: int, cfg, cells: list[ForgettingCell]) -> None:
    """Stop the run on a flagged drop when the recipe asks to (gate.stop_on_forgetting)."""
    dropped = [c for c in cells if c.dropped]
    for c in dropped:
        log.warning(
            "stage %d forgot stage %d: %s %.1f%% -> %.1f%% (McNemar p=%.3g)",
            stage,
            c.heldout_stage,
            c.metric,
            100 * c.comparison.base.rate,
            100 * c.comparison.trained.rate,
            c.comparison.mcnemar.p_value,
        )
    if dropped and cfg.stop_on_forgetting:
        c = dropped[0]
        raise GateFailed(
            f"Stage {stage} FAILED: it forgot stage {c.heldout_stage} ({c.metric} "
            f"{c.comparison.base.rate:.1%} -> {c.comparison.trained.rate:.1%}, McNemar p="
            f"{c.comparison.mcnemar.p_value:.3g} < {c.alpha})"
        )
