"""Our own `cai:` position types (transfer set): where a word sits in the answer.

Designed for this project (issue 26): a keyword in the first or last sentence, two words in a given
order, a word at a given position, an answer that ends on its first word, an acrostic.
Words are whitespace tokens with their outer punctuation stripped ('"Hello,' -> 'Hello').
Every checker accepts any string and never raises on it.
"""

from __future__ import annotations

import re

from .common import count_phrase, sentences, word_pattern

LETTER_RUN_RE = re.compile(r"[^\W\d_]+")
_EDGE_RE = re.compile(r"^\W+|\W+$")


def bare_words(text: str) -> list[str]:
    """Whitespace tokens without their outer punctuation and markup, empty ones dropped."""
    return [w for w in (_EDGE_RE.sub("", t) for t in text.split()) if w]


def keyword_first_sentence(response: str, *, keyword: str) -> bool:
    """`keyword` occurs (whole word, any case) in the first sentence."""
    found = sentences(response)
    return bool(found) and count_phrase(found[0], keyword) > 0


def keyword_last_sentence(response: str, *, keyword: str) -> bool:
    """`keyword` occurs (whole word, any case) in the last sentence."""
    found = sentences(response)
    return bool(found) and count_phrase(found[-1], keyword) > 0


def keyword_order(response: str, *, first: str, second: str) -> bool:
    """Both words occur (whole words, any case) and `first` occurs before `second` does."""
    if not first.split() or not second.split():
        return False
    a, b = word_pattern(first).search(response), word_pattern(second).search(response)
    return a is not None and b is not None and a.start() < b.start()


def nth_word(response: str, *, position: int, word: str) -> bool:
    """The word at `position` (1 = first) is `word` (any case, outer punctuation aside)."""
    words = bare_words(response)
    return 1 <= position <= len(words) and words[position - 1].casefold() == word.strip().casefold()


def same_first_last_word(response: str) -> bool:
    """At least two words, and the last word is the first word again (any case)."""
    words = bare_words(response)
    return len(words) >= 2 and words[0].casefold() == words[-1].casefold()


def acrostic(response: str, *, letters: str) -> bool:
    """One non-blank line per letter of `letters`, and each line's first letter (after any bullet,
    number or markup) is that letter, in order (any case)."""
    lines = [line for line in response.splitlines() if line.strip()]
    want = [c.casefold() for c in letters if not c.isspace()]
    if not want or len(lines) != len(want):
        return False
    firsts = [LETTER_RUN_RE.search(line) for line in lines]
    return all(m and m.group(0)[0].casefold() == c for m, c in zip(firsts, want, strict=True))
