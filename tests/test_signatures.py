"""Signatures cannot go stale silently: every stage setting that is not declared exempt, and every
packaged resource, makes exactly the steps that read it stale (as `status` sees it).

A fake finished run (every planned step's manifest written by the real runner's signature code, no
model) is enough: staleness is decided from the settings, resources and inputs alone."""

from __future__ import annotations

import enum
import shutil
import typing
from dataclasses import replace
from pathlib import Path

import pytest
from pydantic import BaseModel

from cai_bootstrap import runner, statuscmd
from cai_bootstrap.config import Recipe, StageSettings, dump
from cai_bootstrap.constitution import load_constitution
from cai_bootstrap.runner import Step, result_digest, signature_parts
from cai_bootstrap.stage import NOT_IN_STEPS, plan
from cai_bootstrap.stage_calibration import CALIBRATION_IGNORES, calibration_key
from cai_bootstrap.stage_context import StageContext
from cai_bootstrap.steps.calibrate import Question
from cai_bootstrap.store import canonical_hash


def _finish(spec, ctx, digests: dict) -> None:
    folder = spec.folder(ctx.stage_dir, ctx.round)
    parts = signature_parts(spec, ctx, {k: digests[k] for k in spec.reads}, dict.fromkeys(spec.models, "m"))
    folder.mkdir(parents=True)
    (folder / "records.jsonl").write_text(f"{spec.name}\n")
    manifest = Step(folder, signature=canonical_hash(parts)).finish(None, {}, {"parts": parts})
    digests[spec.name] = result_digest(spec, manifest)


def fake_run(run_dir: Path, recipe: Recipe) -> None:
    """Every planned step of round 1 finished, as the runner would have written it."""
    run_dir.mkdir(parents=True)
    (run_dir / "config.resolved.yaml").write_text(dump(recipe))
    packaged = Path(__file__).parents[1] / "src/cai_bootstrap/data/constitution.yaml"
    (run_dir / "constitution.yaml").write_text(packaged.read_text())
    for ctx in statuscmd._context(run_dir):
        baseline, rnd = plan(ctx)
        digests: dict = {}
        for spec in baseline:
            _finish(spec, ctx, digests)
        for spec in rnd:
            _finish(spec, replace(ctx, round=1), digests)


def not_done(run_dir: Path) -> set[str]:
    return {r["step"] for r in statuscmd.step_rows(run_dir) if r["state"] != "done"}


def _all_steps():
    ctx = StageContext(Recipe(), StageSettings(), Path("/r"), None, None, False, Path("/m"))
    baseline, rnd = plan(ctx)
    return [(s, f"stage1/{s.name}") for s in baseline] + [(s, f"stage1/round1/{s.name}") for s in rnd]


