"""Never trust a damaged file: a finished step whose files were cut, flipped or deleted is reported as
damaged (or not started), and `run --resume` redoes exactly that step (its dependants are checked and
stay done when its redone results are equal), from any working directory."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cai_bootstrap.cli import app
from cai_bootstrap.stage import plan
from cai_bootstrap.stage_model import MODEL, SFT
from cai_bootstrap.statuscmd import _context, step_rows
from test_pipeline import _recipe


@pytest.fixture(scope="module")
def finished(tmp_path_factory, tiny_model_dir) -> Path:
    tmp = tmp_path_factory.mktemp("damage")
    res = CliRunner().invoke(app, ["run", "--recipe", _recipe(tmp, tiny_model_dir), "--quiet"])
    assert res.exit_code == 0, res.output
    return tmp / "run"


def _manifests(run: Path) -> dict[str, str]:
    return {str(p.parent.relative_to(run)): p.read_text() for p in sorted(run.rglob("manifest.json"))}


def _target(folder: Path) -> Path:
    """The step's records, or its first non-empty vouched-for file (critique's records may be empty)."""
    files = json.loads((folder / "manifest.json").read_text())["files"]
    names = sorted(files, key=lambda n: (files[n]["size"] == 0, n != "records.jsonl", n))
    return folder / names[0]


def _cut_last_line(folder: Path) -> None:
    path = _target(folder)
    path.write_bytes(path.read_bytes()[:-7])


def _flip_byte(folder: Path) -> None:
    path = _target(folder)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _cut_manifest(folder: Path) -> None:
    path = folder / "manifest.json"
    path.write_text(path.read_text()[: len(path.read_text()) // 2])


def _edit_manifest(folder: Path, **fields) -> None:
    path = folder / "manifest.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **fields}, indent=2))


DAMAGE = {
    "truncated last line": (_cut_last_line, "damaged"),
    "deleted records": (lambda f: _target(f).unlink(), "damaged"),
    "deleted manifest": (lambda f: (f / "manifest.json").unlink(), "not started"),
    "cut-off manifest": (_cut_manifest, "damaged"),
    "one flipped byte": (_flip_byte, "damaged"),
    # Foreign or altered manifests (issue 22): each is this step's files under a manifest that is not
    # this run's own, so redoing exactly the step is safe and needs no --force.
    "another run's manifest": (lambda f: _edit_manifest(f, run_id="0123456789abcdef"), "damaged"),
    "altered signature": (lambda f: _edit_manifest(f, signature="0" * 16), "damaged"),
}


def _damage_and_repair(finished: Path, tmp_path: Path, step: str, damage: str) -> None:
    """Damage one step of a copy of the finished run; status names it alone; a resume redoes it alone."""
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    before = _manifests(run)
    hurt, expected = DAMAGE[damage]
    hurt(run / step)
    states = {r["step"]: r["state"] for r in step_rows(run)}
    assert states[step] == expected, (step, damage, states[step])
    assert {s for s, st in states.items() if st != "done"} == {step}
    res = CliRunner().invoke(app, ["run", "--resume", str(run), "--quiet"])
    assert res.exit_code == 0, res.output
    after = _manifests(run)
    # Exactly the damaged step was redone; its results equal the undamaged run's (timings and the
    # trainer's pickled arguments aside), so every dependant was checked and kept.
    assert {k for k in before if after.get(k) != before[k]} == {step}
    volatile = set(SFT.volatile) | set(MODEL.volatile)

    def files(m: str) -> dict:
        return {k: v for k, v in json.loads(m)["files"].items() if k not in volatile}

    assert files(after[step]) == files(before[step])
    assert all(r["state"] == "done" for r in step_rows(run))


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_answers_are_found_and_repaired(finished, tmp_path, damage):
    _damage_and_repair(finished, tmp_path, "stage1/round1/responses", damage)


STEPS = [
    "stage1/heldout",
    "stage1/eval_base",
    "stage1/safety_base",
    "stage1/ifeval_external",
    "stage1/ifeval_external_base",
    "stage1/round1/instructions",
    "stage1/round1/critique",
    "stage1/round1/pairs",
    "stage1/round1/sft",
    "stage1/round1/dpo",
    "stage1/round1/model",
    "stage1/round1/eval",
    "stage1/round1/safety",
    "stage1/round1/ifeval_external_trained",
]


@pytest.mark.slow  # one repair run per step kind (~15 s each on 2 CPU cores)
@pytest.mark.parametrize("i", range(len(STEPS)), ids=STEPS)
def test_every_step_kind_is_repaired(finished, tmp_path, i):
    _damage_and_repair(finished, tmp_path, STEPS[i], list(DAMAGE)[i % len(DAMAGE)])


def test_resume_and_status_from_other_directories(finished, tmp_path, monkeypatch):
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    before = _manifests(run)
    answers = []
    for cwd in (tmp_path, Path("/"), run / "stage1" / "round1"):
        monkeypatch.chdir(cwd)
        answers.append(step_rows(run))
        res = CliRunner().invoke(app, ["run", "--resume", str(run), "--quiet"])
        assert res.exit_code == 0, res.output
        assert not (cwd / "runs").exists()  # continued exactly the folder given, made nothing here
    assert answers[0] == answers[1] == answers[2]
    assert all(r["state"] == "done" for r in answers[0])
    assert _manifests(run) == before


def _dependants(run: Path, step: str) -> set[str]:
    """`step` and every step that reads its results or uses it as a model, by the declarations."""
    ctx = _context(run)[0]
    baseline, rnd = plan(ctx)
    folders = {s.name: f"stage1/{s.name}" for s in baseline} | {
        s.name: f"stage1/round1/{s.name}" for s in rnd
    }
    out, grew = {step}, True
    while grew:
        grew = False
        for spec in baseline + rnd:
            uses = {folders[n] for n in [*spec.reads, *spec.models.values()] if n in folders}
            if folders[spec.name] not in out and uses & out:
                out.add(folders[spec.name])
                grew = True
    return out


@pytest.mark.slow  # redoes a round from the answers on (~40 s on 2 CPU cores)
def test_forced_setting_change_redoes_exactly_the_step_and_its_dependants(finished, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    before = _manifests(run)
    setting = ["--set", "stages.0.responses.temperature=0.5"]
    res = CliRunner().invoke(app, ["run", "--resume", str(run), "--quiet", *setting])
    assert res.exit_code == 2 and "round1/responses is stale" in res.output
    res = CliRunner().invoke(app, ["run", "--resume", str(run), "--quiet", "--force", *setting])
    assert res.exit_code == 0, res.output
    after = _manifests(run)
    redone = {k for k in before if after[k] != before[k]}
    affected = _dependants(run, "stage1/round1/responses")
    assert "stage1/round1/responses" in redone and redone <= affected
    assert "stage1/round1/instructions" not in affected and "stage1/eval_base" not in affected
    assert all(r["state"] == "done" for r in step_rows(run))


def _alter_numbers(run: Path) -> None:
    """stage.json edited (or another run's pasted in): the chosen round's trained rate changed."""
    path = run / "stage1" / "stage.json"
    summary = json.loads(path.read_text())
    summary["rounds"][0]["score"] = 0.987654
    path.write_text(json.dumps(summary, indent=2))


def _foreign(run: Path) -> None:
    """stage.json and its seal from another run: one whose held-out baseline answers file differs
    (here by one more line), vouched for by that run's own manifest."""
    from cai_bootstrap.stage_seal import seal_stage
    from cai_bootstrap.store import sha256_file

    other = run.parent / "other"
    shutil.copytree(run, other)
    step = other / "stage1" / "eval_base"
    (step / "records.jsonl").write_text((step / "records.jsonl").read_text() + "\n")
    manifest = json.loads((step / "manifest.json").read_text())
    manifest["files"]["records.jsonl"] = {
        "sha256": sha256_file(step / "records.jsonl"),
        "size": (step / "records.jsonl").stat().st_size,
    }
    (step / "manifest.json").write_text(json.dumps(manifest))
    seal_stage(other / "stage1")
    for name in ("stage.json", "stage.manifest.json"):
        shutil.copy(other / "stage1" / name, run / "stage1" / name)


STAGE_DAMAGE = {
    "altered stage.json": (_alter_numbers, "does not match its stage.manifest.json"),
    "no seal": (lambda run: (run / "stage1" / "stage.manifest.json").unlink(), "is not vouched for"),
    "another run's stage.json": (_foreign, "made from other step results"),
}


@pytest.mark.parametrize("damage", list(STAGE_DAMAGE))
def test_unvouched_stage_json_is_not_reported_or_built_on(finished, tmp_path, damage):
    from cai_bootstrap.pipeline import _previous_model
    from cai_bootstrap.stage_seal import stage_problem

    run = tmp_path / "run"
    shutil.copytree(finished, run)
    assert stage_problem(run / "stage1") == ""
    hurt, why = STAGE_DAMAGE[damage]
    hurt(run)
    assert why in stage_problem(run / "stage1")
    res = CliRunner().invoke(app, ["report", str(run)])
    assert res.exit_code == 0, res.output
    report = (run / "report.md").read_text()
    assert "not vouched for" in report and why in report
    assert "98.8" not in report  # the altered number is not shown as this run's
    with pytest.raises(Exception, match=why) as err:
        _previous_model(run, 2)
    assert type(err.value).__name__ == "UserError"
    # A resume remakes stage.json from the run's own steps, and vouches for it.
    res = CliRunner().invoke(app, ["run", "--resume", str(run), "--quiet"])
    assert res.exit_code == 0, res.output
    assert stage_problem(run / "stage1") == ""
    assert "not vouched for" not in (run / "report.md").read_text()


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_redo_never_deletes_through_a_symlink_out_of_the_run(finished, tmp_path):
    """stage1/round1 is a link to a folder outside the run; redoing its damaged answers is refused
    with one line, and nothing outside the run folder is touched."""
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    outside = tmp_path / "elsewhere" / "round1"
    outside.parent.mkdir()
    shutil.move(run / "stage1" / "round1", outside)
    (run / "stage1" / "round1").symlink_to(outside, target_is_directory=True)
    _flip_byte(outside / "responses")
    before = _tree(outside.parent)
    res = CliRunner().invoke(app, ["run", "--resume", str(run), "--quiet"])
    assert res.exit_code == 2, res.output
    errors = [x for x in res.output.splitlines() if x.startswith("error:")]
    assert len(errors) == 1 and "is a symlink" in errors[0] and "Traceback" not in res.output, res.output
    assert _tree(outside.parent) == before


def test_a_link_inside_a_training_folder_is_refused_not_followed(tmp_path):
    from cai_bootstrap.errors import UserError
    from cai_bootstrap.fsguard import remove_tree

    run = tmp_path / "run"
    (run / "stage1" / "round1" / "sft" / "train").mkdir(parents=True)
    (run / "config.resolved.yaml").write_text("run: {}\n")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "keep.txt").write_text("mine\n")
    link = run / "stage1" / "round1" / "sft" / "train" / "checkpoints"
    link.symlink_to(mine, target_is_directory=True)
    with pytest.raises(UserError, match="is a symlink"):
        remove_tree(link)
    assert (mine / "keep.txt").read_text() == "mine\n" and link.is_symlink()


