"""The records and text measures that pair building (pairs.py) and its statistics (pair_stats.py)
share, in a module of their own so that neither imports the other's internals."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Literal

from pydantic import Field

from ..records import Record


class DropReason(StrEnum):
    """Why a candidate pair was dropped, in the order the filters run."""

    EMPTY = "empty"
    IDENTICAL = "identical"
    NEAR_IDENTICAL = "near_identical"
    TIE_NO_JUDGE = "tie_no_judge"
    JUDGE_UNCALIBRATED = "judge_uncalibrated"  # the judge failed calibration (steps/calibrate.py)
    JUDGE_BUDGET = "judge_budget"
    WEAK_MARGIN = "weak_margin"
    LENGTH_RATIO = "length_ratio"
    TRUNCATED_CHOSEN = "truncated_chosen"  # the better answer was cut off at the token limit
    # Content guards (content_guards.py): the chosen answer (or SFT target) does not do the task.
    ECHO = "echo"
    REPETITION = "repetition"
    PLACEHOLDER = "placeholder"
    COPIED_EXEMPLAR = "copied_exemplar"
    NO_CONTENT = "no_content"
    LESS_RELEVANT = "less_relevant"
    PER_INSTRUCTION_CAP = "per_instruction_cap"


class OrderSource(StrEnum):
    """What ordered a pair; a pair's `reason` starts with this word."""

    VERIFIER = "verifier"
    JUDGE = "judge"
    REWARD = "reward"


class DroppedPair(Record):
    instruction_id: str
    a_id: str
    b_id: str
    reason: DropReason
    detail: str = ""
    target: Literal["pair", "sft"] = Field(
        "pair", description="a candidate pair, or an SFT target (a_id; b_id empty) a content guard refused"
    )


_WORD = re.compile(r"\w+")


def normalise(text: str) -> str:
    return " ".join(text.split())


def jaccard(a: str, b: str) -> float:
    """Jaccard similarity of the lower-cased word sets; 1.0 for two empty texts."""
    sa, sb = set(_WORD.findall(a.lower())), set(_WORD.findall(b.lower()))
    return len(sa & sb) / len(sa | sb) if sa | sb else 1.0


def words(text: str) -> int:
    return len(text.split())
