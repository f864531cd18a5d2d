"""Compose stage-1 instructions: a base task from the bank plus 1-3 compatible verifiable constraints.

The bank (data/base_tasks.yaml) is split deterministically into train and held-out tasks by a hash of
each task's (topic, kind), so no topic-kind combination is in both splits; held-out instructions
also use only held-out wordings (phrasings.py). Together these make the held-out evaluation test
generalisation to unseen tasks and unseen wordings, never recall.
"""

from __future__ import annotations

import hashlib
import json
import random
from functools import lru_cache
from pathlib import Path

import yaml

from ..errors import UserError
from ..records import BaseTask, ConstraintSpec, Instruction, Split
from .constraints.compat import specs_compatible, types_compatible
from .phrasings import PHRASINGS, sample_constraint

TASKS_FILE = Path(__file__).parent / "data" / "base_tasks.yaml"
TASK_KINDS = frozenset(
    {"explain", "list", "describe", "story", "advice", "compare", "definition", "letter", "poem", "howto"}
)
HELDOUT_PERCENT = 20
# Each requested instruction gets this many draws before the composer gives up on distinct ones.
ATTEMPTS_PER_ITEM = 50


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def task_split(topic: str, kind: str) -> Split:
    """The split of a (topic, kind) combination: a fixed hash, so it never depends on file order."""
    return "heldout" if int(_hash(f"{topic}|{kind}"), 16) % 100 < HELDOUT_PERCENT else "train"


def _parse_entry(topic: str, entry: object) -> BaseTask:
    if not isinstance(entry, dict) or len(entry) != 1:
        raise UserError(f"{TASKS_FILE}: task under {topic!r} must be one 'kind: text' pair, got {entry!r}")
    ((kind, text),) = entry.items()
    if kind not in TASK_KINDS or not isinstance(text, str) or not text.strip():
        raise UserError(f"{TASKS_FILE}: bad task {entry!r} under {topic!r}", f"kinds: {sorted(TASK_KINDS)}")
    return BaseTask(id=f"task-{_hash(text.strip())[:10]}", text=text.strip(), kind=kind, topic=topic)


@lru_cache(maxsize=1)
def _bank() -> tuple[BaseTask, ...]:
    raw = yaml.safe_load(TASKS_FILE.read_text(encoding="utf-8"))
    tasks = [_parse_entry(topic, entry) for topic, entries in raw.items() for entry in entries]
    seen: set[str] = set()
    for task in tasks:
        if task.id in seen:
            raise UserError(f"{TASKS_FILE}: task {task.text!r} appears twice", "remove the copy")
        seen.add(task.id)
    return tuple(tasks)


def load_base_tasks(split: Split) -> list[BaseTask]:
    """The bank's tasks of one split, in file order."""
    if split not in ("train", "heldout"):
        raise UserError(f"unknown split {split!r}", 'use "train" or "heldout"')
    return [t for t in _bank() if task_split(t.topic, t.kind) == split]


def constraint_types_default() -> list[str]:
    """Types a small base model can plausibly satisfy: surface form, edges, simple counts, keywords.

    Left out: JSON, two responses, repeated prompts, other languages, exact counts of paragraphs,
    sections or letters, which a 270M model rarely meets even by chance and so cannot learn from.
    """
    return [
        "punctuation:no_comma",
        "change_case:english_lowercase",
        "change_case:english_capital",
        "startend:end_checker",
        "startend:quotation",
        "keywords:existence",
        "keywords:forbidden_words",
        "detectable_format:title",
        "detectable_format:number_bullet_lists",
        "detectable_format:number_highlighted_sections",
        "detectable_content:postscript",
        "length_constraints:number_sentences",
        "length_constraints:number_words",
        "cai:start_with",
        "cai:max_words",
        "cai:word_range",
        "cai:end_with_question",
        "cai:single_paragraph",
        "cai:numbered_list",
        "cai:no_digits",
    ]


def _pick_constraints(
    rng: random.Random, task: BaseTask, k: int, split: Split, types: list[str]
) -> list[ConstraintSpec]:
    """Up to k constraints of distinct, pairwise compatible types, in the order drawn."""
    specs: list[ConstraintSpec] = []
    for type_id in rng.sample(types, len(types)):
        if len(specs) == k:
            break
        if not all(types_compatible(type_id, s.id) for s in specs):
            continue
        spec = sample_constraint(rng, type_id, split, task=task.text)
        if all(specs_compatible(spec, s) for s in specs):
            specs.append(spec)
    return specs


def _instruction(task: BaseTask, specs: list[ConstraintSpec], split: Split, stage: int) -> Instruction:
    prompt = " ".join([task.text, *(s.text for s in specs)])
    content = json.dumps([prompt, [s.model_dump() for s in specs]], sort_keys=True)
    return Instruction(
        id=f"{split}-{_hash(content)[:16]}",
        stage=stage,
        split=split,
        prompt=prompt,
        task=task.text,
        task_kind=task.kind,
        topic=task.topic,
        constraints=specs,
    )


def _validate(base_tasks: list[BaseTask], n: int, constraint_types: list[str], lo: int, hi: int) -> None:
    if n < 0 or not base_tasks:
        raise UserError(
            f"cannot compose {n} instructions from {len(base_tasks)} base tasks", "give n >= 0 and tasks"
        )
    if not 1 <= lo <= hi:
        raise UserError(
            f"bad constraint counts min={lo} max={hi}", "use 1 <= min_constraints <= max_constraints"
        )
    unknown = [t for t in constraint_types if t not in PHRASINGS]
    if unknown:
        raise UserError(
            f"constraint type {unknown[0]!r} cannot be composed", f"use types from: {', '.join(PHRASINGS)}"
        )
    if len(set(constraint_types)) < lo:
        raise UserError(
            f"{len(set(constraint_types))} constraint types cannot give {lo} per instruction", "add types"
        )


def compose(
    rng: random.Random,
    base_tasks: list[BaseTask],
    n: int,
    split: Split,
    constraint_types: list[str],
    min_constraints: int = 1,
    max_constraints: int = 3,
    stage: int = 1,
) -> list[Instruction]:
    """n distinct instructions, each a base task with min..max compatible constraints worded for `split`.

    Same rng state, same inputs: same output. Ids are `<split>-<hash of prompt and constraints>`;
    no two instructions share a prompt. Too few tasks or types for n distinct prompts is a UserError.
    """
    _validate(base_tasks, n, constraint_types, min_constraints, max_constraints)
    types = list(dict.fromkeys(constraint_types))
    out: list[Instruction] = []
    prompts: set[str] = set()
    for _ in range(n * ATTEMPTS_PER_ITEM):
        if len(out) == n:
            break
        task = rng.choice(base_tasks)
        specs = _pick_constraints(rng, task, rng.randint(min_constraints, max_constraints), split, types)
        if len(specs) < min_constraints:
            continue
        inst = _instruction(task, specs, split, stage)
        if inst.prompt not in prompts:
            prompts.add(inst.prompt)
            out.append(inst)
    if len(out) < n:
        raise UserError(
            f"composed only {len(out)} of {n} distinct instructions",
            "add base tasks or constraint types, or ask for fewer",
        )
    return out
