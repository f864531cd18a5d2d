"""Stage 2, implicit instructions: a question, or a passage then a question, that implies its task.

The prompt is only the question (or passage + question): nothing says "answer in N words". The
constraints are what the question implies: the answer names an accepted answer (`cai:contains_answer`)
and is short (`cai:max_words`, which also stops an answer from copying the whole passage). Their
texts state them for critique and revision; they are not shown in the prompt. Part of the items
also carry one explicit stage-1 constraint, in a wording of the item's split.
"""

from __future__ import annotations

import random
from functools import cache

from pydantic import BaseModel, ConfigDict, Field

from ...errors import UserError
from ...records import ConstraintSpec, Instruction, Split
from ..constraints.curriculum import contains_answer
from .common import Draft, check_split, load_data, select, spec, split_of, with_extras

STAGE = 2
FACT_MAX_WORDS = 30
PASSAGE_MAX_WORDS = 25
# Explicit constraints that fit a short answer; case types are left out because language detection
# cannot judge a one-word answer, and word counts because the question already bounds the length.
EXTRA_TYPES = (
    "punctuation:no_comma",
    "cai:no_digits",
    "startend:quotation",
    "cai:start_with",
    "startend:end_checker",
)


class QAItem(BaseModel):
    """One implicit question with its accepted answers."""

    model_config = ConfigDict(extra="forbid")
    prompt: str = Field(description="the question, or the passage, a blank line and the question")
    answers: list[str] = Field(min_length=1, description="accepted answers; any one passes")
    kind: str = Field(description="fact_question or passage_question")
    topic: str = Field(description="fact group or passage id: the unit that is split")


def _facts(raw: dict) -> list[QAItem]:
    return [
        QAItem(prompt=e["q"].strip(), answers=[str(a) for a in e["a"]], kind="fact_question", topic=group)
        for group, entries in raw.items()
        for e in entries
    ]


def _passages(raw: list) -> list[QAItem]:
    out = []
    for p in raw:
        text = " ".join(p["text"].split())
        for e in p["questions"]:
            answers = [str(a) for a in e["a"]]
            if not contains_answer(text, answers=answers):
                raise UserError(f"stage-2 passage {p['id']!r}: no answer to {e['q']!r} is in the passage")
            prompt = f"{text}\n\n{e['q'].strip()}"
            out.append(QAItem(prompt=prompt, answers=answers, kind="passage_question", topic=p["id"]))
    return out


@cache
def load_items() -> tuple[QAItem, ...]:
    """All stage-2 items (facts, then passage questions), validated."""
    raw = load_data("stage2.yaml")
    items = _facts(raw["facts"]) + _passages(raw["passages"])
    if len({i.prompt for i in items}) != len(items):
        raise UserError("stage-2 data repeats a question", "remove the copy")
    return tuple(items)


def items(split: Split) -> list[QAItem]:
    """The items of one split; a fact group or a passage is wholly in one split."""
    return [i for i in load_items() if split_of(i.topic, "stage2") == check_split(split)]


def implied(item: QAItem) -> list[ConstraintSpec]:
    """What the question implies: a correct answer, and a short one."""
    limit = FACT_MAX_WORDS if item.kind == "fact_question" else PASSAGE_MAX_WORDS
    return [
        spec("cai:contains_answer", "Answer the question correctly.", answers=item.answers),
        spec("cai:max_words", f"Keep the answer short (at most {limit} words).", max_words=limit),
    ]


def _variants(item: QAItem, split: Split, rng: random.Random) -> list[Instruction]:
    return with_extras(
        STAGE,
        split,
        rng,
        Draft(item.prompt, item.prompt, item.kind, item.topic, implied(item)),
        EXTRA_TYPES,
        item.answers,
    )


def build(split: Split, n: int, rng: random.Random, written: list[QAItem] = ()) -> list[Instruction]:
    """Up to n stage-2 instructions of `split`: each item once before any item's second variant.
    `written`: model-written items (written.py), split by their topic like the packaged ones."""
    extra = [i for i in written if split_of(i.topic, "stage2") == check_split(split)]
    groups = [_variants(item, split, rng) for item in [*items(split), *extra]]
    return select(groups, n, rng, f"stage 2 {split}")
