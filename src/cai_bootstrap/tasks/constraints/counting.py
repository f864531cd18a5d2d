"""Our own `cai:` counting types (transfer set): exact counts of sentences, commas, questions, lines.

Designed for this project (issue 26). IFEval bounds counts from one side ("at least", "less than");
these ask for exact counts or per-sentence and per-word limits instead. Sentences are pysbd's,
run line by line (common.sentences). Every checker accepts any string and never raises on it.
"""

from __future__ import annotations

import re
from collections import Counter

from .common import plain_words, sentences

LETTER_RUN_RE = re.compile(r"[^\W\d_]+")
# A run of question marks asks one question ('Really??').
QUESTION_RE = re.compile(r"[?\uff1f]+")
# A number written with digits: '7', '1,200', '3.5'.
NUMBER_RE = re.compile(r"\d+(?:[.,]\d+)*")
# Words this short repeat in any English text ('the', 'and'); only longer ones count as repeats.
REPEAT_MIN_LETTERS = 4


def exact_sentences(response: str, *, num_sentences: int) -> bool:
    """Exactly `num_sentences` sentences."""
    return len(sentences(response)) == num_sentences


def sentence_max_words(response: str, *, max_words: int) -> bool:
    """At least one sentence, and none with more than `max_words` words."""
    found = sentences(response)
    return bool(found) and all(len(plain_words(s)) <= max_words for s in found)


def max_word_repeats(response: str, *, max_repeats: int) -> bool:
    """Some words, and no word of 4+ letters used more than `max_repeats` times (any case)."""
    runs = [r.casefold() for r in LETTER_RUN_RE.findall(response)]
    counts = Counter(r for r in runs if len(r) >= REPEAT_MIN_LETTERS)
    return bool(runs) and all(c <= max_repeats for c in counts.values())


def exact_commas(response: str, *, num_commas: int) -> bool:
    """Non-empty text with exactly `num_commas` commas (ASCII or full-width)."""
    n = response.count(",") + response.count("\uff0c")
    return bool(response.strip()) and n == num_commas


def question_count(response: str, *, num_questions: int) -> bool:
    """Exactly `num_questions` questions: runs of question marks ('Why??' is one)."""
    return bool(response.strip()) and len(QUESTION_RE.findall(response)) == num_questions


def line_count(response: str, *, num_lines: int) -> bool:
    """Exactly `num_lines` non-blank lines (blank lines between them do not count)."""
    return len([line for line in response.splitlines() if line.strip()]) == num_lines


def digit_numbers(response: str, *, min_numbers: int) -> bool:
    """At least `min_numbers` numbers written with digits ('1,200' and '3.5' are one each)."""
    return len(NUMBER_RE.findall(response)) >= min_numbers
