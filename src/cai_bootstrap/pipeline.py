"""The stage loop: for each stage, the baseline, then rounds of data -> pairs -> training until the
gate passes, `max_rounds` is reached or the held-out score drops; the report; the handoff.

`run` is the whole method in order; `cai-bootstrap run` calls it. A failed gate stops the run
(exit 3) after the report is written.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from . import forgetting, judge_handoff, kernels, leftovers, models
from .config import Recipe, dump
from .constitution import load_constitution
from .engines.holder import Engines
from .errors import UserError
from .log import log
from .modelref import model_ref
from .records import EvalItem
from .results import RoundResult, StageResult, at, handoff_model, rel
from .stage import Progress, baseline, for_round, plan, run_round, step_times
from .stage_context import StageContext
from .stage_seal import seal_stage, stage_problem
from .stats import compare
from .steps import content_measures, evaluate, gate
from .store import RunLock, atomic_write_text, ensure_run_id, read_jsonl
from .tasks.typegroups import heldout_only_types
from .tracking import Tracker
from .transfer import transfer_comparison

HEADER = ("config.resolved.yaml", "constitution.yaml", "run-id")  # a refused run restores all three


def _read_header(run_dir: Path) -> dict[str, bytes | None]:
    return {n: (run_dir / n).read_bytes() if (run_dir / n).exists() else None for n in HEADER}


def _restore_header(run_dir: Path, before: dict[str, bytes | None]) -> None:
    for name, data in before.items():
        if data is None:
            (run_dir / name).unlink(missing_ok=True)
        else:
            (run_dir / name).write_bytes(data)


def _write_run_header(recipe: Recipe, run_dir: Path) -> None:
    atomic_write_text(run_dir / "config.resolved.yaml", dump(recipe))
    src = recipe.constitution or files("cai_bootstrap").joinpath("data/constitution.yaml")
    atomic_write_text(run_dir / "constitution.yaml", src.read_text())


def _judge_round(ctx: StageContext, base_eval: Path, result: RoundResult) -> RoundResult:
    base = read_jsonl(base_eval, EvalItem)
    trained = read_jsonl(at(ctx.run_dir, result.trained_eval), EvalItem)
    ob, ot, by_type = evaluate.paired(base, trained, ctx.cfg.gate.metric)
    comparison = compare(ob, ot, by_type)
    return result.model_copy(
        update={
            "comparison": comparison,
            "gate": gate.decide(ctx.cfg.gate, ctx.cfg.stage, comparison),
            "accuracies": {"base": evaluate.accuracies(base), "trained": evaluate.accuracies(trained)},
            "score": comparison.trained.rate,
            "transfer": transfer_comparison(base, trained, heldout_only_types(ctx.cfg.instructions)),
            "content_flag": content_measures.flag(comparison, result.content),
        }
    )


def _rounds(ctx: StageContext, base: Progress) -> tuple[list[RoundResult], RoundResult, str, list]:
    """Rounds until the gate passes, max_rounds, or a drop in held-out score (then the better round wins).
    With no gate configured every round up to max_rounds runs (a drop still stops)."""
    done: list[RoundResult] = []
    times: list = []
    base_eval = base.folders.get("eval_base", Path()) / "records.jsonl"
    for r in range(1, ctx.cfg.max_rounds + 1):
        rctx = for_round(ctx, r, at(ctx.run_dir, done[-1].model) if done else ctx.base)
        result, round_times = run_round(rctx, base)
        times += round_times
        info = _judge_round(rctx, base_eval, result)
        done.append(info)
        log.info("stage %d round %d: %s %.1f%%", ctx.cfg.stage, r, ctx.cfg.gate.metric, 100 * info.score)
        if info.content_flag:
            log.warning("stage %d round %d: %s", ctx.cfg.stage, r, info.content_flag)
        if info.gate.passed and info.gate.configured:
            return done, info, "gate passed", times
        if len(done) > 1 and info.score < done[-2].score:
            return (
                done,
                done[-2],
                f"held-out score dropped in round {r}; round {r - 1}'s model is kept",
                times,
            )
    if not done[-1].gate.configured:
        return done, done[-1], f"no gate configured: outcome recorded after {len(done)} round(s)", times
    return done, done[-1], f"max_rounds ({ctx.cfg.max_rounds}) reached", times


def run_stage(ctx: StageContext) -> StageResult:
    base = baseline(ctx)
    rounds, chosen, why, times = _rounds(ctx, base)
    forgot, forgot_times = forgetting.run(ctx, at(ctx.run_dir, chosen.model))
    handoff = None
    if ctx.cfg.stage == judge_handoff.MAKER:
        evals = (base.folders["eval_base"] / "records.jsonl", at(ctx.run_dir, chosen.trained_eval))
        handoff = judge_handoff.assess(ctx, at(ctx.run_dir, chosen.model), *evals)
    safety = base.manifests["safety_base"].get("result")
    summary = StageResult(
        stage=ctx.cfg.stage,
        base_model=model_ref(ctx.base, ctx.run_dir),  # never a cache path
        heldout=rel(ctx.run_dir, base.folders["heldout"] / "records.jsonl"),
        base_eval=rel(ctx.run_dir, base.folders["eval_base"] / "records.jsonl"),
        base_safety=rel(ctx.run_dir, base.folders["safety_base"]) if safety else None,
        rounds=rounds,
        chosen_round=chosen.round,
        stop_reason=why,
        step_times=step_times(ctx, plan(ctx)[0], base) + times + forgot_times,
        forgetting=forgot,
        judge=judge_handoff.describe(ctx),
        handoff=handoff,
    )
    atomic_write_text(ctx.stage_dir / "stage.json", summary.model_dump_json(indent=2))
    seal_stage(ctx.stage_dir)
    return summary


def _previous_model(run_dir: Path, stage: int) -> Path:
    path = run_dir / f"stage{stage - 1}" / "stage.json"
    if not path.exists():
        raise UserError(
            f"--from-stage {stage} needs stage {stage - 1}'s result ({path})",
            f"run stage {stage - 1} first, or start from an earlier stage",
        )
    if why := stage_problem(path.parent):
        raise UserError(f"--from-stage {stage}: stage {stage - 1}'s {why}", f"run stage {stage - 1} again")
    return handoff_model(
        run_dir, stage - 1, f"run stage {stage - 1} again (cai-bootstrap run --stages {stage - 1})"
    )


def _log_stage(summary: StageResult, metric: str) -> None:
    chosen = summary.chosen
    c, outcome = chosen.comparison, chosen.gate
    state = "not configured" if not outcome.configured else "passed" if outcome.passed else "FAILED"
    log.info(
        "stage %d: %s %.1f%% -> %.1f%% (McNemar p=%.3g); gate %s (%s)",
        summary.stage,
        metric,
        100 * c.base.rate,
        100 * c.trained.rate,
        c.mcnemar.p_value,
        state,
        summary.stop_reason,
    )


def run(
    recipe: Recipe, force: bool = False, stages: list[int] | None = None, run_dir: Path | None = None
) -> list[StageResult]:
    """Run the recipe's stages in order; returns the stage results. Raises GateFailed on a failed gate.

    `run_dir` (default: the recipe's) is made absolute once, so nothing depends on the working
    directory afterwards. Stage n generates with stage n-1's chosen merged model (its lineage
    records the chain).
    """
    run_dir = Path(run_dir or recipe.run_dir()).resolve()
    chosen = [s for s in recipe.stages if stages is None or s.stage in stages]
    if not chosen:
        raise UserError(
            f"no stage of the recipe matches {stages}", "check --stages against the recipe's stages"
        )
    kernels.check_recipe(recipe, chosen)
    constitution = load_constitution(recipe.constitution)
    summaries = []
    with RunLock(run_dir):
        if found := leftovers.find(run_dir):  # no other writer here now: the lock is ours
            log.info("removing %s", leftovers.summary(found))
            leftovers.remove(found)
        before = _read_header(run_dir)
        _write_run_header(recipe, run_dir)
        ensure_run_id(run_dir)
        remade: set = set()  # step folders made by this invocation (runner.py)
        try:
            _run_stages(recipe, chosen, run_dir, constitution, force, remade, summaries)
        except UserError:
            # Refused before any step was made (a stale step, say): the finished run keeps the header
            # it was made with, byte for byte.
            if not remade:
                _restore_header(run_dir, before)
            raise
    return summaries


def _run_stages(
    recipe, chosen, run_dir: Path, constitution, force: bool, remade: set, summaries: list
) -> None:
    m = recipe.model
    generator = (
        models.resolve(m.generator)
        if chosen[0].stage == recipe.stages[0].stage
        else _previous_model(run_dir, chosen[0].stage)
    )
    engines = Engines(
        m.dtype, m.resolved_device(), m.batch_size, m.liger_kernels, m, run_dir / "engine_cache"
    )
    tracker = Tracker(recipe.run.report_to, run_dir, recipe.run.name)
    for cfg in chosen:
        log.info("stage %d: generator %s", cfg.stage, generator)
        judge = judge_handoff.judge_for(run_dir, cfg.stage)
        ctx = StageContext(
            recipe, cfg, run_dir, constitution, engines, force, generator, remade=remade, handoff_judge=judge
        )
        summary = run_stage(ctx)
        summaries.append(summary)
        tracker.log_stage(summary)  # before the gate: a stage whose gate fails is tracked too
        _report(run_dir)
        _log_stage(summary, cfg.gate.metric)
        gate.enforce(cfg.stage, summary.chosen.gate)
        forgetting.enforce(cfg.stage, cfg.gate, summary.forgetting)
        generator = at(run_dir, summary.chosen.model)


def _report(run_dir: Path) -> None:
    from .report.collect import write_report

    write_report(run_dir)
