"""Schemas of the records that steps exchange through the run directory (one JSONL line each).

Every record has a stable `id`. Preference pairs use TRL's columns (prompt, chosen, rejected).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Split = Literal["train", "heldout"]


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str


class ConstraintSpec(BaseModel):
    """One verifiable constraint: an IFEval-style instruction id, its checker kwargs, and its wording."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(description="e.g. 'punctuation:no_comma'")
    kwargs: dict[str, Any] = Field(default_factory=dict)
    text: str = Field(description="the phrase shown to the model")


class BaseTask(Record):
    """A task without constraints ("Describe how bees make honey.")."""

    text: str
    kind: str = Field(description="task kind, e.g. 'explain', 'list', 'story'")
    topic: str
    source: Literal["seed", "self_instruct"] = "seed"


class Instruction(Record):
    stage: int
    split: Split
    prompt: str = Field(description="the full instruction the model sees (task + constraint phrases)")
    task: str
    task_kind: str
    topic: str
    constraints: list[ConstraintSpec] = Field(default_factory=list)
    source: str = "composer"


class Response(Record):
    """One sampled answer to an instruction, with its verifier outcome per constraint."""

    instruction_id: str
    sample: int
    text: str
    passed: list[bool] = Field(default_factory=list, description="one per constraint, strict mode")
    all_passed: bool = False
    origin: Literal["sample", "revision"] = "sample"
    parent_id: str | None = Field(None, description="for a revision: the response it revises")
    principle_id: str | None = None
    truncated: bool = Field(False, description="generation hit max_new_tokens instead of a stop string")


class SFTExample(Record):
    """A prompt/completion record in the exact generation frame; loss on completion only."""

    prompt: str
    completion: str
    instruction_id: str


class PreferencePair(Record):
    """TRL preference columns plus where each side came from and why it was ordered so."""

    prompt: str
    chosen: str
    rejected: str
    instruction_id: str
    chosen_id: str
    rejected_id: str
    reason: str = Field(description="why chosen beats rejected, e.g. 'verifier 2/2 vs 0/2'")
    margin: float | None = None
    chosen_origin: str = "sample"
    rejected_origin: str = "sample"


class EvalItem(Record):
    """One held-out instruction answered greedily by one model, checked in strict and loose mode."""

    model_tag: str
    instruction_id: str
    prompt: str
    response: str
    constraint_ids: list[str]
    passed_strict: list[bool]
    passed_loose: list[bool]
    all_strict: bool
    all_loose: bool
