"""What `run` checks before it writes: paths taken from the right directory, nothing left behind."""

import os
import re
from pathlib import Path

import pytest

from cai_bootstrap.config import Recipe, dump, load_recipe
from cai_bootstrap.errors import UserError
from cai_bootstrap.preflight import check_run_folder, is_run_folder, plan_run

QUICK = Path(__file__).parents[1] / "src" / "cai_bootstrap" / "recipes" / "quickstart.yaml"


def _plan(**kw):
    args = {"recipe_path": None, "overrides": [], "stages_text": None, "from_stage": None, "resume": None}
    return plan_run(**{**args, **kw}, default_recipe=QUICK)


def test_fresh_run_saves_paths_absolute_against_the_starting_directory(tmp_path, monkeypatch):
    (tmp_path / "my.yaml").write_text((QUICK.parent.parent / "data" / "constitution.yaml").read_text())
    monkeypatch.chdir(tmp_path)
    plan = _plan(overrides=["run.name=x", "constitution=my.yaml"])
    assert plan.recipe.run_dir() == tmp_path.resolve() / "runs" / "x"
    assert plan.recipe.constitution == tmp_path.resolve() / "my.yaml"
    assert dump(plan.recipe).count(str(tmp_path.resolve())) == 2
    assert not (tmp_path / "runs").exists()  # checked, not created


def test_resume_runs_exactly_that_folder_from_any_directory(tmp_path, monkeypatch):
    """An old run saved `run_dir: null` (runs/x) and a relative constitution: from anywhere, --resume
    continues that folder and finds the constitution where the run was started."""
    start = tmp_path / "project"
    run = start / "runs" / "x"
    run.mkdir(parents=True)
    (start / "my.yaml").write_text((QUICK.parent.parent / "data" / "constitution.yaml").read_text())
    saved = Recipe.model_validate({"run": {"name": "x"}, "constitution": "my.yaml"})
    (run / "config.resolved.yaml").write_text(dump(saved))
    other = tmp_path / "other"
    other.mkdir()
    for cwd in (other, Path("/"), run):
        monkeypatch.chdir(cwd)
        plan = _plan(resume=run)
        assert plan.recipe.run_dir() == run.resolve()
        assert plan.recipe.constitution == start.resolve() / "my.yaml"
    monkeypatch.chdir(other)
    plan = _plan(resume=Path("../project/runs/x"))  # a relative DIR is taken from the current directory
    assert plan.recipe.run_dir() == run.resolve()


def test_run_folder_check_leaves_nothing_behind(tmp_path):
    check_run_folder(tmp_path / "a" / "b")
    assert not (tmp_path / "a").exists() and list(tmp_path.iterdir()) == []
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.resolved.yaml").write_text("{}\n")
    check_run_folder(tmp_path / "run")
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["config.resolved.yaml"]
    assert is_run_folder(tmp_path / "run") and not is_run_folder(tmp_path)


def test_local_model_folder_is_saved_absolute(tmp_path, monkeypatch, tiny_model_dir):
    monkeypatch.chdir(tiny_model_dir.parent)
    plan = _plan(overrides=[f"model.generator={tiny_model_dir.name}", f"run.run_dir={tmp_path / 'r'}"])
    assert plan.recipe.model.generator == str(tiny_model_dir.resolve())


def test_bad_stage_selection_names_the_recipes_stages():
    recipe = load_recipe(QUICK, ["stages.1.stage=3"])
    assert [s.stage for s in recipe.stages] == [1, 3]
    with pytest.raises(UserError, match=r"no stage 2 \(its stages: 1, 3\)"):
        _plan(overrides=["stages.1.stage=3"], stages_text="1-2")


@pytest.mark.skipif(
    os.geteuid() == 0, reason="root writes into read-only folders; the table's /proc row covers it"
)
def test_unwritable_parent_is_refused(tmp_path):
    locked = tmp_path / "ro"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        with pytest.raises(UserError, match="cannot write the run folder"):
            check_run_folder(locked / "run")
    finally:
        locked.chmod(0o755)


@pytest.mark.parametrize("name", sorted(p.name for p in QUICK.parent.glob("*.yaml")))
def test_every_packaged_recipe_passes_the_file_and_name_checks(name):
    from cai_bootstrap.preflight import check_names, check_recipe_files, select_stages

    recipe = load_recipe(QUICK.parent / name)
    check_names(recipe, check_recipe_files(recipe))
    assert select_stages(recipe, None, None) is None


@pytest.mark.parametrize(
    ("sets", "missing", "says"),
    [
        (["model.ray.workers=2"], "ray", "model.ray.workers needs the 'ray' package"),
        (["model.ray.workers=2"], "ray.data", "model.ray.workers needs the 'ray.data' package"),
        (["model.engine=openai"], "openai", "model.engine openai needs the 'openai' package"),
        (["model.engine=vllm"], "vllm", 'pip install "cai-bootstrap[vllm]"'),
    ],
)
def test_a_missing_extra_is_refused_before_any_step(tmp_path, monkeypatch, sets, missing, says):
    import importlib.util
    from importlib.machinery import ModuleSpec

    # Every other package is "installed", whatever this machine has (CI has no ray, openai or vllm).
    fake = lambda name, *a: None if name == missing else ModuleSpec(name, None)  # noqa: E731
    monkeypatch.setattr(importlib.util, "find_spec", fake)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match=re.escape(says)):
        _plan(overrides=[f"run.run_dir={tmp_path / 'run'}", *sets])
    assert not (tmp_path / "run").exists()
