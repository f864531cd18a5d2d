"""The constitution: principles the model critiques, revises and judges its answers against.

A constitution is a YAML file with a list of principles. Each principle has an id, a category,
a critique request, a revision request, a sampling weight and optional few-shot examples.
`load_constitution(None)` returns the packaged default (`cai_bootstrap/data/constitution.yaml`).
"""

from __future__ import annotations

import random
from enum import StrEnum
from importlib import resources
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from . import yamlkeys
from .errors import UserError
from .store import canonical_hash

DEFAULT_NAME = "constitution.yaml"


class Category(StrEnum):
    HARMLESSNESS = "harmlessness"
    HONESTY = "honesty"
    HELPFULNESS = "helpfulness"
    INSTRUCTION_FOLLOWING = "instruction_following"
    FAIRNESS = "fairness"
    PRIVACY = "privacy"
    AUTONOMY = "autonomy"
    CLARITY = "clarity"


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value.strip()


class Example(BaseModel):
    """A worked few-shot example: an answer, its critique, and its revision.

    `revision: null` means the critique found no problem (verdict OK, the answer is kept).
    """

    model_config = ConfigDict(extra="forbid")
    prompt: str = Field(description="the instruction of the example")
    response: str = Field(description="the answer being critiqued")
    critique: str = Field(description="the critique of the answer under this principle")
    revision: str | None = Field(None, description="the revised answer; null when the answer is fine")

    _check_text = field_validator("prompt", "response", "critique")(_not_blank)

    @field_validator("revision")
    @classmethod
    def _revision_not_blank(cls, value: str | None) -> str | None:
        return None if value is None else _not_blank(value)

    @property
    def has_problem(self) -> bool:
        return self.revision is not None


class Principle(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(description="short stable id, e.g. 'no-fabrication'")
    category: Category = Field(description="which value the principle protects")
    critique_request: str = Field(description="what the critic looks for in an answer")
    revision_request: str = Field(description="how the answer should be rewritten when it falls short")
    # Bounded so that weights always sum to a finite total (random.choices needs one): 1e308 twice
    # is infinite, and a million to one is already "always this principle".
    weight: float = Field(1.0, gt=0, le=1e6, description="relative sampling weight (at most 1e6)")
    examples: list[Example] = Field(default_factory=list, description="optional few-shot examples")

    _check_text = field_validator("id", "critique_request", "revision_request")(_not_blank)


class Constitution(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field("unnamed", description="a name shown in reports")
    principles: list[Principle] = Field(min_length=1, description="the principles, in file order")

    @model_validator(mode="after")
    def _unique_ids(self) -> Constitution:
        seen: set[str] = set()
        for p in self.principles:
            if p.id in seen:
                raise ValueError(f"duplicate principle id '{p.id}'")
            seen.add(p.id)
        return self

    def get(self, principle_id: str) -> Principle:
        for p in self.principles:
            if p.id == principle_id:
                return p
        known = ", ".join(p.id for p in self.principles)
        raise UserError(f"unknown principle id '{principle_id}'", f"use one of: {known}")

    def sample(self, rng: random.Random) -> Principle:
        """One principle drawn with probability proportional to its weight."""
        return rng.choices(self.principles, weights=[p.weight for p in self.principles], k=1)[0]

    def examples(self, first: Principle, n: int, with_revision: bool) -> list[tuple[Principle, Example]]:
        """Up to n few-shot examples: `first`'s own examples, then others' in file order.

        with_revision=True keeps only examples whose critique found a problem (revision prompts).
        """
        order = [first] + [p for p in self.principles if p.id != first.id]
        out = [(p, ex) for p in order for ex in p.examples if ex.has_problem or not with_revision]
        return out[:n]

    def digest(self) -> str:
        """A hash for step signatures: changes whenever any principle changes."""
        return canonical_hash(self.model_dump(mode="json"))


def _describe(error: ValidationError, data: dict) -> str:
    """The first validation problem as 'where: what', with principle ids instead of list indexes."""
    err = error.errors()[0]
    loc = list(err["loc"])
    if len(loc) >= 2 and loc[0] == "principles" and isinstance(loc[1], int):
        principles = data.get("principles") or []
        item = principles[loc[1]] if loc[1] < len(principles) else None
        pid = item.get("id") if isinstance(item, dict) else None
        loc[1] = f"{loc[1]} (id '{pid}')" if pid else loc[1]
    where = ".".join(str(x) for x in loc) or "top level"
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown field"
    return f"{where}: {msg}"


def parse_constitution(text: str, source: str) -> Constitution:
    """Validate YAML text; every problem is a UserError that names `source`."""
    try:
        data = yamlkeys.load(text)
    except yaml.YAMLError as e:
        raise UserError(f"constitution {source} is not valid YAML: {e}", "fix the YAML syntax") from e
    if not isinstance(data, dict):
        raise UserError(f"constitution {source} must be a mapping with a 'principles' list")
    try:
        return Constitution.model_validate(data)
    except ValidationError as e:
        raise UserError(f"constitution {source}: {_describe(e, data)}", "fix the constitution file") from e


def load_constitution(path: Path | None = None) -> Constitution:
    """Load and validate a constitution file; None loads the packaged default."""
    if path is None:
        ref = resources.files("cai_bootstrap").joinpath("data", DEFAULT_NAME)
        return parse_constitution(ref.read_text(encoding="utf-8"), f"(packaged) {DEFAULT_NAME}")
    path = Path(path)
    if not path.is_file():
        raise UserError(f"constitution file {path} does not exist", "give a path to a YAML constitution")
    return parse_constitution(path.read_text(encoding="utf-8"), str(path))
