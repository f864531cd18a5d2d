"""Our own `cai:` character types (transfer set): letters, characters and marks the answer may use.

Designed for this project (issue 26): they ask about the characters of the answer rather than its
words or layout. Every checker accepts any string and never raises on it.
"""

from __future__ import annotations

import re

from .common import plain_words, sentences

# A run of letters in any script ('don't' is two runs; 'g-a-r-d-e-n' is six).
LETTER_RUN_RE = re.compile(r"[^\W\d_]+")
# Closing marks an answer may end inside: '!"' and '!**' still end with '!'.
TRAILING = "\"')]*_\u201d\u2019 \t\n"


def no_letter(response: str, *, letter: str) -> bool:
    """Some letters, and never `letter` in either case (a lipogram)."""
    want = letter.casefold()
    return bool(LETTER_RUN_RE.search(response)) and want not in response.casefold()


def max_chars(response: str, *, max_chars: int) -> bool:
    """At most `max_chars` characters, spaces included, once the outer whitespace is stripped."""
    text = response.strip()
    return 0 < len(text) <= max_chars


def ascii_only(response: str) -> bool:
    """Non-empty text of plain ASCII characters only: no emoji, accents, curly quotes or dashes."""
    return bool(response.strip()) and response.isascii()


def max_word_length(response: str, *, max_letters: int) -> bool:
    """Some letters, and no run of letters longer than `max_letters` (short words only)."""
    runs = LETTER_RUN_RE.findall(response)
    return bool(runs) and max(len(r) for r in runs) <= max_letters


def exclaim_end(response: str) -> bool:
    """The text ends with an exclamation mark (closing quotes or markup aside)."""
    return response.rstrip(TRAILING).endswith(("!", "\uff01"))


def _first_letter(sentence: str) -> str:
    m = LETTER_RUN_RE.search(sentence)
    return m.group(0)[0] if m else ""


def sentences_capitalized(response: str) -> bool:
    """Every sentence (pysbd, a line break ends one) opens with a capital letter: the first letter
    after any bullet, number or quote is uppercase. Needs at least one sentence."""
    found = sentences(response)
    return bool(found) and all(_first_letter(s).isupper() for s in found)


def alliteration(response: str, *, letter: str, min_words: int) -> bool:
    """At least `min_words` words begin with `letter` (either case; leading quotes and markup aside)."""
    want = letter.casefold()
    starts = [LETTER_RUN_RE.search(w) for w in plain_words(response)]
    return sum(1 for m in starts if m and m.group(0)[0].casefold() == want) >= min_words
