"""What a newcomer sees on a two-round tiny run, run as a user runs it (a subprocess, stderr
redirected to a file): start and end lines for every step, progress lines while generating, the
baseline logged when known; `run --dry-run` on it; the report's rounds table."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from test_pipeline import _recipe

SRC = Path(__file__).resolve().parents[1] / "src"


def _cli(*args: str, stderr_to: Path | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    err = open(stderr_to, "w") if stderr_to else subprocess.PIPE  # noqa: SIM115 - closed below
    try:
        return subprocess.run(
            [sys.executable, "-m", "cai_bootstrap", *args],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            env=env,
            cwd=cwd,
            timeout=1200,
        )
    finally:
        if stderr_to:
            err.close()


@pytest.fixture(scope="module")
def two_rounds(tmp_path_factory, tiny_model_dir):
    tmp = tmp_path_factory.mktemp("first-hour")
    recipe = Path(_recipe(tmp, tiny_model_dir))
    data = yaml.safe_load(recipe.read_text())
    data["stages"][0]["max_rounds"] = 2  # no gate configured: both rounds run
    recipe.write_text(yaml.safe_dump(data))
    log = tmp / "run.log"
    res = _cli("run", "--recipe", str(recipe), stderr_to=log)
    assert res.returncode == 0, log.read_text()[-3000:]
    return tmp, recipe, log.read_text()


def _steps(run_dir: Path) -> list[str]:
    return sorted(str(p.parent.relative_to(run_dir)) for p in run_dir.rglob("manifest.json"))


def test_redirected_log_has_a_start_and_end_line_for_every_step(two_rounds):
    tmp, _, text = two_rounds
    steps = _steps(tmp / "run")
    assert len(steps) > 20 and any("round2/" in s for s in steps)
    for step in steps:
        assert re.search(rf"INFO start {re.escape(step)} \(new\)$", text, re.M), step
        assert re.search(rf"INFO end {re.escape(step)}: .*; \d+\.\d s$", text, re.M), step
    # No bars (ours or the libraries'), no blank lines where transient bars were; our lines unwrapped.
    lines = text.splitlines()
    assert not [line for line in lines if "|" in line and "it/s" in line or "\r" in line or not line.strip()]


def test_redirected_log_has_progress_lines_while_generating(two_rounds):
    _, _, text = two_rounds
    start = text.index("start stage1/round1/responses")
    end = text.index("end stage1/round1/responses")
    progress = re.findall(r"INFO \S+: (\d+)/(\d+) \(\d+%\), \d+ s, about \S+ s left", text[start:end])
    assert progress, text[start:end]
    done = [int(a) for a, _ in progress]
    assert done == sorted(done) or len({t for _, t in progress}) > 1  # counts grow within each bar
    assert any(a == t for a, t in progress)  # the last line of a bar says it is complete


def test_baseline_result_is_logged_when_known(two_rounds):
    _, _, text = two_rounds
    line = re.search(r"INFO stage1/eval_base: prompt-level strict \S+% \[95% CI \S+%, \S+%\] of 5", text)
    assert line, text
    # ...before the first round's training starts, not only at the end
    assert line.start() < text.index("start stage1/round1/sft")


def test_redirected_log_shows_training_progress(two_rounds):
    _, _, text = two_rounds
    start, end = text.index("start stage1/round1/sft"), text.index("end stage1/round1/sft")
    assert re.search(r"INFO training step \d+/\d+ \{.*'loss'", text[start:end]), text[start:end]


def _snapshot(*folders: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p): (p.stat().st_size, p.stat().st_mtime_ns)
        for folder in folders
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _dry_run(recipe: Path, *args: str) -> dict[str, tuple[str, str]]:
    from typer.testing import CliRunner

    from cai_bootstrap.cli import app

    res = CliRunner().invoke(app, ["run", "--recipe", str(recipe), "--dry-run", "--quiet", *args])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0].startswith("run folder: ") and lines[-1].startswith("note: ")
    rows = [line.split(None, 2) for line in lines[1:-1]]
    return {step: (action, reason) for step, action, reason in rows}


def test_dry_run_plans_a_finished_a_stale_and_a_half_finished_run_and_writes_nothing(two_rounds, tmp_path):
    import shutil

    tmp, recipe, _ = two_rounds
    run_dir = tmp / "run"
    before = _snapshot(tmp)
    finished = _dry_run(recipe)
    assert set(finished) == {s for s in _steps(run_dir) if not s.startswith("judge_calibration/")}
    assert {a for a, _ in finished.values()} == {"skip"}
    stale = _dry_run(recipe, "--set", "stages.0.dpo.beta=0.2")
    assert (
        stale["stage1/round1/dpo"][0] == "stale"
        and "refuses it without --force" in stale["stage1/round1/dpo"][1]
    )
    assert stale["stage1/round1/sft"][0] == "skip" and stale["stage1/round1/model"][0] == "skip?"
    forced = _dry_run(recipe, "--set", "stages.0.dpo.beta=0.2", "--force")
    assert forced["stage1/round1/dpo"][0] == "run"
    assert _snapshot(tmp) == before  # nothing written, not even the run header

    # Half-finished (a step's manifest gone, as after a kill) and damaged (a vouched-for file changed),
    # on a copy of the run.
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    (copy / "stage1" / "round2" / "eval" / "manifest.json").unlink()
    with open(copy / "stage1" / "round1" / "pairs" / "records.jsonl", "a") as f:
        f.write("\n")
    plan = _dry_run(recipe, "--set", f"run.run_dir={copy}")
    assert plan["stage1/round2/eval"][0] == "run"
    assert plan["stage1/round1/pairs"][0] == "run" and "damaged" in plan["stage1/round1/pairs"][1]
    assert plan["stage1/round1/sft"][0] == "skip?" and "stage1/round1/pairs" in plan["stage1/round1/sft"][1]
    assert plan["stage1/heldout"] == ("skip", "done, signature matches")
    fresh = _dry_run(recipe, "--set", f"run.run_dir={tmp_path / 'new'}")
    assert {a for a, _ in fresh.values()} == {"run"} and not (tmp_path / "new").exists()


def test_report_shows_every_round_with_intervals_and_both_mcnemar_tests(two_rounds):
    from cai_bootstrap.report.collect import collect

    tmp, _, _ = two_rounds
    run_dir = tmp / "run"
    (stage,) = collect(run_dir).stages
    assert [r.label for r in stage.rounds] == ["baseline", "round 1", "round 2"]
    assert [r.chosen for r in stage.rounds] == [False, False, True]  # no gate: the last round is kept
    assert stage.rounds[0].vs_baseline is None and stage.rounds[1].vs_previous is None
    assert stage.rounds[2].vs_previous is not None and stage.rounds[2].vs_baseline.n == 5
    for r in stage.rounds:
        assert set(r.measures) == {"prompt_strict", "prompt_loose", "instruction_strict", "instruction_loose"}
        assert all(m.ci_low <= m.rate <= m.ci_high for m in r.measures.values())
    md = (run_dir / "report.md").read_text()
    table = md.split("### Every round")[1].split("###")[0]
    assert [
        line.split("|")[1].strip()
        for line in table.splitlines()
        if line.startswith("| baseline") or line.startswith("| round")
    ] == ["baseline", "round 1", "round 2 (kept)"]
    assert "[95% CI]" in md.split("## Summary")[1].split("##")[0]  # intervals in the summary row
    assert "run started:" in md and "git commit of the run:" in md
    assert "(the stage's input model)" in md  # the judge as the recipe names it
    html = (run_dir / "report.html").read_text()
    assert "<h3>Every round</h3>" in html


def test_config_hash_does_not_depend_on_where_the_run_folder_lies(two_rounds, tmp_path):
    from cai_bootstrap.report.collect import config_hash

    tmp, _, _ = two_rounds
    config = yaml.safe_load((tmp / "run" / "config.resolved.yaml").read_text())
    where = str((tmp / "run").resolve())
    moved = yaml.safe_load(yaml.safe_dump(config).replace(where, str(tmp_path / "elsewhere")))
    assert moved["run"]["run_dir"] != config["run"]["run_dir"]
    assert config_hash(moved, tmp_path / "elsewhere") == config_hash(config, tmp / "run")
    config["run"]["seed"] = 1
    assert config_hash(config, tmp / "run") != config_hash(moved, tmp_path / "elsewhere")
