"""The stage loop: run each stage's steps, compare with the baseline, gate, report, hand off.

`run` is the whole method in order; `cai-bootstrap run` calls it. A failed gate stops the run
(exit 3) after the report is written.
"""

from __future__ import annotations

import json
import shutil

from . import models
from .config import Recipe, dump
from .constitution import load_constitution
from .errors import UserError
from .log import log
from .stage import Engines, StageContext, load_eval, run_stage
from .stats import compare
from .steps import evaluate, gate
from .store import RunLock, atomic_write_text


def _write_run_header(recipe: Recipe) -> None:
    run_dir = recipe.run_dir()
    atomic_write_text(run_dir / "config.resolved.yaml", dump(recipe))
    src = recipe.constitution
    if src is None:
        from importlib.resources import files

        src = files("cai_bootstrap").joinpath("data/constitution.yaml")
    atomic_write_text(run_dir / "constitution.yaml", src.read_text())


def _compare_stage(summary: dict, metric: str):
    base = load_eval(summary["base_eval"])
    trained = load_eval(summary["trained_eval"])
    ob, ot, by_type = evaluate.paired(base, trained, metric)
    return compare(ob, ot, by_type), evaluate.accuracies(base), evaluate.accuracies(trained)


def run(recipe: Recipe, force: bool = False, stages: list[int] | None = None) -> list[dict]:
    """Run the recipe's stages in order; returns the stage summaries. Raises GateFailed on a failed gate."""
    run_dir = recipe.run_dir()
    chosen = [s for s in recipe.stages if stages is None or s.stage in stages]
    if not chosen:
        raise UserError(f"no stage of the recipe matches {stages}", "check --stages against the recipe's stages")
    constitution = load_constitution(recipe.constitution)
    summaries = []
    with RunLock(run_dir):
        _write_run_header(recipe)
        generator = models.resolve(recipe.model.generator)
        engines = Engines(recipe)
        for cfg in chosen:
            log.info("stage %d: generator %s", cfg.stage, generator)
            ctx = StageContext(recipe, cfg, run_dir / f"stage{cfg.stage}", generator, constitution, engines, force)
            summary = run_stage(ctx)
            comparison, acc_base, acc_trained = _compare_stage(summary, cfg.gate.metric)
            outcome = gate.decide(cfg.gate, cfg.stage, comparison)
            summary.update(
                comparison=comparison.model_dump(mode="json"),
                accuracies={"base": acc_base, "trained": acc_trained},
                gate=outcome.model_dump(mode="json"),
            )
            atomic_write_text(ctx.folder / "stage.json", json.dumps(summary, indent=2))
            summaries.append(summary)
            _report(run_dir)
            log.info(
                "stage %d: %s %.1f%% -> %.1f%% (McNemar p=%.3g); gate %s",
                cfg.stage, cfg.gate.metric, 100 * comparison.base.rate, 100 * comparison.trained.rate,
                comparison.mcnemar.p_value, "passed" if outcome.passed else "FAILED",
            )
            gate.enforce(cfg.stage, outcome)
            generator = ctx.folder / "model"
    return summaries


def _report(run_dir) -> None:
    from .report.collect import write_report

    write_report(run_dir)


def clean_partial(run_dir) -> None:
    """Remove temp folders a killed merge may leave (never a finished step)."""
    for p in run_dir.rglob(".*.partial-*"):
        shutil.rmtree(p, ignore_errors=True)
