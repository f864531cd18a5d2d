"""Everything a command can check before it writes a byte: the recipe, the files it names, the model
references, the stage selection and the run folder. `cai-bootstrap run` calls `plan_run` before it
imports torch or opens the run folder, so a refused run leaves an existing run untouched and a bad
recipe is reported in well under a second.

A folder is a run folder when it holds `config.resolved.yaml` (RUN_MARKER): every run writes it first,
under the run lock, before any step. `status`, `report` and `run --resume` refuse any other folder.

Paths: a fresh run takes relative paths (run folder, constitution, eval.ifeval_files, a local model
folder) from the directory it starts in and saves them absolute in config.resolved.yaml; `--resume DIR`
runs exactly DIR, whatever the current directory, and takes the saved config's relative paths (from
runs made before paths were saved absolute) from the directory that run started in.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .config import Recipe, load_recipe
from .errors import UserError
from .filecheck import (
    check_ifeval_file,
    check_responses_file,  # noqa: F401 (re-exported: evalcmd and tests import it here)
    read_text_file,
)
from .inputcheck import check_cache_dir, check_path_arg
from .results import handoff_model
from .runfolder import RUN_MARKER, is_run_folder
from .stage_seal import stage_problem
from .training.extra_args import check_recipe as check_training_args


def require_run_folder(path: Path, command: str) -> Path:
    """`path` as an absolute run folder, or a UserError that says what it is instead."""
    from .rebuild import lost_config_error, lost_its_config

    path = Path(path)
    if not path.exists():
        raise UserError(
            f"run directory {path} does not exist",
            f"pass a folder that cai-bootstrap run wrote: {command} runs/NAME",
        )
    if not path.is_dir():
        raise UserError(f"{path} is a file, not a run folder", f"pass the run's folder: {command} runs/NAME")
    if not is_run_folder(path):
        if lost_its_config(path):
            raise lost_config_error(path)
        raise UserError(
            f"{path} is not a run folder (it has no {RUN_MARKER})",
            f"pass a folder that cai-bootstrap run wrote: {command} runs/NAME",
        )
    return path.resolve()


# ---- stage selection ----


def parse_stages(text: str | None) -> list[int] | None:
    """`--stages 1-6` or `1,2` as a list of stage numbers (None: all of the recipe's)."""
    if text is None:
        return None
    fix = "write e.g. --stages 1-6 or --stages 1,2 (stage numbers 1 to 6)"
    try:
        if "-" in text:
            a, b = (int(x) for x in text.split("-", 1))
            if a > b:
                raise UserError(f"--stages {text} runs backwards ({a} > {b})", f"write --stages {b}-{a}")
            # Bounds first: range(1, 99999999 + 1) as a list takes seconds and gigabytes.
            numbers = list(range(a, b + 1)) if 1 <= a and b <= 6 else [a if a < 1 else b]
        else:
            numbers = [int(x) for x in text.split(",")]
    except ValueError as e:
        raise UserError(f"--stages '{text}' is not like 1-6 or 1,2", fix) from e
    if not numbers or not all(1 <= n <= 6 for n in numbers):
        raise UserError(f"--stages '{text}' names a stage outside 1-6", fix)
    return numbers


def select_stages(recipe: Recipe, text: str | None, from_stage: int | None) -> list[int] | None:
    """The recipe's stage numbers to run, or None for all; an empty selection is a UserError."""
    numbers = [s.stage for s in recipe.stages]
    have = ", ".join(map(str, numbers))
    chosen = parse_stages(text)
    if chosen is not None:
        missing = [n for n in chosen if n not in numbers]
        if missing:
            raise UserError(
                f"--stages {text}: the recipe has no stage {missing[0]} (its stages: {have})",
                f"choose among {have}, or add the stage to the recipe",
            )
    if from_stage is not None:
        if from_stage not in numbers:
            raise UserError(
                f"--from-stage {from_stage}: the recipe has no stage {from_stage} (its stages: {have})",
                f"give --from-stage one of {have}",
            )
        after = [n for n in (chosen or numbers) if n >= from_stage]
        if not after:
            raise UserError(
                f"--from-stage {from_stage} with --stages {text} leaves no stage to run",
                "drop one of the two options, or make them overlap",
            )
        chosen = after
    return chosen


# ---- files the recipe names (their row checks live in filecheck.py) ----


def check_recipe_files(recipe: Recipe):
    """The constitution (parsed and validated) and every eval.ifeval_files entry; returns the
    constitution so principle ids named in the recipe can be checked against it."""
    from .constitution import load_constitution, parse_constitution

    if recipe.constitution is None:
        constitution = load_constitution(None)
    else:
        text = read_text_file(recipe.constitution, "constitution", "a constitution YAML file")
        constitution = parse_constitution(text, str(recipe.constitution))
    for i, st in enumerate(recipe.stages):
        stems = [p.stem for p in st.eval.ifeval_files]
        for path in st.eval.ifeval_files:
            if stems.count(path.stem) > 1:  # each file's steps are named after its stem (ifeval_<stem>)
                raise UserError(
                    f"stages.{i}.eval.ifeval_files: two files are named {path.stem}.*", "rename one of them"
                )
            check_ifeval_file(path, f"stages.{i}.eval.ifeval_files:")
    return constitution


def check_names(recipe: Recipe, constitution) -> None:
    """Constraint types and principle ids the recipe names exist (known before any model runs)."""
    from .tasks.phrasings import PHRASINGS
    from .tasks.typegroups import check_type_settings

    for i, st in enumerate(recipe.stages):
        for key in ("constraint_types", "heldout_only_types"):
            for t in getattr(st.instructions, key) or []:
                if t not in PHRASINGS and not t.startswith("group:"):
                    raise UserError(
                        f"stages.{i}.instructions.{key}: unknown constraint type '{t}'",
                        f"use types from: {', '.join(PHRASINGS)}",
                    )
        check_type_settings(st.instructions, f"stages.{i}.instructions")
        known = [p.id for p in constitution.principles]
        named = [("judge.principle", st.judge.principle)] if st.judge.principle else []
        named += [("eval.safety.skip_principles", p) for p in st.eval.safety.skip_principles]
        for key, pid in named:
            if pid not in known:
                raise UserError(
                    f"stages.{i}.{key}: no principle '{pid}' in the constitution",
                    f"use one of: {', '.join(known)}",
                )


def check_models(recipe: Recipe) -> None:
    from .models import check_reference

    check_reference(recipe.model.generator, "model.generator")
    if recipe.model.judge is not None:
        check_reference(recipe.model.judge, "model.judge")
    for i, st in enumerate(recipe.stages):
        if st.judge.reward_model is not None:
            check_reference(st.judge.reward_model, f"stages.{i}.judge.reward_model")


def check_target_modules(recipe) -> None:
    """Every stage's lora.target_modules names modules the generator has (read from its weight files'
    headers), so a typo stops the run now rather than when training starts, after the baseline.
    A hub model, or an embedded one not yet converted, is checked when training loads it."""
    from .modelcheck import module_names, unmatched_target
    from .models import cache_dir

    ref = recipe.model.generator
    folder = cache_dir() / ref.removeprefix("embedded:") / "hf" if ref.startswith("embedded:") else Path(ref)
    modules = module_names(folder) if folder.is_dir() else None
    if modules is None:
        return
    for i, st in enumerate(recipe.stages):
        if (bad := unmatched_target(st.lora.target_modules, modules)) is not None:
            shown = sorted({m.rsplit(".", 1)[-1] for m in modules if not m.rsplit(".", 1)[-1].isdigit()})[:12]
            raise UserError(
                f"stages.{i}.lora.target_modules: {bad!r} names no module of {ref}",
                f"use 'all-linear' or names such as: {', '.join(shown)}",
            )


# The optional extras each setting needs: (module to find, extra to install).
EXTRAS = {
    "openai": [("openai", "openai")],
    "vllm": [("vllm", "vllm")],
    "ray": [("ray", "ray"), ("ray.data", "ray")],
}


def check_engine_extras(recipe: Recipe) -> None:
    """The packages of model.engine and model.ray are installed, checked now rather than when the
    first step that needs them starts (after the baseline evaluation, minutes or hours in)."""
    from importlib.util import find_spec

    m = recipe.model
    needs = ([m.engine] if m.engine != "hf" else []) + (["ray"] if m.ray.workers else [])
    for what in needs:
        for module, extra in EXTRAS[what]:
            try:
                found = find_spec(module) is not None
            except ModuleNotFoundError:  # a parent package is missing (ray.data without ray)
                found = False
            if not found:
                setting = "model.ray.workers" if what == "ray" else f"model.engine {what}"
                raise UserError(
                    f"{setting} needs the '{module}' package, which is not installed",
                    f'pip install "cai-bootstrap[{extra}]"',
                )


# ---- the run folder ----


def check_run_folder(run_dir: Path, rebuilding: bool = False) -> None:
    """The run folder can be created and written, is not another program's folder, and no other run
    is writing it. Nothing is left behind: writability is probed with a temporary folder."""
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"run folder {run_dir} is a file", "choose another folder: --set run.run_dir=PATH")
    existing = run_dir
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(
            f"run folder {run_dir} would be inside {existing}, which is a file",
            "choose another folder: --set run.run_dir=PATH",
        )
    try:
        Path(tempfile.mkdtemp(prefix=".cai-write-check-", dir=existing)).rmdir()
    except OSError as e:
        raise UserError(
            f"cannot write the run folder {run_dir} ({existing}: {e.strerror})",
            "choose a folder you can write: --set run.run_dir=PATH",
        ) from e
    from .rebuild import lost_config_error, lost_its_config

    if run_dir.is_dir() and not is_run_folder(run_dir) and not rebuilding:
        if lost_its_config(run_dir):
            raise lost_config_error(run_dir)
        others = [p.name for p in run_dir.iterdir() if p.name != ".lock"]
        if others:
            raise UserError(
                f"run folder {run_dir} holds other files ({others[0]}, ...) and is not a run folder",
                "choose a new or empty folder: --set run.run_dir=PATH or --set run.name=NAME",
            )
    _check_not_locked(run_dir)


