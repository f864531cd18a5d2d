"""`--from-stage 2` on a run made by this code, after a finished stage 1; a no-op resume keeps each
round's recorded time in stage.json."""

import json

import pytest
import yaml
from typer.testing import CliRunner

from cai_bootstrap.cli import app
from cai_bootstrap.engines.holder import model_identity
from cai_bootstrap.stage_seal import seal_stage
from test_pipeline import _recipe


def _two_stages(tmp_path, model_dir) -> str:
    path = _recipe(tmp_path, model_dir)
    recipe = yaml.safe_load(open(path))
    s1 = recipe["stages"][0]
    s1["eval"]["safety"]["enabled"] = False
    s1["eval"]["ifeval_files"] = []
    s2 = json.loads(json.dumps(s1))
    s2["stage"] = 2
    del s2["instructions"]["constraint_types"], s2["instructions"]["self_instruct"]
    s2["sft"]["enabled"] = False  # a random model never answers stage 2 correctly: DPO on judged pairs
    s2["judge"]["enabled"] = True
    recipe["stages"].append(s2)
    open(path, "w").write(yaml.safe_dump(recipe))
    return path


def _rounds(run, stage=1):
    return json.loads((run / f"stage{stage}" / "stage.json").read_text())["rounds"]


def test_from_stage_two_after_a_finished_stage_one_and_round_times_survive_resume(tmp_path, tiny_model_dir):
    path = _two_stages(tmp_path, tiny_model_dir)
    run = tmp_path / "run"
    res = CliRunner().invoke(app, ["run", "--recipe", path, "--stages", "1", "--quiet"])
    assert res.exit_code == 0, res.output
    before = _rounds(run)
    steps = [
        json.loads(p.read_text())["seconds"] for p in (run / "stage1" / "round1").glob("*/manifest.json")
    ]
    assert before[0]["seconds"] == pytest.approx(sum(steps), abs=0.1) and before[0]["seconds"] > 0

    res = CliRunner().invoke(app, ["run", "--resume", str(run), "--stages", "1", "--quiet"])
    assert res.exit_code == 0, res.output
    assert _rounds(run) == before  # every step skipped: the round keeps the time it took when made

    res = CliRunner().invoke(app, ["run", "--recipe", path, "--from-stage", "2", "--quiet"])
    assert res.exit_code == 0, res.output
    m = json.loads((run / "stage2" / "round1" / "responses" / "manifest.json").read_text())
    assert m["parts"]["models"]["generator"] == model_identity(run / "stage1" / "round1" / "model")
    assert _rounds(run) == before
    _check_forgetting_matrix(run)

    # The tiny random model writes nothing usable: the written step stops with its reason.
    sets = ["stages.1.instructions.model_written.enabled=true", "stages.1.instructions.model_written.samples=1",
            "stages.1.instructions.model_written.max_new_tokens=16"]  # fmt: skip
    args = ["run", "--recipe", path, "--from-stage", "2", "--force", "--quiet"]
    res = CliRunner().invoke(app, [*args, *(x for s in sets for x in ("--set", s))])
    assert res.exit_code == 1 and "none could be kept" in res.output, res.output


def _check_forgetting_matrix(run):
    """Stage 2's chosen model answered stage 1's held-out set, paired with stage 1's chosen model."""
    s1 = json.loads((run / "stage1" / "stage.json").read_text())
    (cell,) = json.loads((run / "stage2" / "stage.json").read_text())["forgetting"]
    assert (cell["after_stage"], cell["heldout_stage"]) == (2, 1)
    assert cell["comparison"]["base"] == s1["rounds"][0]["comparison"]["trained"]
    assert cell["comparison"]["trained"]["n"] == 5
    m = json.loads((run / "stage2" / "forgetting_stage1" / "manifest.json").read_text())
    assert m["parts"]["models"]["evaluated"] == model_identity(run / "stage2" / "round1" / "model")
    report = (run / "report.md").read_text()
    assert "## Nothing forgotten" in report and "| 2 |" in report and "(own)" in report


def test_from_stage_refuses_a_damaged_stage_json(tmp_path, tiny_model_dir):
    path = _two_stages(tmp_path, tiny_model_dir)
    (tmp_path / "run" / "stage1").mkdir(parents=True)
    (tmp_path / "run" / "config.resolved.yaml").write_text(open(path).read())  # a run folder
    (tmp_path / "run" / "stage1" / "stage.json").write_text('{"model": "x"}')
    seal_stage(tmp_path / "run" / "stage1")  # sealed, so its content (not a missing seal) is what is refused
    res = CliRunner().invoke(app, ["run", "--recipe", path, "--from-stage", "2", "--quiet"])
    assert res.exit_code == 2, res.output
    assert "is damaged" in res.output and "run stage 1 first" in res.output
