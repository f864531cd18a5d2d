"""A finished tiny run, as a researcher takes it away: `cai-bootstrap export` gives a model that loads
and answers like the run's eval, its card with the results, both dataset forms, artifacts without
cache paths, a push that fails with one line when the hub cannot be reached; run.report_to
tensorboard gives an event file with the run's metrics; a missing tracker package stops the run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.util import find_spec

import pytest
import yaml
from datasets import load_dataset
from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline
from typer.testing import CliRunner

from cai_bootstrap.cli import app
from cai_bootstrap.engines import cut_at_stop
from cai_bootstrap.modelref import model_ref
from cai_bootstrap.records import EvalItem
from cai_bootstrap.store import read_jsonl
from cai_bootstrap.tasks import frame
from test_pipeline import _recipe

HAS_TENSORBOARD = find_spec("tensorboard") is not None


def _with(path: str, **run) -> str:
    recipe = yaml.safe_load(open(path))
    recipe["run"].update(run)
    open(path, "w").write(yaml.safe_dump(recipe))
    return path


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_model_dir):
    tmp = tmp_path_factory.mktemp("export")
    recipe = _recipe(tmp, tiny_model_dir)
    if HAS_TENSORBOARD:  # the dev extra has it; without it the tracking test below is skipped
        _with(recipe, report_to=["tensorboard"])
    result = CliRunner().invoke(app, ["run", "--recipe", recipe, "--quiet"])
    assert result.exit_code == 0, result.output
    return tmp / "run"


@pytest.fixture(scope="module")
def exported(run_dir, tmp_path_factory):
    to = tmp_path_factory.mktemp("out") / "export"
    result = CliRunner().invoke(app, ["export", str(run_dir), "--to", str(to)])
    assert result.exit_code == 0, result.output
    return to


def test_exported_model_answers_messages_like_the_held_out_eval(run_dir, exported):
    model_dir = exported / "model"
    AutoModelForCausalLM.from_pretrained(model_dir)
    AutoTokenizer.from_pretrained(model_dir)
    pipe = pipeline("text-generation", model=str(model_dir))
    items = read_jsonl(run_dir / "stage1" / "round1" / "eval" / "records.jsonl", EvalItem)[:3]
    for item in items:
        out = pipe([{"role": "user", "content": item.prompt}], tokenizer=pipe.tokenizer)
        assert frame.clean(cut_at_stop(out[0]["generated_text"][-1]["content"], frame.STOP)) == item.response


def test_card_shows_the_runs_results(run_dir, exported):
    card = (exported / "model" / "README.md").read_text()
    stage = json.loads((run_dir / "stage1" / "stage.json").read_text())
    chosen = next(r for r in stage["rounds"] if r["round"] == stage["chosen_round"])
    strict = chosen["accuracies"]["trained"]["prompt_strict"]
    assert f"| held-out | prompt_strict | {int(chosen['accuracies']['trained']['n_prompts'])} |" in card
    assert f"{strict:.3f} [" in card and "| external | prompt_strict |" in card
    assert "apply_chat_template" in card and "license: other" in card
    # The card written at merge time (inside the run) says the results were not known yet.
    assert (
        "Not known when this card was written"
        in (run_dir / "stage1" / "round1" / "model" / "README.md").read_text()
    )


def test_both_dataset_forms_load(exported):
    data = exported / "data"
    for name in ("sft.jsonl", "records.jsonl", "sft_messages.jsonl", "pairs_messages.jsonl"):
        assert len(load_dataset("json", data_files=str(data / name), split="train")) > 0
    rows = load_dataset("json", data_files=str(data / "sft_messages.jsonl"), split="train")
    assert (
        rows[0]["messages"][0]["role"] == "user" and "Instruction:" not in rows[0]["messages"][0]["content"]
    )


def test_artifacts_name_models_without_machine_paths(run_dir, tiny_model_dir):
    lineage = json.loads((run_dir / "stage1" / "round1" / "model" / "lineage.json").read_text())
    assert lineage["adapters"] == ["stage1/round1/sft/train/adapter", "stage1/round1/dpo/train/adapter"]
    assert lineage["merged_adapter"] == "stage1/round1/dpo/train/adapter"
    # The tiny model is the researcher's own folder: it stays as given, it is not a cache path.
    assert lineage["base_model"] == str(tiny_model_dir) == lineage["root_model"]


def test_model_refs(tmp_path):
    embedded = tmp_path / "cache" / "gemma-3-270m" / "hf"
    embedded.mkdir(parents=True)
    (embedded / "embedded.json").write_text("{}")
    assert model_ref(embedded, tmp_path / "run") == "embedded:gemma-3-270m"
    hub = tmp_path / "hub" / "models--Qwen--Qwen2.5-7B" / "snapshots" / "abc123"
    assert model_ref(hub, tmp_path / "run") == "Qwen/Qwen2.5-7B@abc123"
    assert (
        model_ref(tmp_path / "run" / "stage1" / "round1" / "model", tmp_path / "run") == "stage1/round1/model"
    )


def test_export_refuses_bad_targets(run_dir, exported):
    again = CliRunner().invoke(app, ["export", str(run_dir), "--to", str(exported)])
    assert again.exit_code == 2 and "not empty" in again.output
    missing = CliRunner().invoke(app, ["export", str(run_dir), "--stage", "4", "--to", str(exported) + "x"])
    assert missing.exit_code == 2 and "no finished stage 4" in missing.output
    assert not os.path.exists(str(exported) + "x")


def test_push_fails_with_one_line_when_offline(run_dir, tmp_path):
    # A closed port on localhost: the hub cannot be reached, the export itself is complete.
    env = {
        **os.environ,
        "HF_ENDPOINT": "http://127.0.0.1:9",
        "HF_TOKEN": "hf_fake",
        "HF_HUB_DISABLE_TELEMETRY": "1",
    }
    to = tmp_path / "pushed"
    cmd = [
        sys.executable,
        "-m",
        "cai_bootstrap",
        "export",
        str(run_dir),
        "--to",
        str(to),
        "--push-to-hub",
        "me/tiny",
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if "error" in ln.lower()]
    assert len(lines) == 1 and "127.0.0.1:9" in lines[0] and "me/tiny" in lines[0]
    assert (to / "model" / "README.md").is_file()


@pytest.mark.skipif(not HAS_TENSORBOARD, reason="tensorboard is not installed (pip install -e '.[dev]')")
def test_tensorboard_shows_the_run(run_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "tracking" / "tensorboard"))
    events.Reload()

    def last(tag):
        return events.Scalars(tag)[-1]

    stage = json.loads((run_dir / "stage1" / "stage.json").read_text())
    trained = stage["rounds"][0]["accuracies"]["trained"]
    point = last("stage1/heldout/trained/prompt_strict")
    assert point.step == 1 and point.value == pytest.approx(trained["prompt_strict"])
    pairs = json.loads((run_dir / "stage1" / "round1" / "pairs" / "manifest.json").read_text())
    assert last("stage1/steps/pairs/pairs").value == pairs["counts"]["pairs"]
    assert last("stage1/steps/eval_base/seconds").step == 0
    funnel = pairs["stats"]["funnel"]
    assert last(f"stage1/pairs_funnel/00_{funnel[0]['filter']}").value == funnel[0]["remaining"]
    metrics = [
        json.loads(x) for x in (run_dir / "stage1/round1/sft/train/metrics.jsonl").read_text().splitlines()
    ]
    assert last("stage1/round1/sft/train_loss").value == pytest.approx(metrics[-1]["train_loss"])
    assert "stage1/external/trained/prompt_strict" in events.Tags()["scalars"]


@pytest.mark.skipif(find_spec("wandb") is not None, reason="wandb is installed here")
@pytest.mark.parametrize("where", ["run", "sft"])
def test_missing_tracker_package_stops_before_any_step(tmp_path, tiny_model_dir, where):
    recipe = _recipe(tmp_path, tiny_model_dir)
    if where == "run":
        _with(recipe, report_to=["wandb"])
    else:
        data = yaml.safe_load(open(recipe))
        data["stages"][0]["sft"]["report_to"] = "wandb"
        open(recipe, "w").write(yaml.safe_dump(data))
    result = CliRunner().invoke(app, ["run", "--recipe", recipe, "--quiet"])
    assert (
        result.exit_code == 2
        and "'wandb' is not installed" in result.output
        and "pip install wandb" in result.output
    )
    assert not (tmp_path / "run").exists()
