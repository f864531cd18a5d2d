"""The package's import layering, read from the source with `ast` (nothing is imported):

- no import circle among cai_bootstrap modules, counting every import statement wherever it sits
  (module level, inside functions, under `if TYPE_CHECKING:`), because a function-level import that
  closes a circle is the same tangle, only postponed;
- `tasks/` (instruction sources, constraints, task data) never imports `steps/`;
- `engines/` and `training/` never import the step runner, a stage module or a step, and no floor
  below the orchestration imports it or a command;
- no source file over 400 lines.

An edge goes to the module named (`from .a import b` names `a.b` when that is a module, else `a`);
a package's `__init__` run on the way is not counted as an edge, as Python initialises a parent
package before its child without circularity."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).parents[1] / "src"
PKG = SRC / "cai_bootstrap"


def _name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_name(p): p for p in sorted(PKG.rglob("*.py"))}


def _target(module: str, is_package: bool, node: ast.ImportFrom) -> str | None:
    if not node.level:
        return node.module
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(module: str) -> set[str]:
    """The cai_bootstrap modules that `module` imports anywhere in its body."""
    path = MODULES[module]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            target = _target(module, path.name == "__init__.py", node)
            for a in node.names if target else ():
                out.add(f"{target}.{a.name}" if f"{target}.{a.name}" in MODULES else target)
    return {m for m in out if m in MODULES and m != module}


GRAPH = {m: imports_of(m) for m in MODULES}


def find_circle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as [a, b, ..., a], or None: depth-first search with an explicit stack
    (white/grey/black colouring), so a deep chain cannot hit the recursion limit."""
    colour = dict.fromkeys(graph, 0)
    for start in sorted(graph):
        if colour[start]:
            continue
        path, stack = [start], [iter(sorted(graph[start]))]
        colour[start] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                colour[path.pop()] = 2
                stack.pop()
            elif colour[nxt] == 1:
                return path[path.index(nxt) :] + [nxt]
            elif colour[nxt] == 0:
                colour[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph[nxt])))
    return None


def test_the_graph_is_read():
    """The reader sees relative, absolute, package and function-level imports."""
    assert "cai_bootstrap.store" in GRAPH["cai_bootstrap.runner"]
    assert (
        "cai_bootstrap.steps.calibrate" in GRAPH["cai_bootstrap.stage_calibration"]
    )  # from .steps import calibrate
    assert "cai_bootstrap.models" in GRAPH["cai_bootstrap.engines.hf"]  # imported inside a function
    assert "cai_bootstrap.tasks.leakage" in GRAPH["cai_bootstrap.tasks.curriculum.stage6"]  # from ..leakage


def test_find_circle_finds_one():
    assert find_circle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_circle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_no_import_circle():
    circle = find_circle(GRAPH)
    assert circle is None, "import circle: " + " -> ".join(circle or [])


# The orchestration and the commands sit above every step; `report/` is left out because
# steps/gate.py still takes GateOutcome from report/model.py (docs/DESIGN.md, "Direction").
ABOVE_STEPS = (
    "cai_bootstrap.config", "cai_bootstrap.overrides", "cai_bootstrap.runner", "cai_bootstrap.stage",
    "cai_bootstrap.pipeline", "cai_bootstrap.results", "cai_bootstrap.cli", "cai_bootstrap.preflight",
    "cai_bootstrap.statuscmd", "cai_bootstrap.evalcmd", "cai_bootstrap.demo",
)  # fmt: skip
STEPS, TASKS, TRAINING = "cai_bootstrap.steps", "cai_bootstrap.tasks", "cai_bootstrap.training"


@pytest.mark.parametrize(
    ("low", "high"),
    [
        ("cai_bootstrap.steps", ABOVE_STEPS),
        ("cai_bootstrap.tasks", (*ABOVE_STEPS, STEPS, TRAINING)),
        ("cai_bootstrap.training", (*ABOVE_STEPS, STEPS, TASKS)),
        ("cai_bootstrap.engines", (*ABOVE_STEPS, STEPS, TASKS, TRAINING)),
    ],
)
def test_lower_floors_do_not_import_higher_ones(low, high):
    wrong = [
        f"{m} -> {t}"
        for m, targets in GRAPH.items()
        if m == low or m.startswith(low + ".")
        for t in targets
        if any(t == h or t.startswith(h + ".") or t.startswith(h + "_") for h in high)
    ]
    assert not wrong, wrong


MAX_LINES = 400  # STYLE.md 13: modules under ~400 lines; split a longer one by concern


def test_no_source_file_over_400_lines():
    lines = {
        str(p.relative_to(SRC)): len(p.read_text(encoding="utf-8").splitlines()) for p in MODULES.values()
    }
    long = {path: n for path, n in lines.items() if n > MAX_LINES}
    assert not long, f"split these by concern (at most {MAX_LINES} lines each): {long}"
