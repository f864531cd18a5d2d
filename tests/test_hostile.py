"""Hostile input (issue 22) below the command line: YAML duplicate keys, the recipe-wide value rules,
IFEval patterns matched in bounded time, Jinja syntax in a constitution rendered as text."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cai_bootstrap import yamlkeys
from cai_bootstrap.cli import app
from cai_bootstrap.config import Recipe
from cai_bootstrap.errors import UserError
from cai_bootstrap.inputcheck import BadValue, check_values, path_problem
from cai_bootstrap.tasks.constraints import Relation, bounded, content


def test_duplicate_keys_refused_anywhere_merge_keys_allowed():
    with pytest.raises(yamlkeys.DuplicateKey, match="'k' is given twice"):
        yamlkeys.load("a:\n  b: [{k: 1, k: 2}]\n")
    assert yamlkeys.load("d: &x {e: 1, f: 2}\ng: {<<: *x, e: 3}\n")["g"] == {"e": 3, "f": 2}
    with pytest.raises(yamlkeys.yaml.constructor.ConstructorError):
        yamlkeys.load("!!python/object/apply:os.system ['true']")  # a safe loader builds no objects


@pytest.mark.parametrize(
    ("section", "key", "value", "rule"),
    [
        ("responses", "temperature", float("inf"), "finite"),
        ("sft", "learning_rate", float("nan"), "finite"),
        ("sft", "seed", 2**32, "seed"),
        ("judge", "seed", -1, "seed"),
    ],
)
def test_values_walk_every_settings_model(section, key, value, rule):
    recipe = Recipe()
    setattr(getattr(recipe.stages[0], section), key, value)  # no validate_assignment: as if validated
    with pytest.raises(BadValue) as e:
        check_values(recipe)
    assert e.value.loc == ("stages", 0, section, key) and rule in e.value.rule


def test_defaults_and_packaged_recipes_pass():
    check_values(Recipe())
    for path in (Path(__file__).parents[1] / "src/cai_bootstrap/recipes").glob("*.yaml"):
        check_values(Recipe.model_validate(yamlkeys.load(path.read_text())))


def test_path_problems():
    assert path_problem("runs/x") == "" and path_problem("~/x") == ""
    assert "NUL" in path_problem("a\x00b")
    assert "300 bytes" in path_problem("a/" + "é" * 150)
    assert "no user's home" in path_problem("~no-such-user-cai/x")


def test_catastrophic_keyword_stops_in_bounded_time(monkeypatch):
    """`(a|a)+$` against 30 a's and a '!' backtracks for hours under `re`; here it stops with one
    line naming the pattern, within a few times the limit (regex checks its clock now and then)."""
    monkeypatch.setattr(bounded, "TIME_LIMIT_S", 0.2)
    start = time.monotonic()
    with pytest.raises(UserError, match=r"regular expression '\(a\|a\)\+\$' took over 0.2 s"):
        content.keyword_existence("a" * 30 + "!", keywords=["(a|a)+$"])
    assert time.monotonic() - start < 30
    assert content.keyword_frequency(
        "Cat, cat, catalog.", keyword="cat", frequency=3, relation=Relation("at least")
    )


def test_catastrophic_keyword_in_eval_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(bounded, "TIME_LIMIT_S", 0.2)
    row = {"key": 1, "prompt": "p", "instruction_id_list": ["keywords:existence"]}
    (tmp_path / "i.jsonl").write_text(json.dumps({**row, "kwargs": [{"keywords": ["(a|a)+$"]}]}) + "\n")
    (tmp_path / "r.jsonl").write_text(json.dumps({"prompt": "p", "response": "a" * 30 + "!"}) + "\n")
    argv = ["eval", "--ifeval", str(tmp_path / "i.jsonl"), "--responses", str(tmp_path / "r.jsonl")]
    res = CliRunner().invoke(app, [*argv, "--out", str(tmp_path / "out.json")])
    assert res.exit_code == 2, res.output
    assert res.output.strip().count("\n") == 0 and "catastrophic backtracking" in res.output
    assert not (tmp_path / "out.json").exists()


def test_jinja_syntax_in_a_constitution_is_text():
    """A principle's text goes into the prompt as a value: Jinja never reads it as a template, so
    `{{ 7 * 7 }}` or a `{% for %}` loop stay as written and nothing in a constitution executes."""
    from cai_bootstrap.constitution import load_constitution
    from cai_bootstrap.records import ConstraintSpec, Instruction
    from cai_bootstrap.steps.critique import critique_prompt

    hostile = "Check {{ 7 * 7 }} {% for x in range(10**9) %}x{% endfor %} {{ cycler.__init__ }}"
    con = load_constitution(None)
    principle = con.principles[0].model_copy(update={"critique_request": hostile})
    spec = ConstraintSpec(id="punctuation:no_comma", text="Do not use any commas.")
    inst = Instruction(
        id="i", stage=1, split="train", prompt="Say hi.", task="Say hi.", task_kind="explain",
        topic="t", constraints=[spec],
    )  # fmt: skip
    assert hostile in critique_prompt(con, principle, inst, "{{ 6 * 6 }}", shots=0)


def test_a_hostile_key_variable_is_refused_and_no_key_reaches_a_file(tiny_model_dir, tmp_path, monkeypatch):
    """A recipe naming a cloud secret as the key is refused (preflight and engine); an allowed key
    goes as the Bearer token and appears in no file the engine writes (its request cache)."""
    from cai_bootstrap.engines import Sampling, keyenv
    from cai_bootstrap.engines.hf import HFEngine
    from cai_bootstrap.engines.openai import OpenAIEngine, OpenAISettings
    from fake_openai import FakeOpenAI
    from tiny import tiny_canary

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "cloud-secret-123")
    monkeypatch.setenv("MY_SERVER_API_KEY", "server-key-456")
    hf = HFEngine.from_path(tiny_model_dir, batch_size=4, canary=tiny_canary())
    with FakeOpenAI(hf) as server:
        hostile = OpenAISettings(base_url=server.url, api_key_env="AWS_SECRET_ACCESS_KEY")
        with pytest.raises(UserError, match="--allow-key-env AWS_SECRET_ACCESS_KEY"):
            OpenAIEngine(hostile, hf.tok, tmp_path)
        assert server.requests == 0  # refused before the first request
        fine = OpenAISettings(base_url=server.url, api_key_env="MY_SERVER_API_KEY")
        OpenAIEngine(fine, hf.tok, tmp_path).generate(["The sea"], Sampling(n=1, max_new_tokens=3))
    assert "host 127.0.0.1 with the key in $MY_SERVER_API_KEY" in keyenv.destination(
        server.url, fine.api_key_env
    )
    written = [p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()]
    assert written and not any(b"server-key-456" in w or b"cloud-secret-123" in w for w in written)


def test_real_model_folders_pass_the_file_checks(tiny_model_dir, tmp_path):
    """The tiny model (save_pretrained) and a safetensors file written by the safetensors package pass;
    the same file cut by one byte does not."""
    import torch
    from safetensors.torch import save_file

    from cai_bootstrap.modelcheck import check_folder, safetensors_problem

    check_folder(Path(tiny_model_dir), "model.generator")
    save_file({"a": torch.zeros(3, 5), "b": torch.ones(7)}, tmp_path / "w.safetensors")
    assert safetensors_problem(tmp_path / "w.safetensors") == ""
    data = (tmp_path / "w.safetensors").read_bytes()
    (tmp_path / "w.safetensors").write_bytes(data[:-1])
    assert "cut short" in safetensors_problem(tmp_path / "w.safetensors")


def test_an_unexpected_error_in_a_step_is_one_line_naming_it_and_its_log(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from cai_bootstrap import crash
    from cai_bootstrap.errors import StepFailed
    from cai_bootstrap.runner import StepSpec, run_step

    def broken(ctx, st, inputs, models):
        raise KeyError("surprise")

    monkeypatch.setattr(crash, "run_dir", tmp_path)
    ctx = SimpleNamespace(
        stage_dir=tmp_path / "stage1", round=1, run_dir=tmp_path, force=False, remade=set(), cfg=None,
        recipe=Recipe(),
    )  # fmt: skip
    with pytest.raises(StepFailed) as e:
        run_step(StepSpec("broken", broken), ctx, {}, {}, {})
    line = e.value.one_line()
    assert "step stage1/round1/broken failed unexpectedly (KeyError: 'surprise')" in line
    log_file = Path(line.split("the traceback is in ")[1].split(";")[0])
    assert log_file.parent == tmp_path / "logs" and "Traceback" in log_file.read_text()
    assert "raise KeyError" in log_file.read_text()


def test_an_unexpected_error_in_a_command_is_one_line(tmp_path, monkeypatch):
    import cai_bootstrap.pipeline

    def boom(*args, **kwargs):
        raise RuntimeError("a library's surprise\nover two lines")

    monkeypatch.setattr(cai_bootstrap.pipeline, "run", boom)
    model = tmp_path / "m"
    model.mkdir()
    (model / "config.json").write_text('{"model_type": "llama"}')
    run = tmp_path / "run"
    res = CliRunner().invoke(app, ["run", "--set", f"model.generator={model}", "--set", f"run.run_dir={run}"])
    lines = [x for x in res.output.splitlines() if x.strip()]
    assert res.exit_code == 1 and len(lines) == 1 and "Traceback" not in res.output, res.output
    assert lines[0].startswith("error: cai-bootstrap run failed unexpectedly (RuntimeError: a library's")
    assert f"the traceback is in {run}/logs/crash-" in lines[0]


def test_target_modules_are_checked_against_the_tiny_models_weights(tiny_model_dir):
    from cai_bootstrap.modelcheck import module_names, unmatched_target

    modules = module_names(Path(tiny_model_dir))
    assert unmatched_target(["q_proj", "v_proj"], modules) is None
    assert unmatched_target("all-linear", modules) is None
    assert unmatched_target(r".*\.(q|k)_proj", modules) is None
    assert unmatched_target(["q_proj", "qproj"], modules) == "qproj"


def test_a_model_type_transformers_does_not_know_is_one_user_error(tmp_path):
    """A model type that only trust_remote_code could load (none of transformers'): refused as a
    UserError naming the folder, never a traceback and never remote code."""
    from cai_bootstrap.models import load

    (tmp_path / "config.json").write_text('{"model_type": "cai-no-such-type"}')
    with pytest.raises(UserError, match=f"transformers cannot load the model folder {tmp_path}"):
        load(tmp_path)


def test_run_prints_the_host_that_receives_requests(tmp_path, monkeypatch):
    import cai_bootstrap.pipeline

    monkeypatch.setattr(cai_bootstrap.pipeline, "run", lambda *a, **k: [])
    monkeypatch.setenv("CAI_TEST_TOKEN", "t-123")
    model = tmp_path / "m"
    model.mkdir()
    (model / "config.json").write_text('{"model_type": "llama"}')
    sets = [
        f"model.generator={model}",
        f"run.run_dir={tmp_path / 'run'}",
        "model.engine=openai",
        "model.openai.base_url=https://llm.example.org:8443/v1",
        "model.openai.api_key_env=CAI_TEST_TOKEN",
    ]
    res = CliRunner().invoke(app, ["run", "--quiet", *[f"--set={s}" for s in sets]])
    assert res.exit_code == 0, res.output
    assert "openai engine: requests go to host llm.example.org with the key in $CAI_TEST_TOKEN" in res.output
    assert "t-123" not in res.output
