"""Word pools and small wording helpers that the constraint samplers share (phrasings.py for the
IFEval types, transfer_draws.py for the transfer set's), kept apart so neither imports the other."""

from __future__ import annotations

import random
import re

STOPWORDS = frozenset(
    "about after again being before between could describe explain every their there these those "
    "would which while where write short story letter poem simple things other into from with that "
    "this what when your give some during using first someone something might around without having "
    "should".split()
)
GENERAL_WORDS = (
    "simple example together careful morning journey balance energy window garden future friend "
    "bright quiet history purpose patience curious surprise detail"
).split()
ORDINALS = ("first", "second", "third", "fourth", "fifth")


def _plural(n: int, unit: str) -> str:
    return f"{n} {unit}" if n == 1 else f"{n} {unit}s"


def _quoted(words: list[str], joiner: str) -> str:
    quoted = [f'"{w}"' for w in words]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} {joiner} {quoted[-1]}"


def task_words(task: str) -> list[str]:
    """Content words of a task, in order, without repeats: candidates for relevant keywords."""
    words = [w.lower() for w in re.findall(r"[A-Za-z]+", task)]
    return list(dict.fromkeys(w for w in words if len(w) >= 5 and w not in STOPWORDS))


def _words(rng: random.Random, task: str, pool: list[str], k: int) -> list[str]:
    """k distinct words, from the task itself half of the time (relevant), else from `pool`."""
    relevant = task_words(task)
    source = relevant if len(relevant) >= k and rng.random() < 0.5 else pool
    return rng.sample(source, k)
