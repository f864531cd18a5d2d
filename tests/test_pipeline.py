"""One whole stage on a tiny random model through the CLI: files, skip on re-run, stale, gate exit 3."""

import json

import pytest
import yaml
from typer.testing import CliRunner

from cai_bootstrap.cli import app
from tiny import TINY_CANARY, with_tiny_health


def _ifeval_file(tmp_path):
    rows = [
        {
            "key": 1,
            "prompt": "Write about tea. Do not use any commas.",
            "instruction_id_list": ["punctuation:no_comma"],
            "kwargs": [{}],
        },
        {
            "key": 2,
            "prompt": "Describe rain in under 20 words.",
            "instruction_id_list": ["length_constraints:number_words"],
            "kwargs": [{"num_words": 20, "relation": "less than"}],
        },
    ]
    path = tmp_path / "external.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def _recipe(tmp_path, model_dir, **gate) -> str:
    recipe = {
        "run": {"name": "tiny", "run_dir": str(tmp_path / "run"), "seed": 0},
        "model": {
            "generator": str(model_dir),
            "dtype": "float32",
            "train_dtype": "float32",
            "batch_size": 8,
            "canary": TINY_CANARY,
        },
        "stages": [
            with_tiny_health(
                {
                    "stage": 1,
                    "instructions": {
                        "n_train": 6,
                        "n_heldout": 5,
                        "max_constraints": 1,
                        "constraint_types": ["punctuation:no_comma", "cai:no_digits"],
                        "self_instruct": {
                            "n_tasks": 2,
                            "max_rounds": 1,
                            "prompts_per_round": 2,
                            "max_new_tokens": 16,
                        },
                    },
                    "responses": {"k": 4, "max_new_tokens": 6, "chunk": 4},
                    "critique": {
                        "max_items": 2,
                        "critique_max_new_tokens": 8,
                        "max_new_tokens": 8,
                        "shots": 1,
                    },
                    # The tiny random model never stops: every answer runs to max_new_tokens.
                    "pairs": {"max_judged_per_instruction": 2, "min_margin": 0.0, "drop_truncated": False},
                    "lora": {"r": 4},
                    "sft": {"epochs": 1, "batch_size": 4, "max_length": 1024, "learning_rate": 1e-3},
                    "dpo": {"epochs": 1, "batch_size": 4, "max_length": 1024, "eval_fraction": 0.0},
                    "eval": {
                        "max_new_tokens": 6,
                        "ifeval_files": [_ifeval_file(tmp_path)],
                        "safety": {"n_redteam": 2, "n_benign": 2, "max_new_tokens": 6, "harm_categories": []},
                    },
                    # A tiny calibration, and a bar the random judge clears, so that its pairs and safety
                    # figures still go down the judged path (tests/test_calibrate.py covers the refusals).
                    "judge": {"calibration_per_class": 2, "min_balanced_accuracy": 0.0},
                    "gate": gate or {"metric": "prompt_strict"},
                }
            )
        ],
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return str(path)


def _manifests(run_dir):
    return {str(p.relative_to(run_dir)): p.read_text() for p in sorted(run_dir.rglob("manifest.json"))}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, tiny_model_dir):
    tmp = tmp_path_factory.mktemp("pipe")
    recipe = _recipe(tmp, tiny_model_dir)
    result = CliRunner().invoke(app, ["run", "--recipe", recipe, "--quiet"])
    assert result.exit_code == 0, result.output
    return tmp, recipe


def test_stage_writes_every_artifact(finished_run):
    tmp, _ = finished_run
    run = tmp / "run"
    s1 = run / "stage1"
    for rel in [
        "heldout",
        "round1/instructions",
        "round1/responses",
        "round1/critique",
        "round1/pairs",
        "eval_base",
        "round1/sft",
        "round1/dpo",
        "round1/model",
        "round1/eval",
        "content_base",
        "round1/content",
        "safety_base",
        "round1/safety",
    ]:
        assert (s1 / rel / "manifest.json").exists(), rel
    assert (s1 / "round1" / "model" / "lineage.json").exists()
    assert (run / "report.md").exists() and (run / "report.html").exists()
    summary = json.loads((s1 / "stage.json").read_text())
    chosen = summary["rounds"][summary["chosen_round"] - 1]
    assert chosen["comparison"]["base"]["n"] == 5
    assert chosen["gate"]["passed"]
    if not chosen["gate"]["configured"]:
        assert chosen["gate"]["needed"] is None and "No gate configured" in (run / "report.md").read_text()
    sft = json.loads((s1 / "round1" / "sft" / "manifest.json").read_text())["result"]
    assert sft["steps"] >= 1
    external = chosen["external"]
    assert (
        external["base"]["external"]["n_prompts"] == 2 and external["trained"]["external"]["n_prompts"] == 2
    )
    assert "trained on external" in (run / "report.md").read_text()
    # content measures (issue 26): every held-out answer measured, relevance scored by the base model
    content = chosen["content"]
    assert content["n"] == 5 and set(content["rates"]) == {"echo", "repetition", "short"}
    assert set(content["values"]) == {"words", "relevance"}
    assert "Content of the answers" in (run / "report.md").read_text()
    dropped = (s1 / "round1" / "pairs" / "dropped.jsonl").read_text()
    pairs_stats = json.loads((s1 / "round1" / "pairs" / "manifest.json").read_text())["stats"]
    assert pairs_stats["candidates"] == pairs_stats["pairs"] + dropped.count('"target":"pair"')


