"""The CLI explains itself: --version, `recipe --keys`, eval intervals and output names, the cache
folder, and --help on every benchmark script."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cai_bootstrap import __version__
from cai_bootstrap.cli import app
from cai_bootstrap.config import Recipe
from cai_bootstrap.models import cache_dir
from cai_bootstrap.recipecmd import keys

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]


def test_version():
    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0 and res.output.strip() == f"cai-bootstrap {__version__}"


def test_recipe_keys_lists_every_field_with_type_default_and_description():
    res = runner.invoke(app, ["recipe", "--keys"])
    assert res.exit_code == 0, res.output
    lines = {line.split("\t")[0]: line.split("\t")[1:] for line in res.output.splitlines()}
    assert lines["run.seed"] == ["int", "0", "seeds every sampling, split and training step"]
    assert lines["stages.N.responses.k"][:2] == ["int", "4"]
    assert lines["stages.N.gate.min_success"][1] == "None"
    # every leaf of every settings model is listed, and every one is documented
    leaves = [k for k in keys(Recipe) if k[2] not in ("(section)", "[...]")]
    assert len(leaves) > 150 and all(k[0] in lines for k in leaves)
    undocumented = [k[0] for k in leaves if k[3] == "(no description)"]
    assert undocumented == [], undocumented


def test_recipe_prints_the_resolved_quickstart():
    res = runner.invoke(app, ["recipe", "--set", "run.seed=7"])
    assert res.exit_code == 0, res.output
    assert "seed: 7" in res.output and "stages:" in res.output


def _rows(path: Path) -> list[dict]:
    rows = [
        {"key": 1, "prompt": "Write about tea. Do not use any commas.", "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]},
        {"key": 2, "prompt": "Say hi. Use '#' at least twice.", "instruction_id_list": ["keywords:letter_frequency"], "kwargs": [{"letter": "#", "let_frequency": 2, "let_relation": "at least"}]},
    ]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows


def test_eval_prints_intervals_and_names_outputs_apart(tmp_path, monkeypatch):
    """Two answer files of the same name (two merged models' folders are both `model`) get two
    results files; the table has Wilson intervals; a non-letter letter is scored, not refused."""
    rows = _rows(tmp_path / "in.jsonl")
    monkeypatch.chdir(tmp_path)
    written = []
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        answers = [
            {"prompt": rows[0]["prompt"], "response": "Tea, warm."},
            {"prompt": rows[1]["prompt"], "response": "hi"},
        ]
        (tmp_path / folder / "answers.jsonl").write_text("".join(json.dumps(a) + "\n" for a in answers))
        args = ["eval", "--ifeval", "in.jsonl", "--responses", f"{folder}/answers.jsonl"]
        res = runner.invoke(app, args, terminal_width=200)
        assert res.exit_code == 0, res.output
        assert "[0.0%, 65.8%]" in res.output  # prompt_strict 0 of 2, Wilson 95%
        assert "key 2: letter '#' scored as" in res.output
        written.append(res.output.split("results: ")[1].strip())
    assert written[0] != written[1] and all((tmp_path / w).is_file() for w in written)


def test_cache_defaults_to_the_user_cache_folder(monkeypatch, tmp_path):
    monkeypatch.delenv("CAI_BOOTSTRAP_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path / ".." if (tmp_path / "..").exists() else tmp_path)
    assert cache_dir() == (tmp_path / ".cache" / "cai-bootstrap").resolve()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == (tmp_path / "xdg" / "cai-bootstrap").resolve()
    monkeypatch.setenv("CAI_BOOTSTRAP_CACHE", str(tmp_path / "mine"))
    assert cache_dir() == (tmp_path / "mine").resolve()


@pytest.mark.parametrize(
    "script", sorted(p.name for p in (ROOT / "benchmarks").glob("*.py") if "__main__" in p.read_text())
)
def test_every_benchmark_script_has_help(script):
    path = ROOT / "benchmarks" / script
    helped = subprocess.run(
        [sys.executable, str(path), "--help"], capture_output=True, text=True, timeout=300
    )
    assert helped.returncode == 0 and "usage" in helped.stdout.lower(), helped.stderr[-2000:]


@pytest.mark.parametrize("script", ["compare_runs.py", "results_table.py"])
def test_scripts_taking_folders_explain_themselves_without_arguments(script, tmp_path):
    """(The others run a benchmark when given no arguments; these two need folders.)"""
    path = str(ROOT / "benchmarks" / script)
    for args in (
        [],
        [str(tmp_path / "missing"), str(tmp_path / "missing")][: 2 if "compare" in script else 1],
    ):
        res = subprocess.run([sys.executable, path, *args], capture_output=True, text=True, timeout=300)
        assert res.returncode == 2 and "usage:" in res.stderr and "Traceback" not in res.stderr, res.stderr
