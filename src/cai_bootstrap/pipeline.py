"""The stage loop: for each stage, the baseline, then rounds of data -> pairs -> training until the
gate passes, `max_rounds` is reached or the held-out score drops; the report; the handoff.

`run` is the whole method in order; `cai-bootstrap run` calls it. A failed gate stops the run
(exit 3) after the report is written.
"""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path

from . import kernels, models
from .config import Recipe, StageSettings, dump
from .constitution import load_constitution
from .engines.holder import Engines
from .errors import UserError
from .log import log
from .stage import baseline, load_eval, run_round
from .stage_context import StageContext
from .stats import compare
from .steps import evaluate, gate
from .store import RunLock, atomic_write_text


def _write_run_header(recipe: Recipe) -> None:
    run_dir = recipe.run_dir()
    atomic_write_text(run_dir / "config.resolved.yaml", dump(recipe))
    src = recipe.constitution or files("cai_bootstrap").joinpath("data/constitution.yaml")
    atomic_write_text(run_dir / "constitution.yaml", src.read_text())


def _judge_round(cfg: StageSettings, base_eval: Path, round_info: dict) -> dict:
    base = load_eval(str(base_eval))
    trained = load_eval(round_info["trained_eval"])
    ob, ot, by_type = evaluate.paired(base, trained, cfg.gate.metric)
    comparison = compare(ob, ot, by_type)
    outcome = gate.decide(cfg.gate, cfg.stage, comparison)
    return {
        **round_info,
        "comparison": comparison.model_dump(mode="json"),
        "gate": outcome.model_dump(mode="json"),
        "accuracies": {"base": evaluate.accuracies(base), "trained": evaluate.accuracies(trained)},
        "score": comparison.trained.rate,
    }


def _rounds(ctx: StageContext, held_path: Path, base_eval: Path) -> tuple[list[dict], dict, str]:
    """Rounds until the gate passes, max_rounds, or a drop in held-out score (then the better round wins).
    With no gate configured every round up to max_rounds runs (a drop still stops)."""
    done: list[dict] = []
    for r in range(1, ctx.cfg.max_rounds + 1):
        ctx.round = r
        ctx.generator = Path(done[-1]["model"]) if done else ctx.base
        info = _judge_round(ctx.cfg, base_eval, run_round(ctx, held_path))
        done.append(info)
        log.info("stage %d round %d: %s %.1f%%", ctx.cfg.stage, r, ctx.cfg.gate.metric, 100 * info["score"])
        if info["gate"]["passed"] and info["gate"].get("configured", True):
            return done, info, "gate passed"
        if len(done) > 1 and info["score"] < done[-2]["score"]:
            return done, done[-2], f"held-out score dropped in round {r}; round {r - 1}'s model is kept"
    if not done[-1]["gate"].get("configured", True):
        return done, done[-1], f"no gate configured: outcome recorded after {len(done)} round(s)"
    return done, done[-1], f"max_rounds ({ctx.cfg.max_rounds}) reached"


def run_stage(ctx: StageContext) -> dict:
    held_path, base_eval, base_safety = baseline(ctx)
    rounds, chosen, why = _rounds(ctx, held_path, base_eval.records_path)
    summary = {
        "stage": ctx.cfg.stage,
        "base_model": str(ctx.base),
        "heldout": str(held_path),
        "base_eval": str(base_eval.records_path),
        "rounds": [{k: v for k, v in r.items() if k not in ("comparison", "accuracies")} for r in rounds],
        "chosen_round": chosen["round"],
        "stop_reason": why,
        "trained_eval": chosen["trained_eval"],
        "model": chosen["model"],
        "comparison": chosen["comparison"],
        "accuracies": chosen["accuracies"],
        "gate": chosen["gate"],
        "external": chosen.get("external", {}),
        "safety": {"base": str(base_safety.folder) if base_safety else None, "trained": chosen["safety"]},
        "step_times": ctx.times,
    }
    atomic_write_text(ctx.folder / "stage.json", json.dumps(summary, indent=2))
    return summary


def _previous_model(run_dir: Path, stage: int) -> Path:
    path = run_dir / f"stage{stage - 1}" / "stage.json"
    if not path.exists():
        raise UserError(
            f"--from-stage {stage} needs stage {stage - 1}'s result ({path})",
            f"run stage {stage - 1} first, or start from an earlier stage",
        )
    return Path(json.loads(path.read_text())["model"])


def run(recipe: Recipe, force: bool = False, stages: list[int] | None = None) -> list[dict]:
    """Run the recipe's stages in order; returns the stage summaries. Raises GateFailed on a failed gate.

    Stage n generates with stage n-1's chosen merged model (its lineage records the chain).
    """
    run_dir = recipe.run_dir()
    chosen = [s for s in recipe.stages if stages is None or s.stage in stages]
    if not chosen:
        raise UserError(
            f"no stage of the recipe matches {stages}", "check --stages against the recipe's stages"
        )
    kernels.check_recipe(recipe, chosen)
    constitution = load_constitution(recipe.constitution)
    summaries = []
    with RunLock(run_dir):
        _write_run_header(recipe)
        m = recipe.model
        generator = (
            models.resolve(m.generator)
            if chosen[0].stage == recipe.stages[0].stage
            else _previous_model(run_dir, chosen[0].stage)
        )
        engines = Engines(
            m.dtype, m.resolved_device(), m.batch_size, m.liger_kernels, m, run_dir / "engine_cache"
        )
        for cfg in chosen:
            log.info("stage %d: generator %s", cfg.stage, generator)
            ctx = StageContext(
                recipe, cfg, run_dir / f"stage{cfg.stage}", generator, constitution, engines, force
            )
            summary = run_stage(ctx)
            summaries.append(summary)
            _report(run_dir)
            c, outcome = summary["comparison"], summary["gate"]
            log.info(
                "stage %d: %s %.1f%% -> %.1f%% (McNemar p=%.3g); gate %s (%s)",
                cfg.stage,
                cfg.gate.metric,
                100 * c["base"]["rate"],
                100 * c["trained"]["rate"],
                c["mcnemar"]["p_value"],
                "not configured"
                if not outcome.get("configured", True)
                else "passed"
                if outcome["passed"]
                else "FAILED",
                summary["stop_reason"],
            )
            gate.enforce(cfg.stage, gate.GateOutcome.model_validate(outcome))
            generator = Path(summary["model"])
    return summaries


def _report(run_dir: Path) -> None:
    from .report.collect import write_report

    write_report(run_dir)
