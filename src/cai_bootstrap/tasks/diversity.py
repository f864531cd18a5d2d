"""Diversity statistics of an instruction set, for the step manifest and the report.

All values are plain ints, floats, dicts and None, so the result goes straight into JSON.
"""

from __future__ import annotations

from collections import Counter

from ..records import BaseTask, Instruction
from .leakage import normalise


def _bigrams(text: str) -> list[tuple[str, str]]:
    words = normalise(text).split()
    return list(zip(words, words[1:], strict=False))


def distinct_2(texts: list[str]) -> float:
    """Distinct word 2-grams / all word 2-grams over the texts (Li et al. 2016, "distinct-2")."""
    grams = [g for t in texts for g in _bigrams(t)]
    return len(set(grams)) / len(grams) if grams else 0.0


def _self_instruct_share(instructions: list[Instruction], base_tasks: list[BaseTask] | None) -> float | None:
    """Share of instructions whose task text comes from a self-instruct base task (None: unknown)."""
    if base_tasks is None:
        return None
    if not instructions:
        return 0.0
    generated = {normalise(t.text) for t in base_tasks if t.source == "self_instruct"}
    return sum(normalise(i.task) in generated for i in instructions) / len(instructions)


def diversity_stats(instructions: list[Instruction], base_tasks: list[BaseTask] | None = None) -> dict:
    """Counts and ratios that say how varied an instruction set is.

    duplicate_rate is the share of instructions whose normalised prompt repeats an earlier one;
    self_instruct_share needs the base tasks (None when they are not given).
    """
    n = len(instructions)
    constraint_counts = Counter(c.id for i in instructions for c in i.constraints)
    distinct_prompts = len({normalise(i.prompt) for i in instructions})
    stats = {
        "n_instructions": n,
        "distinct_tasks": len({normalise(i.task) for i in instructions}),
        "distinct_topics": len({i.topic for i in instructions}),
        "distinct_kinds": len({i.task_kind for i in instructions}),
        "constraint_counts": dict(sorted(constraint_counts.items())),
        "distinct_constraint_types": len(constraint_counts),
        "duplicate_rate": (n - distinct_prompts) / n if n else 0.0,
        "mean_constraints": sum(constraint_counts.values()) / n if n else 0.0,
        "self_instruct_share": _self_instruct_share(instructions, base_tasks),
        "distinct_2": distinct_2([i.prompt for i in instructions]),
    }
    if base_tasks is not None:
        stats["base_tasks"] = len(base_tasks)
        stats["self_instruct_tasks"] = sum(t.source == "self_instruct" for t in base_tasks)
    return stats
