"""Reading a recipe file and explaining what is wrong with it: the YAML mapping (every way the file
can be unreadable is one UserError), the `--set` or recipe a failing key came from, and one line per
validation error with the keys allowed there. Moved out of config.py (which holds the settings
models and `load_recipe`) to keep it under 400 lines."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

import yaml
from pydantic import BaseModel, ValidationError

from . import yamlkeys
from .errors import UserError

# Advice for values whose rule a bare validator message does not spell out.
HINTS = {
    "name": "use letters, digits, '.', '_' or '-' (no '/'), e.g. --set run.name=my-run",
    "device": "use auto, cpu, cuda or cuda:N",
    "stages": "give at least one stage, each number once, in increasing order, e.g. stages: [{stage: 1}]",
    "constraint_types": "list constraint ids, or remove the key (null) for the default list",
}


def _fields_at(loc: tuple, root: type[BaseModel]) -> list[str]:
    """The keys allowed where `loc` points (for an unknown-key error), by walking the settings models
    from `root` (the Recipe)."""
    node: type[BaseModel] | None = root
    for part in loc[:-1]:
        if isinstance(part, int) or node is None:
            continue
        field = node.model_fields.get(str(part))
        node = _model_in(field.annotation) if field else None
    return list(node.model_fields) if node else []


def _model_in(annotation) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_in(arg)
        if found:
            return found
    return None


def explain(err: ValidationError, source: str, root: type[BaseModel]) -> UserError:
    """One UserError for the first validation error of a recipe whose settings model is `root`."""
    first = err.errors()[0]
    loc = tuple(first["loc"])
    path = ".".join(str(p) for p in loc) or "(top level)"
    if first["type"] == "extra_forbidden":
        known = _fields_at(loc, root)
        return UserError(
            f"{source}: unknown key '{path}'",
            f"valid keys there: {', '.join(known)}" if known else "remove it or check its spelling",
        )
    if first["type"] == "missing":
        return UserError(f"{source}: '{path}' is required but missing", f"add '{loc[-1]}' to the recipe")
    msg = first["msg"].removeprefix("Value error, ")
    value = first.get("input")
    shown = f" = {value!r}" if isinstance(value, str | int | float | bool) or value in ([], {}) else ""
    name = next((str(p) for p in reversed(loc) if not isinstance(p, int)), "")
    hint = HINTS.get(name, "fix the value in the recipe or with --set")
    return UserError(f"{source}: '{path}'{shown}: {msg}", hint)


def source_of(loc: tuple, recipe: str, overrides: list[str]) -> str:
    """The --set that wrote the failing key (the last one wins, as in apply_overrides), else the recipe."""
    failing = ".".join(str(p) for p in loc)
    for item in reversed(overrides):
        key = item.split("=", 1)[0].strip()
        if failing == key or failing.startswith(key + ".") or key.startswith(failing + "."):
            return f"--set {item}"
    return recipe


def read_recipe(path: Path) -> dict:
    """The recipe file's YAML mapping; every way the file can be unreadable is a UserError."""
    if not path.exists():
        raise UserError(
            f"recipe {path} does not exist", "pass an existing file, e.g. recipes/quickstart.yaml"
        )
    if not path.is_file():
        raise UserError(f"recipe {path} is a folder, not a file", "pass the YAML file inside it")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"recipe {path} is not UTF-8 text (byte {e.start})", "save it as UTF-8 YAML") from e
    except OSError as e:
        raise UserError(f"recipe {path} cannot be read: {e.strerror}", "check its permissions") from e
    try:
        tree = yamlkeys.load(text) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        if isinstance(e, yamlkeys.DuplicateKey):
            raise UserError(f"recipe {path}: {e.problem}{where}", "give each key once") from e
        raise UserError(f"recipe {path} is not valid YAML{where}", "fix the syntax") from e
    if not isinstance(tree, dict):
        raise UserError(f"recipe {path} must be a mapping at the top level", "see recipes/quickstart.yaml")
    return tree
