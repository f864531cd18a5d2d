"""Every command, option, recipe, make target and file the README names exists, so the README
cannot drift from the code without a test failing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer

from cai_bootstrap.cli import app
from cai_bootstrap.config import load_recipe

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
CLI = typer.main.get_command(app)
# Files another branch adds (merged by the lead); named here so the exception is explicit.
ELSEWHERE = {"docs/DESIGN.md": "written on branch i24"}


def _invocations() -> list[tuple[str, list[str]]]:
    """(subcommand, options) for every `cai-bootstrap SUB ...` the README shows, in code or text."""
    out = []
    for line in re.findall(r"cai-bootstrap ([a-z-]+(?: [^`\n#]*)?)", README):
        words = line.split()
        if words[0].startswith("-"):
            out.append(("", [w.split("=")[0] for w in words if w.startswith("--")]))
        else:
            out.append(
                (
                    words[0],
                    [
                        re.sub(r"[\]\[,.)]+$", "", w.split("=")[0].lstrip("["))
                        for w in words[1:]
                        if w.lstrip("[").startswith("--")
                    ],
                )
            )
    return out


def _options(command) -> set[str]:
    return {o for p in command.params for o in (*p.opts, *p.secondary_opts)}


@pytest.mark.parametrize(("sub", "options"), _invocations())
def test_every_command_and_option_the_readme_names_exists(sub, options):
    if sub == "":
        assert set(options) <= _options(CLI), options
        return
    assert sub in CLI.commands, f"README names `cai-bootstrap {sub}`, which does not exist"
    known = _options(CLI.commands[sub]) | {"--help"}
    assert set(options) <= known, f"cai-bootstrap {sub}: {sorted(set(options) - known)} unknown"


def test_the_readme_names_the_commands_users_need():
    subs = {s for s, _ in _invocations()}
    assert {"run", "status", "report", "eval", "recipe", "models", "calibrate", "pairs-stats"} <= subs
    assert set(CLI.commands) <= subs, f"not in the README: {sorted(set(CLI.commands) - subs)}"


@pytest.mark.parametrize("recipe", sorted(set(re.findall(r"recipes/[\w.-]+\.yaml", README))))
def test_every_recipe_the_readme_names_exists_and_loads(recipe):
    load_recipe(ROOT / recipe)


@pytest.mark.parametrize(
    "path",
    sorted(
        set(
            re.findall(
                r"`((?:src/cai_bootstrap|benchmarks|configs|tests|docs)/[\w./-]+\.(?:py|yaml|md|sh|j2))`",
                README,
            )
        )
    ),
)
def test_every_file_the_readme_names_exists(path):
    if path in ELSEWHERE and not (ROOT / path).exists():
        pytest.skip(f"{path}: {ELSEWHERE[path]}")
    assert (ROOT / path).exists(), path


def test_every_make_target_the_readme_names_exists():
    targets = set(re.findall(r"^([a-z-]+):", (ROOT / "Makefile").read_text(), re.M))
    named = set(re.findall(r"make ([a-z-]+)", README))
    assert named and named <= targets, sorted(named - targets)


def test_the_headline_gpu_numbers_are_the_rescored_ones_in_results():
    results = (ROOT / "RESULTS.md").read_text(encoding="utf-8")
    for figure in (
        "19.0% [15.8, 22.7]",
        "33.4% [29.4, 37.6]",
        "b = 15, c = 87, p = 2.1e-12",
        "32.6% -> 47.8%",
    ):
        assert figure in README and figure in results, figure


def test_the_readme_says_which_recipes_gate():
    gated = [
        p.name
        for p in sorted((ROOT / "recipes").glob("*.yaml"))
        if any(s.gate.min_success is not None or s.gate.require_improvement for s in load_recipe(p).stages)
    ]
    assert gated == ["qwen2.5-7b-vllm.yaml", "qwen2.5-7b.yaml"]
    named = "Only the two 7B recipes (`recipes/qwen2.5-7b.yaml`, `recipes/qwen2.5-7b-vllm.yaml`) set a gate"
    assert named in " ".join(README.split())