def _read_only(monkeypatch, folder: Path) -> None:
    """Every write under `folder` fails as on a read-only mount (root ignores chmod, so patch)."""
    import builtins
    import errno
    import os

    inside = str(folder)

    def refuse(path) -> None:
        if str(os.path.abspath(path)).startswith(inside):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))

    real_open, real_os_open, real_mkdir = builtins.open, os.open, os.mkdir

    def open_(file, mode="r", *a, **kw):
        if isinstance(file, str | Path) and any(c in mode for c in "wax+"):
            refuse(file)
        return real_open(file, mode, *a, **kw)

    def os_open(path, flags, *a, **kw):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            refuse(path)
        return real_os_open(path, flags, *a, **kw)

    def mkdir(path, *a, **kw):
        refuse(path)
        return real_mkdir(path, *a, **kw)

    monkeypatch.setattr(builtins, "open", open_)
    monkeypatch.setattr(os, "open", os_open)
    monkeypatch.setattr(os, "mkdir", mkdir)


def test_read_only_run_folder_status_works_report_is_one_line(finished, tmp_path, monkeypatch):
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    (run / ".lock").touch()
    (run / "report.md").unlink()  # the report must be written again, and cannot be
    _read_only(monkeypatch, run)
    res = CliRunner().invoke(app, ["status", str(run)])
    assert res.exit_code == 0, (res.output, res.exception)
    assert "round1/dpo" in res.output and "damaged" not in res.output
    res = CliRunner().invoke(app, ["report", str(run)])
    assert res.exit_code == 1, (res.output, res.exception)
    lines = [x for x in res.output.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: could not write"), res.output
    assert "Read-only file system" in lines[0] and " -> " in lines[0]


def _copy(finished: Path, tmp_path: Path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    return run


def _one_line_error(res, *expected: str) -> None:
    lines = [x for x in res.output.splitlines() if x.strip()]
    assert res.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: "), res.output
    assert all(e in lines[0] for e in expected), lines[0]


def test_foreign_manifests_are_damaged_not_stale(finished, tmp_path):
    """Another step's manifest in a step folder, a manifest from another run (another run id) and an
    altered signature: each is damaged with its reason (status needs no repair run to tell)."""
    run = _copy(finished, tmp_path)
    shutil.copy(run / "stage1/heldout/manifest.json", run / "stage1/eval_base/manifest.json")
    _edit_manifest(run / "stage1/round1/instructions", run_id="0123456789abcdef")
    _edit_manifest(run / "stage1/round1/pairs", signature="f" * 16)
    rows = {r["step"]: r for r in step_rows(run)}
    assert rows["stage1/eval_base"]["why"] == "its manifest is another step's (step heldout), not eval_base's"
    assert rows["stage1/eval_base"]["state"] == "damaged"
    assert rows["stage1/round1/instructions"]["why"].startswith("its manifest was written by another run")
    assert "(altered)" in rows["stage1/round1/pairs"]["why"]
    assert (run / "run-id").read_text().strip() == json.loads(
        (run / "stage1/heldout/manifest.json").read_text()
    )["run_id"]


def test_a_lost_config_is_explained_and_rebuilt_with_resume_with(finished, tmp_path):
    run = _copy(finished, tmp_path)
    before = _manifests(run)
    (run / "config.resolved.yaml").unlink()
    fix = "--resume-with RECIPE"
    _one_line_error(CliRunner().invoke(app, ["run", "--resume", str(run)]), "has lost its config", fix)
    _one_line_error(CliRunner().invoke(app, ["status", str(run)]), "has lost its config", fix)
    recipe = str(finished.parent / "recipe.yaml")
    res = CliRunner().invoke(app, ["run", "--resume", str(run), "--resume-with", recipe, "--quiet"])
    assert res.exit_code == 0, res.output
    assert (run / "config.resolved.yaml").is_file() and _manifests(run) == before  # nothing redone
    _one_line_error(
        CliRunner().invoke(app, ["run", "--resume", str(run), "--resume-with", recipe]), "still has its"
    )


def test_a_lock_that_is_a_folder_is_one_line(finished, tmp_path):
    run = _copy(finished, tmp_path)
    (run / ".lock").unlink(missing_ok=True)
    (run / ".lock").mkdir()
    for argv in (["status", str(run)], ["run", "--resume", str(run)]):
        _one_line_error(CliRunner().invoke(app, argv), "is a folder, not a lock file", "rm -r")


def _plant_leftovers(run: Path) -> None:
    (run / ".config.resolved.yaml.tmp-4242").write_text("run: {")
    (run / "stage1/round1/responses/.manifest.json.tmp-4243").write_text("{")
    partial = run / "stage1/round1/.model.partial-4244"
    partial.mkdir()
    (partial / "model.safetensors").write_bytes(b"\0" * 1000)
    (partial / "outside").symlink_to(run.parent / "keep.txt")  # removed as a link, never followed


def test_leftovers_are_counted_cleaned_and_removed_by_the_next_run(finished, tmp_path):
    from cai_bootstrap import leftovers

    run = _copy(finished, tmp_path)
    (tmp_path / "keep.txt").write_text("not the run's")
    _plant_leftovers(run)
    res = CliRunner().invoke(app, ["status", str(run)])
    assert res.exit_code == 0 and "leftovers: 3 leftover(s)" in res.output and "status --clean" in res.output
    res = CliRunner().invoke(app, ["status", "--clean", str(run)])
    assert res.exit_code == 0 and "leftovers: removed 3" in res.output, res.output
    assert leftovers.find(run) == [] and (tmp_path / "keep.txt").read_text() == "not the run's"
    _plant_leftovers(run)
    before = _manifests(run)
    res = CliRunner().invoke(app, ["run", "--resume", str(run), "--quiet"])
    assert res.exit_code == 0, res.output
    assert leftovers.find(run) == [] and _manifests(run) == before


def test_a_killed_run_leaves_no_temporary_after_the_next_run(finished, tmp_path):
    """SIGKILL a real run while it writes the merged model (the largest temporary, a whole model
    folder), then run again: the run finishes and no temporary file or partial model remains."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import cai_bootstrap
    from cai_bootstrap import leftovers

    run = _copy(finished, tmp_path)
    shutil.rmtree(run / "stage1/round1/model")  # the merge step is redone, writing .model.partial-*
    env = {**os.environ, "PYTHONPATH": str(Path(cai_bootstrap.__file__).parents[1])}
    argv = [sys.executable, "-m", "cai_bootstrap", "run", "--resume", str(run), "--quiet"]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline and not leftovers.find(run):
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_with = leftovers.find(run)
    res = CliRunner().invoke(app, ["run", "--resume", str(run), "--quiet"])
    assert res.exit_code == 0, res.output
    assert leftovers.find(run) == [], killed_with
    assert all(r["state"] == "done" for r in step_rows(run))
    assert killed_with, "the kill came after the run had finished writing: no temporary was seen"
