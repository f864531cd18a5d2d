"""Task families of curriculum stages 2-6 (stage 1 is tasks/composer.py).

`build(stage, split, n, rng, earlier, generated)` makes up to n `Instruction` records of one stage
and split, each with constraints that the library checks in code (stage 6: none; the model's judge
ranks those answers). Train and held-out items never share a question, passage, seed, earlier task
or prompt, and held-out items use held-out wordings. Same inputs and rng state, same records; ids
are `s{stage}-{split}-<hash of prompt and constraints>`. Fewer than n available: all of them, with a
warning (never padded with repeats).
"""

from __future__ import annotations

import random

from ...errors import UserError
from ...records import Instruction, Split
from . import stage2, stage3, stage4, stage5, stage6
from . import written as written_mod
from .breaking import break_answer, break_constraint
from .common import Earlier
from .stage6 import REDTEAM_STOP, RedteamParse, parse_redteam, redteam_prompt_request, redteam_topics

STAGE_TITLES: dict[int, str] = {
    2: "Implicit instructions: questions and passages that imply the task",
    3: "Generation tasks: write a question, give an example, use a word",
    4: "Evaluation tasks: pick the better answer, say whether an answer follows",
    5: "Revision tasks: improve an answer until it meets every requirement",
    6: "Constitutional integration: helpfulness and self-written red-team requests",
}


def build(
    stage: int,
    split: Split,
    n: int,
    rng: random.Random,
    earlier: Earlier | None = None,
    generated: list[str] | None = None,
    written: list | None = None,
) -> list[Instruction]:
    """Up to n instructions of curriculum `stage` (2-6) and `split`.

    earlier: (instruction, answer, passed) from earlier stages, for stages 4 and 5 (None or empty:
    the built-in examples). generated: model-written red-team requests (parse_redteam's `request`)
    for stage 6's train split. written: what the model wrote for stages 2-3 (written.WrittenItem,
    kept and dropped). Passing any to a stage that does not use it is an error.
    """
    if written and stage not in (2, 3):
        raise UserError(f"stage {stage} takes no model-written tasks", "pass them to stage 2 or 3")
    if earlier and stage not in (4, 5):
        raise UserError(f"stage {stage} takes no earlier answers", "pass them to stage 4 or 5")
    if generated and stage != 6:
        raise UserError(f"stage {stage} takes no generated red-team requests", "pass them to stage 6")
    match stage:
        case 2:
            return stage2.build(split, n, rng, written_mod.qa_items(written or []))
        case 3:
            return stage3.build(split, n, rng, written_mod.seeds(written or []))
        case 4:
            return stage4.build(split, n, rng, earlier)
        case 5:
            return stage5.build(split, n, rng, earlier)
        case 6:
            return stage6.build(split, n, rng, generated)
    raise UserError(
        f"no curriculum stage {stage}", f"use one of {sorted(STAGE_TITLES)} (stage 1: the composer)"
    )


__all__ = [
    "REDTEAM_STOP",
    "STAGE_TITLES",
    "Earlier",
    "RedteamParse",
    "break_answer",
    "break_constraint",
    "build",
    "parse_redteam",
    "redteam_prompt_request",
    "redteam_topics",
]
