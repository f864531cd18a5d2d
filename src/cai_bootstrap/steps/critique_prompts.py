"""What the critic is shown and how its verdict is read (steps/critique.py runs the rounds).

The critique and revision prompts are few-shot completion prompts (templates/critique.j2,
templates/revision.j2) built from the constitution's examples of the sampled principle; a critique
continuation ends in a verdict line, and a critique without one is UNCLEAR (not revised).
Parsers never raise: they return a flagged result and keep the raw text.
"""

from __future__ import annotations

import re
from enum import StrEnum

from pydantic import BaseModel

from ..constitution import Constitution, Principle
from ..records import Instruction
from ..templates import VERDICT_OK, VERDICT_PROBLEM, render


# ---------------------------------------------------------------- critique parsing
class Verdict(StrEnum):
    PROBLEM = "problem"
    OK = "ok"
    UNCLEAR = "unclear"  # no verdict line: treated as "do not revise"


_VERDICT = re.compile(r"^\s*Verdict:\s*(\w+)", re.MULTILINE)


class ParsedCritique(BaseModel):
    raw: str
    critique: str
    verdict: Verdict


def parse_critique(raw: str) -> ParsedCritique:
    """Split a critique continuation into its text and its verdict (the first verdict line)."""
    m = _VERDICT.search(raw)
    if m is None:
        return ParsedCritique(raw=raw, critique=raw.strip(), verdict=Verdict.UNCLEAR)
    word = m.group(1).upper()
    verdict = {VERDICT_PROBLEM: Verdict.PROBLEM, VERDICT_OK: Verdict.OK}.get(word, Verdict.UNCLEAR)
    return ParsedCritique(raw=raw, critique=raw[: m.start()].strip(), verdict=verdict)


# ---------------------------------------------------------------- prompts
def critique_prompt(
    constitution: Constitution, principle: Principle, instruction: Instruction, answer: str, shots: int
) -> str:
    """The few-shot prompt whose continuation is a critique of `answer` ending in a verdict line."""
    return render(
        "critique",
        shots=constitution.examples(principle, shots, with_revision=False),
        prompt=instruction.prompt,
        response=answer,
        principle=principle,
    )


def revision_prompt(
    constitution: Constitution,
    principle: Principle,
    instruction: Instruction,
    answer: str,
    critique: str,
    shots: int,
) -> str:
    """The few-shot prompt whose continuation is a complete revised answer or KEEP_ORIGINAL."""
    return render(
        "revision",
        shots=constitution.examples(principle, shots, with_revision=True),
        prompt=instruction.prompt,
        response=answer,
        principle=principle,
        critique=critique,
    )
