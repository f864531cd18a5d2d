"""Natural wordings of each constraint type, with a sampler for the checker's arguments.

Each type has train phrasings and held-out phrasings, and the two sets never share a wording, so
the held-out evaluation tests whether the model learned the constraint rather than the sentence.
`sample_constraint` draws the arguments (a word count, a keyword taken from the task or not) and one
phrasing of the requested split. The wordings live in data/phrasings.yaml, written for this project.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from ..errors import UserError
from ..records import ConstraintSpec, Split
from .constraints import CHECKERS

Draw = Callable[[random.Random, str], tuple[dict[str, Any], dict[str, Any]]]


class Phrasing(NamedTuple):
    """How to draw a type's checker arguments (and template fields) and how to word it per split."""

    draw: Draw
    train: tuple[str, ...]
    heldout: tuple[str, ...]

    def templates(self, split: Split) -> tuple[str, ...]:
        return {"train": self.train, "heldout": self.heldout}[split]


RELATIONS = ("at least", "less than")
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
COMMON_WORDS = "very really thing good important just also many always people".split()
END_PHRASES = (
    "Is there anything else I can help with?",
    "Thank you for reading.",
    "That is all.",
    "Let me know if you have more questions.",
    "Have a nice day.",
)
START_PHRASES = ("Sure", "Here is", "In short", "Great question", "To begin with", "Well", "Certainly")
FIRST_WORDS = ("however", "today", "finally", "imagine", "overall", "sometimes", "indeed", "meanwhile")
LANGUAGES = {"fr": "French", "es": "Spanish", "de": "German", "it": "Italian", "pt": "Portuguese"}
ORDINALS = ("first", "second", "third", "fourth", "fifth")


def _plural(n: int, unit: str) -> str:
    return f"{n} {unit}" if n == 1 else f"{n} {unit}s"


def _amount(relation: str, n: int, unit: str) -> str:
    """'at least 3 sentences' / 'fewer than 3 sentences'."""
    return f"at least {_plural(n, unit)}" if relation == "at least" else f"fewer than {_plural(n, unit)}"


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


def _no_args(rng: random.Random, task: str) -> tuple[dict, dict]:
    return {}, {}


def _capital_words(rng: random.Random, task: str) -> tuple[dict, dict]:
    rel = rng.choice(RELATIONS)
    n = rng.randint(2, 5) if rel == "at least" else rng.randint(3, 6)
    kw = {"capital_frequency": n, "capital_relation": rel}
    return kw, {"count": _amount(rel, n, "word")}


def _repeat(rng: random.Random, task: str) -> tuple[dict, dict]:
    if not task.strip():
        raise UserError("combination:repeat_prompt needs the task text", "pass task= to sample_constraint")
    return {"prompt_to_repeat": task.strip()}, {}


def _placeholders(rng: random.Random, task: str) -> tuple[dict, dict]:
    n = rng.randint(1, 3)
    return {"num_placeholders": n}, {"n": n, "placeholders": _plural(n, "placeholder")}


def _postscript(rng: random.Random, task: str) -> tuple[dict, dict]:
    marker = rng.choice(("P.S.", "P.P.S"))
    return {"postscript_marker": marker}, {"marker": marker}


def _sections(rng: random.Random, task: str) -> tuple[dict, dict]:
    spliter, n = rng.choice(("Section", "SECTION", "Part", "PART")), rng.randint(2, 4)
    return {"section_spliter": spliter, "num_sections": n}, {"sp": spliter, "n": n}


def _bullets(rng: random.Random, task: str) -> tuple[dict, dict]:
    n = rng.randint(2, 5)
    return {"num_bullets": n}, {"n": n}


def _highlights(rng: random.Random, task: str) -> tuple[dict, dict]:
    n = rng.randint(1, 3)
    return {"num_highlights": n}, {"sections": _plural(n, "section"), "parts": _plural(n, "part")}


