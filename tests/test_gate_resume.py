"""A health gate that fired, then loosened as its message says: the re-run resumes the stopped step
from its shards (nothing sampled again) and redoes no finished step, because health thresholds are
signature_exempt (health.GATE_EXEMPT). One tiny random model through the CLI, as tests/test_pipeline.py."""

import hashlib
import json

import yaml
from typer.testing import CliRunner

from cai_bootstrap.cli import app
from test_pipeline import _recipe

SENTINEL = "kept from the first attempt"


def _with(recipe: str, **stage) -> str:
    tree = yaml.safe_load(open(recipe))
    for section, values in stage.items():
        tree["stages"][0][section].update(values)
    with open(recipe, "w") as f:
        yaml.safe_dump(tree, f)
    return recipe


def test_loosened_gate_resumes_the_stopped_step(tmp_path, tiny_model_dir):
    # The tiny random model never stops, so every answer runs out of tokens: a 0.5 bar must fire.
    recipe = _with(_recipe(tmp_path, tiny_model_dir), responses={"max_truncated_fraction": 0.5})
    first = CliRunner().invoke(app, ["run", "--recipe", recipe, "--quiet"])
    assert first.exit_code == 1, first.output
    assert "max_truncated_fraction=0.5" in first.output
    rnd = tmp_path / "run" / "stage1" / "round1"
    instructions = (rnd / "instructions" / "manifest.json").read_bytes()
    assert not (rnd / "responses" / "manifest.json").exists()
    # Mark one finished answer in the shards: a resumed step keeps it, a redone one samples it again.
    shard = sorted((rnd / "responses" / "shards").glob("part-*.jsonl"))[0]
    lines = shard.read_text().splitlines()
    # A shard line wraps the record's JSON text with its sha256 (store.py), so the mark is re-hashed.
    marked = json.loads(json.loads(lines[0])["record"]) | {"text": SENTINEL}
    text = json.dumps(marked)
    line = json.dumps({"record": text, "sha256": hashlib.sha256(text.encode()).hexdigest()})
    shard.write_text("\n".join([line, *lines[1:]]) + "\n")

    # Loosened as the message says; a pairs bar no tiny run reaches stops the second run early.
    _with(recipe, responses={"max_truncated_fraction": 1.0}, pairs={"min_pairs": 10_000})
    second = CliRunner().invoke(app, ["run", "--recipe", recipe, "--quiet"])
    assert second.exit_code == 1 and "pairs.min_pairs=10000" in second.output, second.output
    assert (rnd / "instructions" / "manifest.json").read_bytes() == instructions  # not redone
    records = [json.loads(line) for line in (rnd / "responses" / "records.jsonl").read_text().splitlines()]
    assert {r["id"]: r["text"] for r in records}[marked["id"]] == SENTINEL
    assert len(records) == len({r["id"] for r in records})  # nothing repeated
