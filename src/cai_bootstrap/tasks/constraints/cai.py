"""Our own `cai:` constraint types for stage 1: simple, checkable, learnable by a small model.

Length types count words as a reader does (whitespace tokens with a letter or digit), unlike the
IFEval types, which count runs of word characters.
"""

from __future__ import annotations

import re

from .common import paragraphs_by_blank_lines, plain_words, starts_with_phrase

NUMBERED_RE = re.compile(r"^[ \t]*(\d{1,3})[.)][ \t]+\S", re.MULTILINE)
# Closing marks a question may end inside: 'right?"' and 'right?**' still end with a question.
TRAILING = "\"')]*_\u201d\u2019 \t\n"


def exact_words(response: str, *, num_words: int) -> bool:
    """Exactly `num_words` words."""
    return len(plain_words(response)) == num_words


def max_words(response: str, *, max_words: int) -> bool:
    """At most `max_words` words, and at least one."""
    return 0 < len(plain_words(response)) <= max_words


def word_range(response: str, *, min_words: int, max_words: int) -> bool:
    """Between `min_words` and `max_words` words, both included."""
    return min_words <= len(plain_words(response)) <= max_words


def start_with(response: str, *, start_phrase: str) -> bool:
    """The response opens with `start_phrase` (case-insensitive, whole words)."""
    return starts_with_phrase(response, start_phrase)


def numbered_list(response: str, *, num_items: int) -> bool:
    """Exactly `num_items` numbered lines ('1.' or '1)'), numbered 1, 2, ... in order."""
    numbers = [int(n) for n in NUMBERED_RE.findall(response)]
    return numbers == list(range(1, num_items + 1))


def end_with_question(response: str) -> bool:
    """The last sentence is a question: the text ends with '?' (closing quotes or markup aside)."""
    text = response.rstrip(TRAILING)
    return text.endswith(("?", "\uff1f"))


def single_paragraph(response: str) -> bool:
    """Non-empty text with no blank line in it."""
    return len(paragraphs_by_blank_lines(response)) == 1


def no_digits(response: str) -> bool:
    """Non-empty text without any digit character (numbers are written out in words)."""
    return bool(response.strip()) and not any(c.isdigit() for c in response)
