"""`cai-bootstrap recipe [--keys]`: a recipe as it resolves (defaults filled in), or every key a
recipe may set, with its type, default and description, read from the pydantic models in
config.py (the one place they are documented), so the list cannot drift from what is accepted."""

from __future__ import annotations

import types
import typing
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined


def _model_in(annotation: Any) -> tuple[type[BaseModel] | None, bool]:
    """The settings model a field holds (directly, optionally, or as a list of them) and whether
    it is a list; (None, False) for a plain value."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is list and args:
        inner, _ = _model_in(args[0])
        return inner, inner is not None
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
        return (models[0], False) if len(models) == 1 else (None, False)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    return None, False


def _type_name(annotation: Any) -> str:
    if isinstance(annotation, type) and not typing.get_args(annotation):
        return annotation.__name__
    return str(annotation).replace("typing.", "").replace("pathlib.", "").replace("NoneType", "None")


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        value = field.default_factory()
    elif field.default is PydanticUndefined:
        return "(required)"
    else:
        value = field.default
    if isinstance(value, BaseModel):
        return "(section)"
    return repr(value.value if hasattr(value, "value") and not isinstance(value, str) else value)


def keys(model: type[BaseModel], prefix: str = "") -> Iterator[tuple[str, str, str, str]]:
    """(dotted key, type, default, description) for every field of `model`, sections expanded;
    a list of sections (stages) is shown as `stages.N.` and its fields."""
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        inner, is_list = _model_in(field.annotation)
        if inner is not None:
            description = field.description or (inner.__doc__ or "").strip().split("\n")[0] or inner.__name__
            shown = f"list of {inner.__name__}" if is_list else inner.__name__
            yield key, shown, "(section)" if not is_list else "[...]", description
            yield from keys(inner, f"{key}.N." if is_list else f"{key}.")
        else:
            yield key, _type_name(field.annotation), _default(field), field.description or "(no description)"


def key_lines() -> list[str]:
    """One tab-separated line per recipe key: key, type, default, description."""
    from .config import Recipe

    return ["\t".join(row) for row in keys(Recipe)]
