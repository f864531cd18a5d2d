"""Helpers shared by the curriculum builders: hash splits, stable ids, data files, wording, selection.

Every item pool (questions, passages, seeds, prompts, earlier instructions) is split into train and
held-out by a hash of the item's group key, so a group never appears on both sides and the split never
depends on file order, on the rng or on which other items exist.
"""

from __future__ import annotations

import hashlib
import json
import random
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from ...errors import UserError
from ...log import log
from ...records import ConstraintSpec, Instruction, Split
from ..constraints import check
from ..constraints.compat import ARGUMENT_CLASHES, specs_compatible
from ..leakage import normalise
from ..phrasings import PHRASINGS, sample_constraint

DATA = Path(__file__).parent / "data"
HELDOUT_PERCENT = 20
SPLITS: tuple[Split, Split] = ("train", "heldout")
# Explicit stage-1 constraints added to stage 2-3 items: variants per item beyond the plain one,
# and the share of items whose first-served variant is the plain one.
EXTRA_VARIANTS = 2
PLAIN_FIRST = 0.6
# Draws of the phrasing sampler spent looking for a constraint's own arguments in another wording.
REWORD_TRIES = 300

Earlier = list[tuple[Instruction, str, bool]]


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def split_of(key: str, salt: str, percent: int = HELDOUT_PERCENT) -> Split:
    """The split of a group key: a fixed hash (salted per pool), `percent`% of keys held out."""
    return "heldout" if int(digest(f"{salt}|{key}"), 16) % 100 < percent else "train"


def check_split(split: str) -> Split:
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r}", 'use "train" or "heldout"')
    return split  # type: ignore[return-value]


@cache
def load_data(name: str) -> Any:
    """A curriculum data file (YAML, written for this project), parsed once."""
    path = DATA / name
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise UserError(f"cannot read curriculum data {path}: {e}", "reinstall the package") from e


def templates(entry: dict, where: str) -> dict[Split, tuple[str, ...]]:
    """Train and held-out wordings of one task family; >= 2 each and never shared."""
    out = {s: tuple(entry.get(s) or ()) for s in SPLITS}
    if len(out["train"]) < 2 or len(out["heldout"]) < 2 or set(out["train"]) & set(out["heldout"]):
        raise UserError(f"curriculum data {where}: needs >= 2 train and >= 2 other held-out wordings")
    return out


def spec(type_id: str, text: str, **kwargs: Any) -> ConstraintSpec:
    return ConstraintSpec(id=type_id, kwargs=kwargs, text=text)


def make_instruction(
    stage: int, split: Split, prompt: str, task: str, kind: str, topic: str, constraints: list[ConstraintSpec]
) -> Instruction:
    """An Instruction whose id is `s{stage}-{split}-` plus a hash of its prompt and constraints."""
    content = json.dumps([prompt, [c.model_dump() for c in constraints]], sort_keys=True)
    return Instruction(
        id=f"s{stage}-{split}-{digest(content)[:16]}",
        stage=stage,
        split=split,
        prompt=prompt,
        task=task,
        task_kind=kind,
        topic=topic,
        constraints=constraints,
        source=f"curriculum-stage{stage}",
    )


def fits(extra: ConstraintSpec, base: list[ConstraintSpec], answers: list[str]) -> bool:
    """Whether an explicit constraint goes with the implied ones and with at least one accepted answer
    (no digits is impossible when every answer is a number)."""
    if not all(specs_compatible(extra, c) for c in base):
        return False
    clash = ARGUMENT_CLASHES.get(extra.id)
    return clash is None or any(not clash(extra, a.lower()) for a in answers)


class Draft(NamedTuple):
    """An instruction before its split and explicit constraints are fixed."""

    prompt: str
    task: str
    kind: str
    topic: str
    constraints: list[ConstraintSpec]


def with_extras(
    stage: int,
    split: Split,
    rng: random.Random,
    draft: Draft,
    extra_types: tuple[str, ...],
    answers: list[str],
) -> list[Instruction]:
    """The draft as an instruction, plus up to EXTRA_VARIANTS copies that each add one explicit stage-1
    constraint (worded for `split`) that fits; the plain one is served first PLAIN_FIRST of the time."""
    out = [
        make_instruction(stage, split, draft.prompt, draft.task, draft.kind, draft.topic, draft.constraints)
    ]
    for type_id in rng.sample(extra_types, len(extra_types)):
        if len(out) > EXTRA_VARIANTS:
            break
        extra = sample_constraint(rng, type_id, split, task=draft.task)
        if fits(extra, draft.constraints, answers):
            specs = [*draft.constraints, extra]
            prompt = f"{draft.prompt} {extra.text}"
            out.append(make_instruction(stage, split, prompt, draft.task, draft.kind, draft.topic, specs))
    return out if rng.random() < PLAIN_FIRST else out[1:] + out[:1]


def passes(c: ConstraintSpec, text: str, prompt: str = "") -> bool:
    return check(c.id, c.kwargs, text, prompt=prompt)


def reword(c: ConstraintSpec, split: Split, rng: random.Random, task: str) -> ConstraintSpec:
    """The same constraint (id and arguments) in a wording of `split`, drawn by the phrasing sampler.

    The sampler draws arguments and wording together, so we draw until the arguments match. Rare
    arguments (two task keywords, a start phrase of the caller's own) may not come up in REWORD_TRIES
    draws; the constraint then keeps its original text, a correct statement of it though perhaps in
    the other split's wording.
    """
    if c.id not in PHRASINGS:
        return c
    for _ in range(REWORD_TRIES):
        drawn = sample_constraint(rng, c.id, split, task=task)
        if drawn.kwargs == c.kwargs:
            return drawn
    return c


def restate(inst: Instruction, split: Split, rng: random.Random) -> tuple[str, list[ConstraintSpec]]:
    """An earlier instruction's request and constraints in wordings of `split`.

    A composed instruction (prompt = task + constraint texts) is rebuilt from reworded constraints;
    any other (stage 2's implicit questions) keeps its prompt, whose constraints are not spelt out.
    """
    if inst.prompt != " ".join([inst.task, *(c.text for c in inst.constraints)]):
        return inst.prompt, list(inst.constraints)
    specs = [reword(c, split, rng, inst.task) for c in inst.constraints]
    return " ".join([inst.task, *(c.text for c in specs)]), specs


def earlier_split(inst: Instruction) -> Split:
    """An earlier instruction's split in stages 4 and 5: held-out stays held-out (never trained on);
    a training one goes by a hash of its task, the same in both stages, so one task never serves
    both splits."""
    return "heldout" if inst.split == "heldout" else split_of(inst.task or inst.prompt, "earlier")


def select(
    groups: list[list[Instruction]], n: int, rng: random.Random, what: str, quiet: bool = False
) -> list[Instruction]:
    """Up to n instructions, round-robin over the groups in an rng order: every group gives its first
    variant before any gives a second. Repeated prompts are skipped; fewer than n is logged (unless
    `quiet`: the caller picks from the result and logs its own shortfall)."""
    if n < 0:
        raise UserError(f"cannot build {n} instructions", "give n >= 0")
    queues = [list(g) for g in groups if g]
    rng.shuffle(queues)
    out: list[Instruction] = []
    seen: set[str] = set()
    while len(out) < n and queues:
        for queue in queues:
            inst = queue.pop(0)
            if normalise(inst.prompt) not in seen and len(out) < n:
                seen.add(normalise(inst.prompt))
                out.append(inst)
        queues = [q for q in queues if q]
    if len(out) < n and not quiet:
        log.warning("%s: only %d distinct instructions available of %d asked for", what, len(out), n)
    return out
