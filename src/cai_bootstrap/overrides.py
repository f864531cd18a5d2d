"""`--set KEY=VALUE` overrides applied to a recipe's YAML tree before it is validated (config.py's
`load_recipe`): dotted keys, list items by position, values parsed as YAML."""

from __future__ import annotations

import yaml

from . import yamlkeys
from .errors import UserError


def _index(node: list, key: str) -> int:
    """A list position from --set: an existing item, or the next one (stages.1 on a one-stage recipe)."""
    if not key.isdigit():
        raise ValueError(f"'{key}' is not a list position (0, 1, ...)")
    idx = int(key)
    if idx > len(node):
        raise ValueError(f"position {idx} is past the end of a list of {len(node)}; use 0..{len(node)}")
    if idx == len(node):
        node.append({})
    return idx


def _child(node, key: str, next_key: str):
    """The container under `key`, created as a list when the next key is an index (stages.0)."""
    if isinstance(node, list):
        return node[_index(node, key)]
    if not isinstance(node, dict):
        raise ValueError(f"'{key}' is under a value, not a section")
    if key not in node or node[key] is None:
        node[key] = [] if next_key.isdigit() else {}
    return node[key]


def _set_path(tree: dict, dotted: str, value) -> None:
    keys = dotted.split(".")
    if not all(keys):
        raise ValueError("an empty key name")
    node = tree
    for key, next_key in zip(keys[:-1], keys[1:], strict=True):
        node = _child(node, key, next_key)
    last = keys[-1]
    if isinstance(node, list):
        node[_index(node, last)] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise ValueError(f"'{last}' is under a value, not a section")


def apply_overrides(tree: dict, overrides: list[str]) -> dict:
    """`a.b=c` sets tree['a']['b'] to YAML-parsed c; list items by index (stages.0.responses.k=2)."""
    for item in overrides:
        if "=" not in item:
            raise UserError(f"--set '{item}' is not KEY=VALUE", "write e.g. --set stages.0.responses.k=2")
        key, raw = item.split("=", 1)
        try:
            _set_path(tree, key.strip(), yamlkeys.load(raw))
        except (ValueError, IndexError, TypeError) as e:
            raise UserError(
                f"--set '{item}': no such place in the recipe ({e})",
                "write the key path with dots, list positions as numbers, e.g. stages.0.responses.k=2",
            ) from e
        except yaml.YAMLError as e:
            raise UserError(
                f"--set '{item}': the value is not valid YAML", "quote it, e.g. --set 'a.b=\"text\"'"
            ) from e
    return tree
