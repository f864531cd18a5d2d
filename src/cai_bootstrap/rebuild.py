"""A run folder that lost its config.resolved.yaml, and `run --resume DIR --resume-with RECIPE`.

Every run writes config.resolved.yaml first, and status, report and --resume read a folder's plan
from it. A folder whose steps are there but whose config is gone (deleted by hand, say) is not
unusable: the recipe it was made with stands in for it, the run writes the config again before any
step, and every step made from the same settings is still done (signatures hash the settings, not
the file).
"""

from __future__ import annotations

from pathlib import Path

from .config import Recipe, load_recipe
from .errors import UserError
from .runfolder import RUN_MARKER, is_run_folder


def lost_its_config(path: Path) -> bool:
    """A folder that holds a run's steps (stageN/ with a manifest or stage.json) but no RUN_MARKER."""
    return Path(path).is_dir() and not is_run_folder(path) and any(Path(path).glob("stage[0-9]*/**/*.json"))


def lost_config_error(path: Path) -> UserError:
    return UserError(
        f"{path} holds a run's steps but has lost its {RUN_MARKER}",
        f"rebuild it from the recipe the run was made with: cai-bootstrap run --resume {path} "
        "--resume-with RECIPE (steps made from the same settings stay done)",
    )


def rebuild_plan(resume: Path | None, recipe_path: Path | None, resume_with: Path, overrides) -> Recipe:
    """`--resume DIR --resume-with RECIPE`: DIR lost its config.resolved.yaml; RECIPE stands in for it
    (the run writes it again before any step; a step whose settings differ from RECIPE's is stale)."""
    if resume is None or recipe_path is not None:
        raise UserError(
            "--resume-with RECIPE rebuilds the config of the folder given by --resume (and no --recipe)",
            "write: cai-bootstrap run --resume RUN_DIR --resume-with RECIPE",
        )
    if is_run_folder(resume):
        raise UserError(
            f"{resume} still has its {RUN_MARKER}; --resume-with is only for a folder that lost it",
            f"continue it with: cai-bootstrap run --resume {resume}",
        )
    if not lost_its_config(resume):
        raise UserError(f"{resume} holds no run's steps", "give --resume the folder of an earlier run")
    run_dir = Path(resume).resolve()
    return load_recipe(resume_with, overrides).with_paths_from(Path.cwd(), run_dir=run_dir)
