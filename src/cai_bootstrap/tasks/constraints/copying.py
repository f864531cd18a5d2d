"""Our own `cai:` copying and combination types (transfer set): a word copied in a given form, a
sentence repeated at both ends, exactly one of two words.

Designed for this project (issue 26). Every checker accepts any string and never raises on it.
"""

from __future__ import annotations

import re

from .common import count_phrase, sentences

# Quotes, markup and end punctuation that do not make two sentences different.
_SENTENCE_EDGES = "\"'*_`()[]{} \t\n.!?;:\u201c\u201d\u2018\u2019"


def keyword_caps(response: str, *, keyword: str) -> bool:
    """`keyword` occurs as a whole word written in capital letters ('GARDEN' for 'garden')."""
    want = keyword.strip().upper()
    if not want or want == want.lower():  # a keyword without letters has no capital form
        return False
    body = r"\s+".join(re.escape(p) for p in want.split())
    return re.search(rf"(?<!\w){body}(?!\w)", response) is not None


def spelled_out(response: str, *, spell_word: str) -> bool:
    """`spell_word` spelled letter by letter with hyphens ('m-o-o-n'), any case, as a whole token."""
    letters = [c for c in spell_word.strip() if not c.isspace()]
    if len(letters) < 2:
        return False
    body = "-".join(re.escape(c) for c in letters)
    return re.search(rf"(?<![\w-]){body}(?![\w-])", response, re.IGNORECASE) is not None


def bracketed_keyword(response: str, *, keyword: str) -> bool:
    """`keyword` occurs inside square brackets on its own: '[garden]' (any case, inner spaces aside)."""
    if not keyword.split():
        return False
    body = r"\s+".join(re.escape(p) for p in keyword.split())
    return re.search(rf"\[\s*{body}\s*\]", response, re.IGNORECASE) is not None


def _norm(sentence: str) -> str:
    return " ".join(sentence.strip(_SENTENCE_EDGES).casefold().split())


def same_first_last_sentence(response: str) -> bool:
    """At least two sentences, and the last repeats the first (case, spacing, quotes and end
    punctuation aside)."""
    found = sentences(response)
    return len(found) >= 2 and bool(_norm(found[0])) and _norm(found[0]) == _norm(found[-1])


def either_keyword(response: str, *, keywords: list[str]) -> bool:
    """Exactly one of `keywords` occurs (whole words, any case); using two of them fails."""
    words = [k for k in keywords if k.split()]
    return len(words) >= 2 and sum(count_phrase(response, k) > 0 for k in words) == 1