def test_rerun_skips_every_step(finished_run):
    tmp, recipe = finished_run
    before = _manifests(tmp / "run")
    result = CliRunner().invoke(app, ["run", "--recipe", recipe, "--quiet"])
    assert result.exit_code == 0, result.output
    assert _manifests(tmp / "run") == before


def test_changed_config_is_stale_until_forced(finished_run):
    tmp, recipe = finished_run
    header = (tmp / "run" / "config.resolved.yaml").read_bytes()
    res = CliRunner().invoke(
        app, ["run", "--recipe", recipe, "--quiet", "--set", "stages.0.responses.temperature=0.5"]
    )
    assert res.exit_code == 2
    assert "is stale" in res.output
    # The refused run left the finished run's header as it was (resume and report still describe it).
    assert (tmp / "run" / "config.resolved.yaml").read_bytes() == header


def test_failed_gate_exits_3_and_still_reports(tmp_path, tiny_model_dir):
    # Five held-out items can never give a significant McNemar gain, so this gate must fail.
    recipe = _recipe(tmp_path, tiny_model_dir, metric="prompt_strict", require_improvement=True)
    res = CliRunner().invoke(app, ["run", "--recipe", recipe, "--quiet"])
    assert res.exit_code == 3, res.output
    assert "Stage 1 FAILED: achieved" in res.output and "(need " in res.output
    assert (tmp_path / "run" / "report.html").exists()


def test_liger_settings_fail_at_the_start_on_a_cpu(tmp_path, tiny_model_dir):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this checks the CPU message")
    for key in ("model.liger_kernels=true", "stages.0.dpo.liger_kernels=true"):
        recipe = _recipe(tmp_path, tiny_model_dir)
        res = CliRunner().invoke(app, ["run", "--recipe", recipe, "--set", key, "--quiet"])
        assert res.exit_code == 2, res.output
        assert "liger_kernels needs a CUDA GPU" in res.output
        assert not (tmp_path / "run" / "stage1").exists()  # nothing was run before the check


def test_resume_and_status_answer_the_same_from_any_directory(finished_run, tmp_path, monkeypatch):
    """`run --resume DIR` continues exactly DIR (every step skipped, nothing written where the command
    runs) and `status DIR` reads the same, from three directories, even when the saved config names
    the run folder relative to where the run was started (as runs saved before this check did)."""
    from pathlib import Path

    from cai_bootstrap.config import dump, load_recipe

    tmp, recipe = finished_run
    run = tmp / "run"
    saved = load_recipe(Path(recipe))
    saved.run.run_dir = Path("run")  # relative to tmp, where such a run would have been started
    (run / "config.resolved.yaml").write_text(dump(saved))
    before = _manifests(run)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    answers = []
    for cwd in (elsewhere, Path("/"), run / "stage1"):
        monkeypatch.chdir(cwd)
        listing = sorted(p.name for p in cwd.iterdir())
        res = CliRunner().invoke(app, ["run", "--resume", str(run), "--quiet"])
        assert res.exit_code == 0, res.output
        assert _manifests(run) == before
        assert sorted(p.name for p in cwd.iterdir()) == listing  # no ./runs/... started here
        status = CliRunner().invoke(app, ["status", str(run)])
        assert status.exit_code == 0 and "stale" not in status.output, status.output
        answers.append(status.output)
    assert answers[0] == answers[1] == answers[2]
    assert load_recipe(run / "config.resolved.yaml").run.run_dir == run.resolve()
