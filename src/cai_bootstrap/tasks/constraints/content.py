"""keywords:*, detectable_content:*, punctuation:* and language:* checkers (IFEval).

Definitions follow Zhou et al. 2023, Table 1. Where the paper leaves a detail open we choose the
reading a person would: keywords match as whole words, case-insensitively ("cat" is not in "catalog").
"""

from __future__ import annotations

import re

from .common import Relation, count_phrase, detected_language


def keyword_existence(response: str, *, keywords: list[str]) -> bool:
    """Every keyword occurs at least once."""
    return all(count_phrase(response, k) > 0 for k in keywords)


def forbidden_words(response: str, *, forbidden_words: list[str]) -> bool:
    """No forbidden word occurs."""
    return all(count_phrase(response, w) == 0 for w in forbidden_words)


def keyword_frequency(response: str, *, keyword: str, frequency: int, relation: Relation) -> bool:
    """The keyword occurs fewer than / at least `frequency` times."""
    return relation.holds(count_phrase(response, keyword), frequency)


def letter_frequency(response: str, *, letter: str, let_frequency: int, let_relation: Relation) -> bool:
    """The letter (case-insensitive) occurs fewer than / at least `let_frequency` times."""
    if not letter:
        return False
    return let_relation.holds(response.lower().count(letter.lower()), let_frequency)


# A placeholder is a bracketed slot with some text in it, on one line: "[name]", "[your city]".
PLACEHOLDER_RE = re.compile(r"\[[^\[\]\n]*[^\[\]\s][^\[\]\n]*\]")


def number_placeholders(response: str, *, num_placeholders: int) -> bool:
    """At least `num_placeholders` square-bracket placeholders."""
    return len(PLACEHOLDER_RE.findall(response)) >= num_placeholders


def _marker_pattern(marker: str) -> re.Pattern[str]:
    """A line-start pattern: marker 'P.S.' also matches 'p.s.' and 'P. S.'."""
    body = r"\.\s?".join(re.escape(part.strip()) for part in marker.strip().split("."))
    return re.compile(rf"^\s*{body}", re.IGNORECASE | re.MULTILINE)


def postscript(response: str, *, postscript_marker: str) -> bool:
    """Some line begins with the postscript marker, e.g. 'P.S.' or 'P.P.S'."""
    if not postscript_marker.strip():
        return False
    return _marker_pattern(postscript_marker).search(response) is not None


def no_comma(response: str) -> bool:
    """No ASCII comma and no fullwidth or ideographic comma."""
    return not any(c in response for c in ",\uff0c\u3001")


def response_language(response: str, *, language: str) -> bool:
    """langdetect's top language is `language` (ISO 639-1, e.g. 'fr'); text it cannot judge fails."""
    detected = detected_language(response)
    # langdetect names Chinese 'zh-cn' / 'zh-tw'; IFEval names languages by the bare ISO code.
    return detected is not None and detected.split("-")[0] == language.lower().split("-")[0]