def _existence(rng: random.Random, task: str) -> tuple[dict, dict]:
    words = _words(rng, task, GENERAL_WORDS, rng.randint(1, 2))
    return {"keywords": words}, {"kw": _quoted(words, "and")}


def _forbidden(rng: random.Random, task: str) -> tuple[dict, dict]:
    words = _words(rng, task, COMMON_WORDS, rng.randint(1, 2))
    return {"forbidden_words": words}, {"kw": _quoted(words, "or")}


def _frequency(rng: random.Random, task: str) -> tuple[dict, dict]:
    word, rel = _words(rng, task, GENERAL_WORDS, 1)[0], rng.choice(RELATIONS)
    n = rng.randint(2, 3)
    return {"keyword": word, "frequency": n, "relation": rel}, {"kw": word, "count": _amount(rel, n, "time")}


def _letters(rng: random.Random, task: str) -> tuple[dict, dict]:
    rel = rng.choice(RELATIONS)
    letter = rng.choice("etaonrs") if rel == "at least" else rng.choice("zqxjkv")
    n = rng.randint(5, 12) if rel == "at least" else rng.randint(2, 4)
    kw = {"letter": letter, "let_frequency": n, "let_relation": rel}
    return kw, {"l": letter, "count": _amount(rel, n, "time")}


def _language(rng: random.Random, task: str) -> tuple[dict, dict]:
    code = rng.choice(sorted(LANGUAGES))
    return {"language": code}, {"lang": LANGUAGES[code]}


def _nth_paragraph(rng: random.Random, task: str) -> tuple[dict, dict]:
    n = rng.randint(2, 4)
    k, word = rng.randint(1, n), rng.choice(FIRST_WORDS)
    kw = {"num_paragraphs": n, "nth_paragraph": k, "first_word": word}
    return kw, {"n": n, "k": k, "ordinal": ORDINALS[k - 1], "w": word}


def _paragraphs(rng: random.Random, task: str) -> tuple[dict, dict]:
    n = rng.randint(2, 4)
    return {"num_paragraphs": n}, {"n": n}


def _sentences(rng: random.Random, task: str) -> tuple[dict, dict]:
    rel = rng.choice(RELATIONS)
    n = rng.randint(2, 5) if rel == "at least" else rng.randint(3, 6)
    return {"num_sentences": n, "relation": rel}, {"count": _amount(rel, n, "sentence")}


def _ifeval_words(rng: random.Random, task: str) -> tuple[dict, dict]:
    rel = rng.choice(RELATIONS)
    n = rng.randrange(30, 121, 10) if rel == "at least" else rng.randrange(30, 101, 10)
    return {"num_words": n, "relation": rel}, {"count": _amount(rel, n, "word")}


def _end_phrase(rng: random.Random, task: str) -> tuple[dict, dict]:
    phrase = rng.choice(END_PHRASES)
    return {"end_phrase": phrase}, {"p": phrase}


def _exact_words(rng: random.Random, task: str) -> tuple[dict, dict]:
    n = rng.randint(5, 15)
    return {"num_words": n}, {"n": n}


def _max_words(rng: random.Random, task: str) -> tuple[dict, dict]:
    n = rng.randrange(15, 61, 5)
    return {"max_words": n}, {"n": n}


def _word_range(rng: random.Random, task: str) -> tuple[dict, dict]:
    lo = rng.randrange(15, 41, 5)
    hi = lo + rng.choice((10, 15, 20))
    return {"min_words": lo, "max_words": hi}, {"lo": lo, "hi": hi}


def _start_phrase(rng: random.Random, task: str) -> tuple[dict, dict]:
    phrase = rng.choice(START_PHRASES)
    return {"start_phrase": phrase}, {"p": phrase}


def _numbered(rng: random.Random, task: str) -> tuple[dict, dict]:
    n = rng.randint(2, 5)
    return {"num_items": n}, {"n": n}


