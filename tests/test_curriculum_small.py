"""recipes/curriculum-small.yaml runs all six stages on a tiny random model (its counts, the tiny
model's health limits, and a judge the random model clears so its tie-ordered pairs exist): each
stage hands its model on, the forgetting matrix grows by one column per stage, stage 4 records its
judging skill and the hand-off decision, and the report shows them."""

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from cai_bootstrap.cli import app
from tiny import TINY_CANARY, with_tiny_health

RECIPE = Path(__file__).parents[1] / "recipes" / "curriculum-small.yaml"


@pytest.mark.slow
def test_curriculum_small_runs_every_stage_on_a_tiny_model(tmp_path, tiny_model_dir):
    recipe = yaml.safe_load(RECIPE.read_text())
    recipe["run"]["run_dir"] = str(tmp_path / "run")
    recipe["model"] = {"generator": str(tiny_model_dir), "dtype": "float32", "train_dtype": "float32",
                       "batch_size": 8, "canary": TINY_CANARY}  # fmt: skip
    for s in recipe["stages"]:
        with_tiny_health(s)
        # The random model never passes a curriculum check: a judge it clears orders the ties.
        s["judge"].update(enabled=True, min_balanced_accuracy=0.0, calibration_per_class=2)
        s["pairs"].update(drop_truncated=False, min_pairs=0, min_margin=0.0)  # the recipe's limits fit Gemma
        s["sft"].update(min_examples=0, enabled=s["stage"] == 1)  # no verified answers later: DPO only
        s["eval"]["safety"]["enabled"] = False
        s["sft"]["max_length"] = s["dpo"]["max_length"] = 2048  # the tiny tokenizer splits words finely
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    res = CliRunner().invoke(app, ["run", "--recipe", str(path), "--quiet"])
    assert res.exit_code == 0, res.output
    run = tmp_path / "run"
    results = [json.loads((run / f"stage{n}" / "stage.json").read_text()) for n in range(1, 7)]
    for n, r in enumerate(results, start=1):
        assert [c["heldout_stage"] for c in r["forgetting"]] == list(range(1, n))
        assert r["judge"].startswith("judge: ")
    handoff = results[3]["handoff"]
    assert handoff["skill"]["n"] > 0 and handoff["calibration"]
    assert handoff["accepted"]  # the bar is 0 here: the hand-off happens
    model4 = results[3]["rounds"][results[3]["chosen_round"] - 1]["model"]
    assert (
        results[4]["judge"]
        == results[5]["judge"]
        == f"judge: stage 4's model {model4} (its calibration passed)"
    )
    report = (run / "report.md").read_text()
    assert "## Nothing forgotten" in report and "as judge on stage 4's held-out items" in report