# ---------------------------------------------------------------- every settings field
def _leaves(model: type[BaseModel], prefix: str = ""):
    for name, f in model.model_fields.items():
        sub = f.annotation
        if isinstance(sub, type) and issubclass(sub, BaseModel):
            yield from _leaves(sub, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", model, f


def _choices(annotation) -> list:
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return [m.value for m in annotation]
    out = list(typing.get_args(annotation)) if typing.get_origin(annotation) is typing.Literal else []
    for arg in typing.get_args(annotation):
        out += _choices(arg)
    return out


def _candidates(value, field) -> list:
    choices = [c for c in _choices(field.annotation) if c != value]
    if isinstance(value, bool):
        return [not value]
    if isinstance(value, int):
        return [value + 1, value - 1, value * 2]
    if isinstance(value, float):
        return [value / 2 if value else 0.01, value * 1.5 + 0.01]
    if isinstance(value, dict):  # trl_args / peft_args: any added name changes the signature
        return [{**value, "added_by_test": 1}]
    if isinstance(value, list):
        return [value[:-1], [*value, value[0]] if value else ["punctuation:no_comma"]]
    if isinstance(value, str):
        return [*choices, value + "x"]
    return [*choices, 1, 0.5, ["punctuation:no_comma"], "x", True]


def _set(tree: dict, path: str, value) -> dict:
    node = tree
    *parents, last = path.split(".")
    for key in parents:
        node = node[key]
    node[last] = value
    return tree


def mutated(path: str, field) -> StageSettings:
    """A valid StageSettings that differs from the default in `path` only."""
    node = StageSettings().model_dump(mode="json")
    for key in path.split("."):
        node = node[key]
    for value in _candidates(node, field):
        try:
            cfg = StageSettings.model_validate(_set(StageSettings().model_dump(mode="json"), path, value))
        except ValueError:
            continue
        if cfg != StageSettings():
            return cfg
    raise AssertionError(f"no valid change found for {path}")


FIELDS = [(p, owner, f) for p, owner, f in _leaves(StageSettings)]


def _exempt(path: str, owner) -> bool:
    return path.rsplit(".", 1)[-1] in getattr(owner, "signature_exempt", {})


def _pipeline_only(path: str) -> bool:
    return any(path == k or path.startswith(k + ".") for k in NOT_IN_STEPS)


def readers(path: str) -> set[str]:
    """The steps whose declaration names `path`'s section and does not ignore the field."""
    out = set()
    for spec, folder in _all_steps():
        reads = any(path == s or path.startswith(s + ".") for s in spec.settings)
        ignored = any(path == i or path.startswith(i + ".") for i in spec.ignores)
        if reads and not ignored:
            out.add(folder)
    return out


def test_every_field_is_read_exempt_or_pipeline_only():
    """No setting can fall through: each is in some step's signature or declared out, with a reason."""
    for path, owner, _ in FIELDS:
        assert readers(path) or _exempt(path, owner) or _pipeline_only(path), path
    assert all(NOT_IN_STEPS.values())
    for spec, _ in _all_steps():
        assert all(spec.ignores.values()), spec.name  # every ignored field says why


@pytest.mark.parametrize("path", [p for p, _, _ in FIELDS if not _pipeline_only(p)])
def test_changing_a_field_makes_exactly_its_readers_stale(tmp_path, path):
    owner, field = next((o, f) for p, o, f in FIELDS if p == path)
    recipe = Recipe(run={"name": "sig"})
    fake_run(tmp_path / "run", recipe)
    assert not_done(tmp_path / "run") == set()
    changed = recipe.model_copy(update={"stages": [mutated(path, field)]})
    (tmp_path / "run" / "config.resolved.yaml").write_text(dump(changed))
    expected = set() if _exempt(path, owner) else readers(path)
    assert not_done(tmp_path / "run") == expected
    if path.endswith("enabled"):
        assert expected  # switching a step on or off is never ignored


# ---------------------------------------------------------------- packaged resources
RESOURCES = sorted({r for spec, _ in _all_steps() for r in spec.resources})


@pytest.mark.parametrize("resource", RESOURCES)
def test_editing_a_resource_makes_exactly_its_readers_stale(tmp_path, monkeypatch, resource):
    pkg = tmp_path / "pkg"
    shutil.copytree(runner.package_root(), pkg, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    monkeypatch.setattr(runner, "package_root", lambda: pkg)
    fake_run(tmp_path / "run", Recipe())
    target = pkg / resource
    if target.is_dir():
        target = sorted(p for p in target.rglob("*") if p.is_file())[0]
    target.write_bytes(target.read_bytes() + b"\n# edited\n")
    runner._resource_hash.cache_clear()
    expected = {folder for spec, folder in _all_steps() if resource in spec.resources}
    assert expected and not_done(tmp_path / "run") == expected


def test_status_agrees_from_any_working_directory(tmp_path, monkeypatch):
    fake_run(tmp_path / "run", Recipe())
    (tmp_path / "run" / "stage1" / "round1" / "pairs" / "records.jsonl").write_text("changed\n")
    answers = []
    for cwd in (tmp_path, Path("/"), tmp_path / "run" / "stage1"):
        monkeypatch.chdir(cwd)
        answers.append(statuscmd.step_rows(tmp_path / "run"))
    assert answers[0] == answers[1] == answers[2]
    states = {r["step"]: r["state"] for r in answers[0]}
    assert states["stage1/round1/pairs"] == "damaged" and states["stage1/round1/sft"] == "done"
    assert len(states) == len(_all_steps())  # every planned step is listed


# ---------------------------------------------------------------- health gates
# The six thresholds whose gate message tells the user to loosen them: loosening one re-runs nothing.
HEALTH_GATES = {
    "responses.max_truncated_fraction": 1.0,
    "responses.max_same_answer_fraction": 1.0,
    "pairs.min_pairs": 0,
    "sft.min_examples": 0,
    "critique.stop_if_all_rejected": False,
    "instructions.self_instruct.min_accepted": 0,
}


@pytest.mark.parametrize(("path", "loose"), HEALTH_GATES.items())
def test_loosening_a_health_gate_reruns_no_step(tmp_path, path, loose):
    owner = next(o for p, o, _ in FIELDS if p == path)
    assert "health gate" in owner.signature_exempt[path.rsplit(".", 1)[-1]]
    recipe = Recipe(run={"name": "sig"})
    fake_run(tmp_path / "run", recipe)
    loosened = StageSettings.model_validate(_set(StageSettings().model_dump(mode="json"), path, loose))
    assert loosened != StageSettings()
    (tmp_path / "run" / "config.resolved.yaml").write_text(
        dump(recipe.model_copy(update={"stages": [loosened]}))
    )
    assert not_done(tmp_path / "run") == set()
    # `done` means every step's signature is unchanged, so a step its gate stopped keeps its signature
    # too: the re-run resumes it (runner._prepare keeps the shards of a failed step begun under the
    # same signature) instead of sampling again.


# ---------------------------------------------------------------- judge calibration key
def _calibration_key(tmp_path: Path, cfg: StageSettings) -> str:
    judge = tmp_path / "judge"
    judge.mkdir(exist_ok=True)
    (judge / "config.json").write_text("{}")
    ctx = StageContext(Recipe(), cfg, tmp_path, load_constitution(None), None, False, judge)
    return canonical_hash(calibration_key(ctx, list(Question)))


CALIBRATION_FIELDS = [p for p, _, _ in FIELDS if p.startswith(("judge.", "eval.safety."))]


@pytest.mark.parametrize("path", CALIBRATION_FIELDS)
def test_changing_a_judge_or_safety_field_recalibrates_unless_ignored(tmp_path, path):
    """The calibration cache key (stage_calibration.py) follows the runner's rule: every field of
    the judge and safety sections is in it unless declared ignored, with the reason."""
    owner, field = next((o, f) for p, o, f in FIELDS if p == path)
    changed = _calibration_key(tmp_path, mutated(path, field)) != _calibration_key(tmp_path, StageSettings())
    ignored = path in CALIBRATION_IGNORES or _exempt(path, owner)
    assert changed != ignored, path


def test_calibration_ignores_name_real_fields_and_say_why():
    assert set(CALIBRATION_IGNORES) <= set(CALIBRATION_FIELDS)
    assert all(CALIBRATION_IGNORES.values())
