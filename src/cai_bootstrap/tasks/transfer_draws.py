"""Argument samplers of the transfer set's `cai:` types (constraints/chars.py, counting.py,
positions.py, structure.py, copying.py); their wordings are in data/phrasings_transfer.yaml.

Ranges mix easy and hard on purpose: a 270M base model meets a rare-letter lipogram or a generous
sentence-length limit by chance now and then, an acrostic or an exact comma count almost never,
and training only has signal where some sampled answers pass.
"""

from __future__ import annotations

import random

from .phrasings import GENERAL_WORDS, ORDINALS, _plural, _quoted, _words

# Letters English text rarely needs, so that leaving one out is possible without odd words.
RARE_LETTERS = "zqxjkvw"
ALLITERATION_LETTERS = "sbtcpmfdl"
SHORT_WORDS = ("really", "always", "often", "truly", "simply", "usually", "clearly")
ACROSTIC_WORDS = ("SUN", "MAP", "OWL", "KEY", "ART", "JOY", "TREE", "BOLD", "CALM")
SPELL_WORDS = ("moon", "tree", "book", "rain", "lamp", "bird", "ship", "star")
LABEL_SETS = (
    ("Answer", "Reason"),
    ("Pros", "Cons"),
    ("Summary", "Details"),
    ("Problem", "Solution"),
    ("Idea", "Example"),
)


def _count(lo: int, hi: int, unit: str):
    def draw(rng: random.Random, task: str) -> tuple[dict, dict]:
        n = rng.randint(lo, hi)
        return {"n": n}, {"n": n, "things": _plural(n, unit)}

    return draw


def _renamed(draw, name: str):
    """A counter whose checker argument is called `name`."""

    def renamed(rng: random.Random, task: str) -> tuple[dict, dict]:
        kw, fields = draw(rng, task)
        return {name: kw["n"]}, fields

    return renamed


def _no_args(rng: random.Random, task: str) -> tuple[dict, dict]:
    return {}, {}


def _no_letter(rng: random.Random, task: str) -> tuple[dict, dict]:
    letter = rng.choice(RARE_LETTERS)
    return {"letter": letter}, {"l": letter}


def _max_chars(rng: random.Random, task: str) -> tuple[dict, dict]:
    n = rng.randrange(150, 451, 50)
    return {"max_chars": n}, {"n": n}


def _max_word_length(rng: random.Random, task: str) -> tuple[dict, dict]:
    n = rng.choice((7, 8, 9, 10))
    return {"max_letters": n}, {"n": n}


def _alliteration(rng: random.Random, task: str) -> tuple[dict, dict]:
    letter, n = rng.choice(ALLITERATION_LETTERS), rng.randint(3, 6)
    return {"letter": letter, "min_words": n}, {"l": letter.upper(), "n": n, "things": _plural(n, "word")}


def _keyword(rng: random.Random, task: str) -> tuple[dict, dict]:
    word = _words(rng, task, list(GENERAL_WORDS), 1)[0]
    return {"keyword": word}, {"kw": word, "KW": word.upper()}


def _keyword_order(rng: random.Random, task: str) -> tuple[dict, dict]:
    first, second = _words(rng, task, list(GENERAL_WORDS), 2)
    return {"first": first, "second": second}, {"a": first, "b": second}


def _nth_word(rng: random.Random, task: str) -> tuple[dict, dict]:
    k, word = rng.randint(2, 5), rng.choice(SHORT_WORDS)
    return {"position": k, "word": word}, {"k": k, "ordinal": ORDINALS[k - 1], "w": word}


def _acrostic(rng: random.Random, task: str) -> tuple[dict, dict]:
    word = rng.choice(ACROSTIC_WORDS)
    return {"letters": word}, {"w": word, "n": len(word)}


def _labels(rng: random.Random, task: str) -> tuple[dict, dict]:
    labels = list(rng.choice(LABEL_SETS))
    return {"labels": labels}, {"labels": _quoted([f"{x}:" for x in labels], "and"), "first": labels[0]}


def _spell(rng: random.Random, task: str) -> tuple[dict, dict]:
    word = rng.choice(SPELL_WORDS)
    return {"spell_word": word}, {"w": word, "spelled": "-".join(word)}


def _either(rng: random.Random, task: str) -> tuple[dict, dict]:
    words = _words(rng, task, list(GENERAL_WORDS), 2)
    return {"keywords": words}, {"a": words[0], "b": words[1]}


NEW_DRAWS = {
    "cai:no_letter": _no_letter,
    "cai:max_chars": _max_chars,
    "cai:ascii_only": _no_args,
    "cai:max_word_length": _max_word_length,
    "cai:exclaim_end": _no_args,
    "cai:sentences_capitalized": _no_args,
    "cai:alliteration": _alliteration,
    "cai:exact_sentences": _renamed(_count(2, 5, "sentence"), "num_sentences"),
    "cai:sentence_max_words": _renamed(_count(10, 25, "word"), "max_words"),
    "cai:max_word_repeats": _renamed(_count(2, 4, "time"), "max_repeats"),
    "cai:exact_commas": _renamed(_count(1, 4, "comma"), "num_commas"),
    "cai:question_count": _renamed(_count(1, 3, "question"), "num_questions"),
    "cai:line_count": _renamed(_count(2, 6, "line"), "num_lines"),
    "cai:digit_numbers": _renamed(_count(1, 3, "number"), "min_numbers"),
    "cai:keyword_first_sentence": _keyword,
    "cai:keyword_last_sentence": _keyword,
    "cai:keyword_order": _keyword_order,
    "cai:nth_word": _nth_word,
    "cai:same_first_last_word": _no_args,
    "cai:acrostic": _acrostic,
    "cai:labeled_lines": _labels,
    "cai:markdown_headings": _renamed(_count(1, 3, "heading"), "num_headings"),
    "cai:parenthetical": _no_args,
    "cai:quoted_phrases": _renamed(_count(1, 3, "phrase"), "num_quotes"),
    "cai:step_lines": _renamed(_count(2, 5, "step"), "num_steps"),
    "cai:keyword_caps": _keyword,
    "cai:spelled_out": _spell,
    "cai:bracketed_keyword": _keyword,
    "cai:same_first_last_sentence": _no_args,
    "cai:either_keyword": _either,
}