def _check_not_locked(run_dir: Path) -> None:
    import fcntl

    from .store import check_lock_path

    lock = run_dir / ".lock"
    check_lock_path(lock)
    if not lock.is_file():
        return
    fd = os.open(lock, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
    except BlockingIOError as e:
        pid = lock.read_text().strip() or "?"
        raise UserError(
            f"another cai-bootstrap run (pid {pid}) is writing {run_dir}",
            "wait for it to finish, or start this one in another folder with --set run.name=NAME",
        ) from e
    finally:
        os.close(fd)


def check_previous_stage(recipe: Recipe, chosen: list[int] | None) -> None:
    """A run that starts after the recipe's first stage needs the previous stage's result."""
    first = chosen[0] if chosen else recipe.stages[0].stage
    if first == recipe.stages[0].stage:
        return
    summary = recipe.run_dir() / f"stage{first - 1}" / "stage.json"
    fix = f"run stage {first - 1} first (cai-bootstrap run --stages {first - 1}), or start from an earlier stage"
    if not summary.is_file():
        raise UserError(f"stage {first} needs stage {first - 1}'s result, and {summary} does not exist", fix)
    if why := stage_problem(summary.parent):
        raise UserError(f"stage {first} needs stage {first - 1}'s result, and its {why}", fix)
    model = handoff_model(recipe.run_dir(), first - 1, fix)
    if not (model / "config.json").is_file():
        raise UserError(f"stage {first - 1}'s model {model} is missing", fix)


# ---- the whole plan ----


@dataclass
class RunPlan:
    recipe: Recipe
    stages: list[int] | None


def _resume_base(run_dir: Path, saved: Recipe) -> Path:
    """Where the resumed run was started: the saved run folder's relative path, taken off the end of
    RUN_DIR (runs/x saved, /home/u/proj/runs/x given: /home/u/proj). Paths saved absolute ignore it."""
    rel = saved.run_dir()
    if rel.is_absolute() or run_dir.parts[-len(rel.parts) :] != rel.parts:
        return run_dir
    return Path(*run_dir.parts[: -len(rel.parts)])


def plan_run(
    recipe_path: Path | None,
    overrides: list[str],
    stages_text: str | None,
    from_stage: int | None,
    resume: Path | None,
    default_recipe: Path,
    resume_with: Path | None = None,
) -> RunPlan:
    """Check everything `run` needs, in the order a user would fix it; nothing is written."""
    for what, path in (("--recipe", recipe_path), ("--resume", resume), ("--resume-with", resume_with)):
        check_path_arg(path, what)
    check_cache_dir()
    if resume_with is not None:
        from .rebuild import rebuild_plan

        recipe = rebuild_plan(resume, recipe_path, resume_with, overrides)
    elif resume is not None:
        if recipe_path is not None:
            raise UserError(
                "--resume uses the run's saved config; --recipe cannot be given too", "drop one of them"
            )
        run_dir = require_run_folder(resume, "cai-bootstrap run --resume")
        recipe = load_recipe(run_dir / RUN_MARKER, overrides)
        recipe = recipe.with_paths_from(_resume_base(run_dir, recipe), run_dir=run_dir)
    else:
        recipe = load_recipe(recipe_path or default_recipe, overrides).with_paths_from(Path.cwd())
    chosen = select_stages(recipe, stages_text, from_stage)
    constitution = check_recipe_files(recipe)
    check_names(recipe, constitution)
    check_models(recipe)
    check_target_modules(recipe)
    check_engine_extras(recipe)
    check_training_args(recipe)  # trl_args, peft_args and trackers (training/extra_args.py)
    if recipe.model.engine == "openai":
        from .engines import keyenv

        keyenv.check(recipe.model.openai.api_key_env)
    check_run_folder(recipe.run_dir(), rebuilding=resume_with is not None)
    check_previous_stage(recipe, chosen)
    return RunPlan(recipe, chosen)
