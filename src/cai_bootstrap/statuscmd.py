"""`cai-bootstrap status RUN_DIR`: every planned step of the run and its state, by the same rule
`run` uses (`runner.step_state`): done / stale / damaged / running / failed / not started.

The plan comes from the run's own config.resolved.yaml and constitution copy, and every path from
the run folder, so the answer does not depend on the working directory. A step's signature is
recomputed from the settings, packaged resources and its inputs' results; model identities are
taken from its manifest (recomputing them would need the models, e.g. an embedded one's packages).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from .errors import UserError
from .runner import StepSpec, result_digest, signature_parts, step_state
from .store import canonical_hash, check_lock_path


def _locked(run_dir: Path) -> bool:
    lock = run_dir / ".lock"
    check_lock_path(lock)
    if not lock.exists():
        return False
    # Read-only is enough for flock, and works on a read-only run folder (status only reads).
    try:
        fd = os.open(lock, os.O_RDONLY)
    except OSError:
        return False  # unreadable: no run of ours can hold it
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def _context(run_dir: Path, recipe=None, constitution=None):
    from .config import load_recipe
    from .constitution import load_constitution
    from .judge_handoff import judge_for
    from .stage_context import StageContext

    recipe = recipe or load_recipe(run_dir / "config.resolved.yaml")
    constitution = constitution or load_constitution(run_dir / "constitution.yaml")
    return [
        StageContext(
            recipe,
            cfg,
            run_dir,
            constitution,
            None,
            False,
            base=Path("/nonexistent"),
            handoff_judge=judge_for(run_dir, cfg.stage),
        )  # fmt: skip
        for cfg in recipe.stages
    ]


def _expected(spec: StepSpec, ctx, state, digests: dict) -> str | None:
    """The signature `run` would compute now, with recorded model identities (None when unknowable)."""
    parts = (state.manifest or {}).get("parts") or {}
    recorded = parts.get("inputs") or {}
    inputs = {r: digests.get(r) or recorded.get(r) for r in spec.reads}
    try:
        return canonical_hash(signature_parts(spec, ctx, inputs, parts.get("models") or {}))
    except (OSError, ValueError, KeyError, UserError):
        return None


def _row(spec: StepSpec, ctx, digests: dict, running: bool) -> dict:
    folder = spec.folder(ctx.stage_dir, ctx.round)
    state = step_state(folder, None, running)
    if state.name == "done":
        expected = _expected(spec, ctx, state, digests)
        state = step_state(folder, expected, running) if expected else state
    if state.name in ("done", "stale"):
        digests[spec.name] = result_digest(spec, state.manifest)
    m = state.manifest or {}
    return {
        "step": str(folder.relative_to(ctx.run_dir)),
        "state": state.name,
        "why": state.why,
        "counts": m.get("counts", {}),
        "seconds": m.get("seconds", ""),
    }


def step_rows(run_dir: Path, recipe=None, constitution=None) -> list[dict]:
    """One row per planned step of every stage and every round begun (round 1 at least). With a
    `recipe` (and its constitution), the steps `run` would plan for it (`run --dry-run`); the folder
    then need not exist."""
    from dataclasses import replace

    from .stage import plan

    run_dir = Path(run_dir).resolve()
    if recipe is None and not run_dir.exists():
        raise UserError(
            f"run directory {run_dir} does not exist", "pass the folder a run wrote, e.g. runs/quickstart"
        )
    if recipe is None and not (run_dir / "config.resolved.yaml").is_file():
        raise UserError(
            f"{run_dir} is not a run folder (no config.resolved.yaml)",
            "pass the folder a run wrote, e.g. runs/quickstart",
        )
    running = _locked(run_dir)
    rows = []
    for ctx in _context(run_dir, recipe, constitution):
        baseline, round_steps = plan(ctx)
        digests: dict[str, str] = {}
        rows += [_row(s, ctx, digests, running) for s in baseline]
        begun = [
            int(p.name.removeprefix("round")) for p in ctx.stage_dir.glob("round*") if p.name[5:].isdigit()
        ]
        for r in range(1, max([1, *begun]) + 1):
            rctx = replace(ctx, round=r)
            mine = dict(digests)
            rows += [_row(s, rctx, mine, running) for s in round_steps]
    return rows


def leftover_line(run_dir: Path, clean: bool) -> str:
    """Count (or, with `clean`, remove) the leftovers of interrupted writes (leftovers.py). Removing
    takes the run lock, so it refuses while a run writes the folder."""
    from . import leftovers
    from .store import RunLock

    found = leftovers.find(Path(run_dir))
    if not found:
        return "leftovers: none"
    if not clean:
        return (
            f"leftovers: {leftovers.summary(found)}; remove them with: cai-bootstrap status --clean {run_dir}"
        )
    with RunLock(Path(run_dir)):
        found = leftovers.find(Path(run_dir))
        line = leftovers.summary(found)
        leftovers.remove(found)
    return f"leftovers: removed {line}"
