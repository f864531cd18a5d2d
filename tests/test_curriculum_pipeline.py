"""Stages and rounds: stage 2 generates with stage 1's merged model; rounds stop at the gate or on a
score drop; a step past its timeout fails with the documented message."""

import json
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from cai_bootstrap import pipeline
from cai_bootstrap.cli import app
from cai_bootstrap.config import StageSettings
from cai_bootstrap.engines.holder import model_identity
from cai_bootstrap.errors import StepFailed
from cai_bootstrap.report.model import GateOutcome
from cai_bootstrap.results import RoundResult
from cai_bootstrap.runner import StepTimeout
from cai_bootstrap.stage import Progress
from test_pipeline import _recipe


def test_stage_two_generates_with_stage_one_model(tmp_path, tiny_model_dir):
    path = _recipe(tmp_path, tiny_model_dir)
    recipe = yaml.safe_load(open(path))
    s2 = json.loads(json.dumps(recipe["stages"][0]))
    s2["stage"] = 2
    del s2["instructions"]["constraint_types"], s2["instructions"]["self_instruct"]
    s2["eval"]["safety"]["enabled"] = False
    # A random model never answers stage 2 correctly: no passing answer to imitate, so stage 2 runs
    # "DPO only" on judge-ordered pairs (the method's ablation mode).
    s2["sft"]["enabled"] = False
    s2["judge"]["enabled"] = True
    recipe["stages"].append(s2)
    open(path, "w").write(yaml.safe_dump(recipe))
    res = CliRunner().invoke(app, ["run", "--recipe", path, "--quiet"])
    assert res.exit_code == 0, res.output
    run = tmp_path / "run"
    stage1_model = run / "stage1" / "round1" / "model"
    m = json.loads((run / "stage2" / "round1" / "responses" / "manifest.json").read_text())
    assert m["parts"]["models"]["generator"] == model_identity(stage1_model)
    lineage = json.loads((run / "stage2" / "round1" / "model" / "lineage.json").read_text())
    assert (
        lineage["parent_lineage"]["weights_sha256"]
        == json.loads((stage1_model / "lineage.json").read_text())["weights_sha256"]
    )
    ins = [
        json.loads(x)
        for x in (run / "stage2" / "round1" / "instructions" / "records.jsonl").read_text().splitlines()
    ]
    assert ins and all(i["stage"] == 2 for i in ins)
    # stage 2 holds out answer-checked questions only: measured by their checks, not the content step
    assert (run / "stage2" / "content_base" / "records.jsonl").read_text() == ""
    assert (
        "Stage 2" in (run / "report.md").read_text() or "stage 2" in (run / "report.md").read_text().lower()
    )


class _Ctx:
    def __init__(self, rounds):
        self.cfg = StageSettings(stage=1, max_rounds=rounds)
        self.base = "base"
        self.run_dir = Path("/run")
        self.round = 0
        self.generator = None


def _scripted(monkeypatch, scores, passes, configured=True):
    calls = []

    def fake_round(ctx, base):
        calls.append(str(ctx.generator))
        return RoundResult(round=ctx.round, generator="", model=f"m{ctx.round}", trained_eval="x"), []

    def fake_judge(ctx, base_eval, info):
        r = info.round
        outcome = GateOutcome(
            passed=passes[r - 1], metric="m", achieved=0, needed=None, configured=configured
        )
        return info.model_copy(update={"score": scores[r - 1], "gate": outcome})

    monkeypatch.setattr(pipeline, "run_round", fake_round)
    monkeypatch.setattr(pipeline, "_judge_round", fake_judge)
    monkeypatch.setattr(pipeline, "for_round", lambda ctx, r, g: _Round(ctx, r, g))
    return calls


class _Round:
    def __init__(self, ctx, r, generator):
        self.cfg, self.round, self.generator = ctx.cfg, r, generator


def test_rounds_stop_when_the_gate_passes(monkeypatch):
    calls = _scripted(monkeypatch, [0.2, 0.5, 0.9, 0.95], [False, False, True, True])
    done, chosen, why, _ = pipeline._rounds(_Ctx(4), Progress())
    assert len(done) == 3 and chosen.round == 3 and why == "gate passed"
    assert calls == ["base", "/run/m1", "/run/m2"]  # each round starts from the previous round's model


def test_rounds_stop_on_a_score_drop_and_keep_the_better_round(monkeypatch):
    _scripted(monkeypatch, [0.4, 0.3, 0.9], [False, False, False])
    done, chosen, why, _ = pipeline._rounds(_Ctx(3), Progress())
    assert len(done) == 2 and chosen.round == 1 and "dropped" in why


def test_without_a_gate_every_round_runs(monkeypatch):
    # An unconfigured gate "passes" (nothing to fail), which must not end the rounds early.
    _scripted(monkeypatch, [0.2, 0.3, 0.4], [True, True, True], configured=False)
    done, chosen, why, _ = pipeline._rounds(_Ctx(3), Progress())
    assert len(done) == 3 and chosen.round == 3 and why.startswith("no gate configured")


def test_rounds_stop_at_max_rounds(monkeypatch):
    _scripted(monkeypatch, [0.1, 0.2], [False, False])
    done, chosen, why, _ = pipeline._rounds(_Ctx(2), Progress())
    assert chosen.round == 2 and "max_rounds" in why


def test_timeout_fails_the_step_with_the_documented_message():
    with pytest.raises(StepFailed, match=r"step 'generation' exceeded its timeout of 0 s") as err:
        with StepTimeout("generation", 0.2):
            time.sleep(2)
    assert "run.timeouts.generation" in err.value.fix