# The argument sampler of every type that instructions may carry. detectable_format:constrained_response
# has none: its fixed answers fit yes/no questions only, and the task bank has none.
DRAWS: dict[str, Draw] = {
    "change_case:capital_word_frequency": _capital_words,
    "change_case:english_capital": _no_args,
    "change_case:english_lowercase": _no_args,
    "combination:repeat_prompt": _repeat,
    "combination:two_responses": _no_args,
    "detectable_content:number_placeholders": _placeholders,
    "detectable_content:postscript": _postscript,
    "detectable_format:json_format": _no_args,
    "detectable_format:multiple_sections": _sections,
    "detectable_format:number_bullet_lists": _bullets,
    "detectable_format:number_highlighted_sections": _highlights,
    "detectable_format:title": _no_args,
    "keywords:existence": _existence,
    "keywords:forbidden_words": _forbidden,
    "keywords:frequency": _frequency,
    "keywords:letter_frequency": _letters,
    "language:response_language": _language,
    "length_constraints:nth_paragraph_first_word": _nth_paragraph,
    "length_constraints:number_paragraphs": _paragraphs,
    "length_constraints:number_sentences": _sentences,
    "length_constraints:number_words": _ifeval_words,
    "punctuation:no_comma": _no_args,
    "startend:end_checker": _end_phrase,
    "startend:quotation": _no_args,
    "cai:exact_words": _exact_words,
    "cai:max_words": _max_words,
    "cai:word_range": _word_range,
    "cai:start_with": _start_phrase,
    "cai:numbered_list": _numbered,
    "cai:end_with_question": _no_args,
    "cai:single_paragraph": _no_args,
    "cai:no_digits": _no_args,
}
PHRASINGS_FILE = Path(__file__).parent / "data" / "phrasings.yaml"


def _load(path: Path, draws: dict[str, Draw]) -> dict[str, Phrasing]:
    """Read a wordings file and check it: every sampled type worded, >= 3 train and >= 2 held-out
    wordings, the two splits disjoint."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    if set(raw) != set(draws):
        odd = sorted(set(raw) ^ set(draws))
        raise UserError(
            f"{path} and the samplers disagree on type {odd[0]!r}", "word every sampled type once"
        )
    out = {}
    for type_id, entry in raw.items():
        train, heldout = tuple(entry["train"]), tuple(entry["heldout"])
        if len(train) < 3 or len(heldout) < 2 or set(train) & set(heldout):
            raise UserError(f"{path}: {type_id} needs >= 3 train and >= 2 other held-out wordings")
        out[type_id] = Phrasing(draws[type_id], train, heldout)
    return out


# The transfer set's samplers reuse the helpers above, hence the late import.
from .transfer_draws import NEW_DRAWS  # noqa: E402

TRANSFER_PHRASINGS_FILE = Path(__file__).parent / "data" / "phrasings_transfer.yaml"
PHRASINGS: dict[str, Phrasing] = _load(PHRASINGS_FILE, DRAWS) | _load(TRANSFER_PHRASINGS_FILE, NEW_DRAWS)


def sample_constraint(rng: random.Random, type_id: str, split: Split, task: str = "") -> ConstraintSpec:
    """One constraint of `type_id`: arguments drawn with `rng`, worded by a phrasing of `split`.

    `task` is the task text: keywords are sometimes taken from it, and repeat_prompt repeats it.
    """
    phrasing = PHRASINGS.get(type_id)
    if phrasing is None:
        why = "a checker but no phrasing" if type_id in CHECKERS else "no such type"
        raise UserError(f"constraint type {type_id!r} has {why}", f"use one of: {', '.join(PHRASINGS)}")
    if split not in ("train", "heldout"):
        raise UserError(f"unknown split {split!r}", 'use "train" or "heldout"')
    kwargs, fields = phrasing.draw(rng, task)
    text = rng.choice(phrasing.templates(split)).format(**fields)
    return ConstraintSpec(id=type_id, kwargs=kwargs, text=text)
