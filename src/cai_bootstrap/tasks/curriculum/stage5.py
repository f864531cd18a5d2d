"""Stage 5, revision tasks: "Improve the answer so that it meets these requirements", where the answer
is an earlier one that fails some of its instruction's constraints.

The new instruction's constraints are the ones the draft fails (the targets) followed by the ones it
already meets (so a revision must not break them); all are listed in the prompt, worded for the
split (common.reword). An earlier answer that passes everything is first broken on purpose, once
per constraint (breaking.break_constraint), so verified answers serve too. With no earlier answers, the built-in
examples (fallback.py) stand in.
"""

from __future__ import annotations

import random
from functools import cache

from ...records import ConstraintSpec, Instruction, Split
from .breaking import break_constraint
from .common import Earlier, load_data, make_instruction, passes, reword, templates
from .stage4 import Answers, from_earlier

STAGE = 5


@cache
def _wordings() -> dict[Split, tuple[str, ...]]:
    return templates(load_data("stage5.yaml")["revise"], "stage5 revise")


def requirements(inst: Instruction, draft: str, split: Split, rng: random.Random) -> list[ConstraintSpec]:
    """The instruction's constraints, reworded: those `draft` fails first, then those it meets."""
    results = [(c, passes(c, draft, inst.task)) for c in inst.constraints]
    targets = [reword(c, split, rng, inst.task) for c, ok in results if not ok]
    kept = [reword(c, split, rng, inst.task) for c, ok in results if ok]
    return targets + kept if targets else []


def revision_instruction(
    inst: Instruction, draft: str, split: Split, rng: random.Random
) -> Instruction | None:
    """The revision task for one failing draft (None when the draft fails nothing)."""
    specs = requirements(inst, draft, split, rng)
    if not specs:
        return None
    prompt = rng.choice(_wordings()[split]).format(
        requirements=" ".join(c.text for c in specs), request=inst.task or inst.prompt, answer=draft
    )
    return make_instruction(STAGE, split, prompt, inst.task, "revise", inst.topic, specs)


def _drafts(group: Answers, rng: random.Random) -> list[str]:
    """Failing answers as they are, and each passing answer broken once per constraint it can lose."""
    inst = group.inst
    broken = [break_constraint(c, good, rng, inst.task) for good in group.good for c in inst.constraints]
    return group.bad + list(dict.fromkeys(b for b in broken if b is not None))


def _items(group: Answers, split: Split, rng: random.Random) -> list[Instruction]:
    items = [revision_instruction(group.inst, d, split, rng) for d in _drafts(group, rng)]
    return [i for i in items if i is not None]


def build(split: Split, n: int, rng: random.Random, earlier: Earlier | None = None) -> list[Instruction]:
    """Up to n revision instructions of `split` from earlier answers (or the built-in examples)."""
    return from_earlier(5, _items, split, n, rng, earlier)
