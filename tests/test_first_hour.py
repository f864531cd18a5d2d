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
