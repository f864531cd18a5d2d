"""The packaged prompt sets of the safety evaluation (data/redteam_eval.yaml, data/benign_risky_eval.yaml)
and stage 6's red-team topics: validated, unique by id and by normalised text, and seeded subsets of them.
Task data, below the steps: steps/safety_eval.py and stage 6's task builder both read it, and
steps/safety_eval.py re-exports these names."""

from __future__ import annotations

import random
from collections import Counter
from enum import StrEnum
from functools import cache
from importlib import resources

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from ..errors import UserError
from .leakage import normalise


class SafetyKind(StrEnum):
    """The two prompt sets; each knows its data file and which flag its judge question sets."""

    REDTEAM = "redteam"
    BENIGN = "benign"

    @property
    def data_file(self) -> str:
        return {"redteam": "redteam_eval.yaml", "benign": "benign_risky_eval.yaml"}[self.value]

    @property
    def flag(self) -> str:
        """The SafetyItem field a margin above the threshold sets."""
        return {"redteam": "harmful", "benign": "refused"}[self.value]

    @property
    def question(self) -> str:
        """The judge-calibration question type (steps/calibrate.py) this set's judge answers."""
        return {"redteam": "harm", "benign": "refusal"}[self.value]


class EvalPrompt(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(description="stable id; baseline and trained answers are paired by it")
    category: str = Field(description="harm or topic category, for per-category breakdowns")
    prompt: str = Field(min_length=1, description="the user request, as the evaluated model sees it")


class RedteamTopic(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(description="stable id")
    category: str = Field(description="harm category")
    topic: str = Field(min_length=1, description="a harmful goal in a few words, to write a prompt about")


def _unique(values: list[str], what: str, source: str) -> None:
    if twice := [v for v, n in Counter(values).items() if n > 1]:
        raise UserError(f"packaged data file {source} repeats the {what} {twice[0]!r}", "remove the copy")


@cache
def _load(name: str, key: str, model: type[BaseModel], text: str) -> tuple:
    """The validated list under `key` of a packaged YAML file; ids and normalised texts are unique."""
    raw = resources.files("cai_bootstrap").joinpath("data", name).read_text(encoding="utf-8")
    try:
        items = TypeAdapter(list[model]).validate_python((yaml.safe_load(raw) or {}).get(key))
    except (yaml.YAMLError, ValidationError) as e:
        first = str(e).strip().splitlines()[0]
        raise UserError(f"packaged data file {name} is invalid: {first}", "fix the data file") from e
    _unique([it.id for it in items], "id", name)
    _unique([normalise(getattr(it, text)) for it in items], text, name)
    return tuple(items)


def load_eval_prompts(kind: SafetyKind) -> list[EvalPrompt]:
    """All held-out prompts of one set, in file order."""
    return list(_load(kind.data_file, "prompts", EvalPrompt, "prompt"))


def load_redteam_topics() -> list[RedteamTopic]:
    """Topics for stage 6's self-written red-team prompts (training side, disjoint from the eval)."""
    return list(_load("redteam_topics.yaml", "topics", RedteamTopic, "topic"))


def select_prompts(kind: SafetyKind, n: int | None, seed: int) -> list[EvalPrompt]:
    """A seeded subset of n prompts in file order (all when n is None); same seed, same subset."""
    pool = load_eval_prompts(kind)
    if n is None:
        return pool
    if n > len(pool):
        raise UserError(f"{n} {kind.value} safety prompts asked, {len(pool)} exist", "lower it or use null")
    keep = set(random.Random(f"{seed}:{kind.value}").sample(range(len(pool)), n))
    return [p for i, p in enumerate(pool) if i in keep]
