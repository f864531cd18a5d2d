"""Stage 4, evaluation tasks: "Which answer is better, A or B?" and "Does this answer follow the
request? Answer yes or no.", with ground truth from the constraint checker.

Inputs are earlier (instruction, answer, passed) triples. The checker re-decides `passed` (strict
mode), so the label is the checker's verdict; a disagreement with the given flag is logged. A
passing answer is paired with a failing answer to the same instruction: a real one where the
earlier stage produced one, else the passing answer broken on purpose (breaking.break_answer).
With no earlier answers, the built-in examples (fallback.py) stand in.
"""

from __future__ import annotations

import random
from functools import cache

from ...log import log
from ...records import Instruction, Split
from .breaking import break_answer
from .common import (
    Earlier,
    check_split,
    earlier_split,
    load_data,
    make_instruction,
    passes,
    restate,
    select,
    spec,
    templates,
)
from .fallback import as_earlier

STAGE = 4
# Longer answers make prompts a small model cannot take in; they are left out of evaluation items.
MAX_ANSWER_WORDS = 200


@cache
def _wordings() -> dict[str, dict[Split, tuple[str, ...]]]:
    raw = load_data("stage4.yaml")
    return {kind: templates(raw[kind], f"stage4 {kind}") for kind in ("choice", "yes_no")}


class Answers:
    """The passing and failing answers to one earlier instruction, by the checker's verdict."""

    def __init__(self, inst: Instruction):
        self.inst = inst
        self.good: list[str] = []
        self.bad: list[str] = []

    def add(self, answer: str, given: bool) -> bool:
        """File the answer; returns whether the checker agrees with the given flag."""
        ok = all(passes(c, answer, self.inst.task) for c in self.inst.constraints)
        (self.good if ok else self.bad).append(answer)
        return ok == given


def collect(earlier: Earlier, split: Split) -> list[Answers]:
    """Earlier answers of this split, grouped by instruction; instructions without constraints and
    empty or over-long answers are left out (nothing to check, or too long to show)."""
    by_id: dict[str, Answers] = {}
    disagree = 0
    for inst, answer, given in earlier:
        text = answer.strip()
        if not inst.constraints or not text or len(text.split()) > MAX_ANSWER_WORDS:
            continue
        if earlier_split(inst) != split:
            continue
        group = by_id.setdefault(inst.id, Answers(inst))
        disagree += not group.add(text, given)
    if disagree:
        log.warning("the checker disagrees with %d earlier pass flags; using the checker's verdict", disagree)
    return list(by_id.values())


def pick_pair(group: Answers, rng: random.Random) -> tuple[str, str] | None:
    """A (passing, failing) pair: a real failing answer if any, else a broken passing one."""
    if not group.good:
        return None
    good = rng.choice(group.good)
    bad = rng.choice(group.bad) if group.bad else break_answer(group.inst, good, rng)
    return None if bad is None or bad == good else (good, bad)


def _items(group: Answers, split: Split, rng: random.Random) -> list[Instruction]:
    pair = pick_pair(group, rng)
    if pair is None:
        return []
    good, bad = pair
    request, _ = restate(group.inst, split, rng)
    inst, words = group.inst, _wordings()
    out = []
    # Both orders of the pair: one "A" and one "B" item, so the verdicts are balanced per instruction
    # and a judge that leans to one position cannot score above chance on the pair.
    for label, (a, b) in (("A", (good, bad)), ("B", (bad, good))):
        prompt = rng.choice(words["choice"][split]).format(request=request, a=a, b=b)
        choice = spec("cai:choice", "Name the better answer, A or B.", label=label)
        out.append(make_instruction(STAGE, split, prompt, inst.task, "judge_choice", inst.topic, [choice]))
    for answer, verdict in ((good, "yes"), (bad, "no")):
        prompt = rng.choice(words["yes_no"][split]).format(request=request, answer=answer)
        yes_no = spec("cai:yes_no", "Answer yes or no.", answer=verdict)
        out.append(make_instruction(STAGE, split, prompt, inst.task, "judge_yes_no", inst.topic, [yes_no]))
    rng.shuffle(out)
    return out


def from_earlier(
    stage: int, items, split: Split, n: int, rng: random.Random, earlier: Earlier | None, quiet: bool = False
):
    """Stages 4 and 5: `items(group, split, rng)` per earlier instruction's answers (or the built-in
    examples when none are given), then up to n of them, spread over the groups."""
    check_split(split)
    if not earlier:
        log.info("stage %d: no earlier answers given; using the built-in examples", stage)
        earlier = as_earlier()
    groups = [items(g, split, rng) for g in collect(earlier, split)]
    return select(groups, n, rng, f"stage {stage} {split}", quiet=quiet)


def label_of(inst: Instruction) -> str:
    """The verdict an item asks for: 'A'/'B' (which is better) or 'yes'/'no' (does it follow)."""
    (c,) = inst.constraints
    return c.kwargs.get("label") or c.kwargs["answer"]


def balanced(items: list[Instruction], n: int, rng: random.Random) -> list[Instruction]:
    """Up to n items with equal counts of the four verdicts A, B, yes and no (so a judge that always
    says one thing scores 50% on each kind, and balanced accuracy equals accuracy); the counts are
    those of the scarcest verdict when it has fewer than n / 4."""
    buckets: dict[str, list[Instruction]] = {v: [] for v in ("A", "B", "yes", "no")}
    for inst in items:
        buckets[label_of(inst)].append(inst)
    k = min(n // 4, *(len(b) for b in buckets.values()))
    if k < n // 4:
        have = ", ".join(f"{v}: {len(b)}" for v, b in buckets.items())
        log.warning(
            "stage 4: %d items of each verdict, not %d: the scarcest limits them (%s)", k, n // 4, have
        )
    out = [inst for b in buckets.values() for inst in b[:k]]
    rng.shuffle(out)
    return out


def build(split: Split, n: int, rng: random.Random, earlier: Earlier | None = None) -> list[Instruction]:
    """Up to n evaluation instructions of `split` from earlier answers (or the built-in examples),
    with equal counts of each verdict (`balanced`)."""
    # Every distinct item first (select keeps the spread over earlier instructions), then balanced.
    everything = from_earlier(4, _items, split, 4 * n, rng, earlier, quiet=True)
    return balanced(everything, n, rng)
