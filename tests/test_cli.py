"""The CLI's thin commands and its error contract (one line, exit code 2 for user errors)."""

import json

from typer.testing import CliRunner

from cai_bootstrap.cli import app

runner = CliRunner()


def test_missing_recipe_is_exit_2_with_one_line(tmp_path):
    res = runner.invoke(app, ["run", "--recipe", str(tmp_path / "none.yaml")])
    assert res.exit_code == 2
    assert "does not exist" in res.output
    assert len([line for line in res.output.splitlines() if line.strip()]) == 1


def test_unknown_key_is_exit_2(tmp_path):
    res = runner.invoke(app, ["run", "--set", "stages.0.responses.kay=1"])
    assert res.exit_code == 2 and "unknown key 'stages.0.responses.kay'" in res.output


def test_unknown_model_is_exit_2(tmp_path):
    res = runner.invoke(
        app, ["run", "--set", "model.generator=embedded:nope", "--set", f"run.run_dir={tmp_path}"]
    )
    assert res.exit_code == 2 and "unknown embedded model 'nope'" in res.output


def test_models_lists_both_embedded_models():
    res = runner.invoke(app, ["models"])
    assert res.exit_code == 0
    assert "embedded:gemma-3-270m" in res.output and "Gemma Terms of Use" in res.output
    assert "embedded:smollm2-135m-instruct" in res.output


def _ifeval_rows(path):
    rows = [
        {
            "key": 1,
            "prompt": "Write about tea. Do not use any commas.",
            "instruction_id_list": ["punctuation:no_comma"],
            "kwargs": [{}],
        },
        {
            "key": 2,
            "prompt": "Describe rain in lowercase letters only.",
            "instruction_id_list": ["change_case:english_lowercase"],
            "kwargs": [{}],
        },
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows


def test_eval_scores_a_responses_file(tmp_path):
    rows = _ifeval_rows(tmp_path / "in.jsonl")
    answers = [
        {"prompt": rows[0]["prompt"], "response": "Tea is warm and calm."},
        {"prompt": rows[1]["prompt"], "response": "Rain Falls softly."},
    ]
    (tmp_path / "ans.jsonl").write_text("".join(json.dumps(a) + "\n" for a in answers))
    out = tmp_path / "res.json"
    res = runner.invoke(
        app,
        [
            "eval",
            "--ifeval",
            str(tmp_path / "in.jsonl"),
            "--responses",
            str(tmp_path / "ans.jsonl"),
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    result = json.loads(out.read_text())
    assert result["prompt_strict"] == 0.5 and result["instruction_strict"] == 0.5
    # The semantics and scorer version are printed and kept, with each prompt's per-instruction outcomes.
    assert "IFEval reference" in res.output and f"scorer version {result['scorer_version']}" in res.output
    assert [(p["key"], p["strict"], p["loose"]) for p in result["prompts"]] == [
        (1, [True], [True]),
        (2, [False], [False]),
    ]


def test_eval_generates_with_a_model(tmp_path, tiny_model_dir, monkeypatch):
    """With --model and no --out, results and answers go to ./eval-results/, and the output names both."""
    _ifeval_rows(tmp_path / "in.jsonl")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    args = ["eval", "--ifeval", str(tmp_path / "in.jsonl"), "--model", str(tiny_model_dir)]
    res = runner.invoke(
        app, [*args, "--max-new-tokens", "8", "--dtype", "float32", "--skip-nll-canary", "--quiet"]
    )
    assert res.exit_code == 0, res.output
    (results,) = (work / "eval-results").glob(
        f"in.{tiny_model_dir.parent.name}_{tiny_model_dir.name}-*.results.json"
    )
    answers = results.with_name(results.name.replace(".results.json", ".responses.jsonl"))
    assert results.is_file() and answers.is_file()
    assert f"results: {results.relative_to(work)}" in res.output
    assert f"answers: {answers.relative_to(work)}" in res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl", "work"]  # nothing beside the input


def test_eval_writes_answers_beside_out(tmp_path, tiny_model_dir):
    _ifeval_rows(tmp_path / "in.jsonl")
    out = tmp_path / "res" / "run1.json"
    args = ["eval", "--ifeval", str(tmp_path / "in.jsonl"), "--model", str(tiny_model_dir), "--out", str(out)]
    res = runner.invoke(
        app, [*args, "--max-new-tokens", "8", "--dtype", "float32", "--skip-nll-canary", "--quiet"]
    )
    assert res.exit_code == 0, res.output
    rows = [json.loads(x) for x in (tmp_path / "res" / "run1.responses.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and set(rows[0]) == {"prompt", "response"}
    assert json.loads(out.read_text())["n_prompts"] == 2


def test_status_and_report_on_a_missing_run_dir(tmp_path):
    for cmd in ("status", "report"):
        res = runner.invoke(app, [cmd, str(tmp_path / "nope")])
        assert res.exit_code == 2 and "does not exist" in res.output
