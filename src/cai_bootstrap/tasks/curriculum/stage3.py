"""Stage 3, generation tasks: write a question about X, give an example of Y, use the word Z.

Each family knows which constraints its task implies (a question ends with '?' and mentions X; an
example is one of the accepted ones; a sentence is one sentence with the word in it); these are
checked in code, and part of the items add one explicit stage-1 constraint.
"""

from __future__ import annotations

import random
from enum import StrEnum
from functools import cache

from pydantic import BaseModel, ConfigDict, Field

from ...errors import UserError
from ...records import ConstraintSpec, Instruction, Split
from .common import Draft, check_split, load_data, select, spec, split_of, templates, with_extras

STAGE = 3
MAX_WORDS = 40
EXTRA_TYPES = ("punctuation:no_comma", "cai:no_digits", "startend:quotation", "keywords:existence")


def plurals(word: str) -> list[str]:
    """A word and its regular plurals ('fly' -> flies, 'tomato' -> tomatoes), so 'apples' counts."""
    out = [word, f"{word}s", f"{word}es"]
    if word.endswith("y") and word[-2:-1] not in "aeiou":
        out.append(f"{word[:-1]}ies")
    return out


class Family(StrEnum):
    """A generation task family; each knows the constraints its task implies."""

    QUESTION = "question"
    EXAMPLE = "example"
    SENTENCE = "sentence"

    def constraints(self, seed: Seed) -> list[ConstraintSpec]:
        short = spec("cai:max_words", f"Keep it under {MAX_WORDS} words.", max_words=MAX_WORDS)
        match self:
            case Family.QUESTION:
                return [
                    spec("cai:contains_answer", f"Mention {seed.x}.", answers=seed.forms),
                    spec("cai:end_with_question", "End with a question mark."),
                    spec("cai:single_paragraph", "Write one paragraph."),
                    short,
                ]
            case Family.EXAMPLE:
                forms = [p for f in seed.forms for p in plurals(f)]
                return [spec("cai:contains_answer", "Name a correct example.", answers=forms), short]
            case Family.SENTENCE:
                return [
                    spec("cai:contains_answer", f'Use the word "{seed.x}".', answers=seed.forms),
                    spec(
                        "length_constraints:number_sentences",
                        "Write only one sentence.",
                        num_sentences=2,
                        relation="less than",
                    ),
                    short,
                ]


class Seed(BaseModel):
    model_config = ConfigDict(extra="forbid")
    x: str = Field(description="the subject, category or word the task names")
    forms: list[str] = Field(min_length=1, description="words that show the task was done")


class FamilyData(BaseModel):
    model_config = ConfigDict(extra="forbid")
    family: Family
    wordings: dict[str, tuple[str, ...]] = Field(description="train and held-out task templates ({x})")
    seeds: list[Seed]


@cache
def load_families() -> tuple[FamilyData, ...]:
    raw = load_data("stage3.yaml")
    out = []
    for family in Family:
        entry = raw[family.value]
        data = FamilyData(family=family, wordings=templates(entry, f"stage3 {family}"), seeds=entry["seeds"])
        if len({s.x for s in data.seeds}) != len(data.seeds):
            raise UserError(f"stage-3 data repeats a {family} seed", "remove the copy")
        out.append(data)
    return tuple(out)


def seeds(split: Split) -> list[tuple[Family, Seed]]:
    """The seeds of one split; a seed is wholly in one split (hash of family and subject)."""
    check_split(split)
    return [
        (f.family, s)
        for f in load_families()
        for s in f.seeds
        if split_of(f"{f.family}|{s.x}", "stage3") == split
    ]


def _variants(data: FamilyData, seed: Seed, split: Split, rng: random.Random) -> list[Instruction]:
    """Every wording of the split for one seed; each may add an explicit constraint."""
    out = []
    for wording in rng.sample(data.wordings[split], len(data.wordings[split])):
        task = wording.format(x=seed.x)
        draft = Draft(task, task, f"write_{data.family}", seed.x, data.family.constraints(seed))
        out.extend(with_extras(STAGE, split, rng, draft, EXTRA_TYPES, draft.constraints[0].kwargs["answers"]))
    return out


def build(
    split: Split, n: int, rng: random.Random, written: list[tuple[Family, Seed]] = ()
) -> list[Instruction]:
    """Up to n stage-3 instructions of `split`: each seed once before any seed's second variant.
    `written`: model-written seeds (written.py), split by their subject alone (a word is in one split
    for every family); one that names a packaged subject is left out."""
    by_family = {f.family: f for f in load_families()}
    chosen = seeds(split)
    packaged = {s.x.lower() for f in load_families() for s in f.seeds}
    chosen += [
        (f, s)
        for f, s in written
        if split_of(f"written|{s.x.lower()}", "stage3") == split and s.x.lower() not in packaged
    ]
    groups = [_variants(by_family[family], seed, split, rng) for family, seed in chosen]
    return select(groups, n, rng, f"stage 3 {split}")
