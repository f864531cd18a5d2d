"""Recipes load; unknown keys, bad types, bad YAML and bad overrides give the documented errors."""

from pathlib import Path

import pytest

from cai_bootstrap.config import load_recipe
from cai_bootstrap.errors import UserError

ROOT = Path(__file__).parent.parent
RECIPES = sorted((ROOT / "recipes").glob("*.yaml")) + sorted((ROOT / "benchmarks" / "recipes").glob("*.yaml"))


def test_recipes_exist():
    assert {p.name for p in RECIPES} >= {"quickstart.yaml", "qwen2.5-7b.yaml"}


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_every_recipe_loads(path):
    recipe = load_recipe(path)
    assert recipe.stages


def test_defaults_without_a_file():
    assert load_recipe(None).model.generator == "embedded:gemma-3-270m"


def test_unknown_key_names_its_path(tmp_path):
    (tmp_path / "r.yaml").write_text("stages:\n  - stage: 1\n    responses:\n      kay: 3\n")
    with pytest.raises(UserError, match=r"unknown key 'stages\.0\.responses\.kay'"):
        load_recipe(tmp_path / "r.yaml")


def test_bad_type_names_its_path():
    with pytest.raises(UserError, match=r"'model\.batch_size'"):
        load_recipe(None, ["model.batch_size=many"])


def test_overrides_apply_in_order():
    r = load_recipe(None, ["stages.0.responses.k=2", "run.name=x", "stages.0.responses.k=3"])
    assert r.stages[0].responses.k == 3 and r.run.name == "x"


def test_malformed_yaml_and_missing_file(tmp_path):
    (tmp_path / "bad.yaml").write_text("run: [unclosed\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_recipe(tmp_path / "bad.yaml")
    with pytest.raises(UserError, match="does not exist"):
        load_recipe(tmp_path / "none.yaml")
    with pytest.raises(UserError, match="KEY=VALUE"):
        load_recipe(None, ["novalue"])
