"""`cai-bootstrap run --dry-run`: what `run` would do with this recipe, step by step, without
loading a model or writing a file.

Each step's state comes from the one rule `run` uses (`runner.step_state`, through `statuscmd`), with
the recipe as given now rather than the run's saved config, so a changed setting shows as stale.
Model identities are the ones recorded in each step's manifest (finding them anew would load or
convert the models); a model changed behind the same reference is found by `run`, not here.
"""

from __future__ import annotations

from pathlib import Path

from .config import Recipe

NOT_PLANNED = (
    "note: rounds after the last one begun run only while the gate is unmet (max_rounds); a judge's "
    "calibration (judge_calibration/) is made when first needed and cached per judge and settings"
)

# state -> (action, reason); a stale step's action depends on --force
ACTIONS = {
    "done": ("skip", "done, signature matches"),
    "not started": ("run", "not started"),
    "failed": ("run", "resumes a failed attempt from its shards"),
    "running": ("run", "resumes an interrupted attempt (or another run holds the folder)"),
    "damaged": ("run", "damaged, discarded and redone"),
}


def _action(row: dict, force: bool, upstream: list[str]) -> tuple[str, str]:
    if row["state"] == "stale":
        if force:
            return "run", f"stale ({row['why']}): redone because of --force"
        return "stale", f"{row['why']}: run refuses it without --force"
    action, reason = ACTIONS[row["state"]]
    if row["why"] and row["state"] == "damaged":
        reason = f"damaged ({row['why']}): discarded and redone"
    if action == "skip" and upstream:
        return "skip?", f"done; redone if these give other results: {', '.join(upstream)}"
    return action, reason


def _upstream(step: str, reads: tuple[str, ...], redone: set[str]) -> list[str]:
    """Steps this one depends on that will (or may) be redone first: the ones it reads (in its round
    or the stage's baseline), and, in round r > 1, any step of an earlier round (its model is the
    generator here)."""
    parts = step.split("/")
    stage, rnd = parts[0], parts[1] if len(parts) == 3 else None
    mine = [f"{stage}/{rnd}/{r}" for r in reads if rnd] + [f"{stage}/{r}" for r in reads]
    found = [r for r in mine if r in redone]
    if rnd and int(rnd.removeprefix("round")) > 1:
        earlier = {f"{stage}/round{i}/" for i in range(1, int(rnd.removeprefix("round")))}
        found += sorted({r.rsplit("/", 1)[0] for r in redone if any(r.startswith(e) for e in earlier)})
    return found


def plan_rows(
    recipe: Recipe, run_dir: Path, force: bool = False, stages: list[int] | None = None
) -> list[dict]:
    """One row per planned step: step folder, action (run / skip / skip? / stale) and reason."""
    from .constitution import load_constitution
    from .stage import plan
    from .statuscmd import step_rows

    run_dir = Path(run_dir).resolve()
    constitution = load_constitution(recipe.constitution)
    rows = step_rows(run_dir, recipe=recipe, constitution=constitution)
    chosen = {s.stage for s in recipe.stages if stages is None or s.stage in stages}
    out, redone = [], set()
    for row in rows:
        stage = int(row["step"].split("/")[0].removeprefix("stage"))
        if stage not in chosen:
            continue
        spec = _spec_for(row["step"], recipe, run_dir, constitution, plan)
        action, reason = _action(row, force, _upstream(row["step"], spec.reads if spec else (), redone))
        if action != "skip":
            redone.add(row["step"])
        out.append({"step": row["step"], "action": action, "reason": reason})
    return out


def _spec_for(step: str, recipe: Recipe, run_dir: Path, constitution, plan):
    """The StepSpec of a planned step folder (stageN/name or stageN/roundR/name)."""
    from .stage_context import StageContext

    stage_name, *_, name = step.split("/")
    cfg = next(s for s in recipe.stages if f"stage{s.stage}" == stage_name)
    ctx = StageContext(recipe, cfg, run_dir, constitution, None, False, base=Path("/nonexistent"))
    baseline, rounds = plan(ctx)
    return next((s for s in (*baseline, *rounds) if s.name == name), None)


def format_rows(rows: list[dict]) -> list[str]:
    width = max((len(r["step"]) for r in rows), default=0)
    return [f"{r['step']:<{width}}  {r['action']:<6} {r['reason']}" for r in rows]
