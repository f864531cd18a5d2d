"""keywords:*, detectable_content:*, punctuation:* and language:* checkers (IFEval).

Each one scores as the reference implementation does (Google's instruction_following_eval, as
ported to lm-eval's `ifeval` task), quirks included, because they define the benchmark: keywords are
regular expressions matched case-insensitively anywhere ("cat" is found in "catalog"), forbidden
words need word boundaries, and text whose language cannot be detected counts as followed.
"""

from __future__ import annotations

import re

from . import bounded
from .common import Relation, reference_language


def keyword_existence(response: str, *, keywords: list[str]) -> bool:
    """Every keyword, read as a regular expression, is found (case-insensitive, inside words too)."""
    return all(bounded.search(k, response, flags=re.IGNORECASE) for k in keywords)


def forbidden_words(response: str, *, forbidden_words: list[str]) -> bool:
    """No forbidden word is found between word boundaries (case-insensitive)."""
    return not any(bounded.search(rf"\b{w}\b", response, flags=re.IGNORECASE) for w in forbidden_words)


def keyword_frequency(response: str, *, keyword: str, frequency: int, relation: Relation) -> bool:
    """The keyword (a regular expression, case-insensitive, inside words too) is found fewer than /
    at least `frequency` times."""
    return relation.holds(len(bounded.findall(keyword.strip(), response, flags=re.IGNORECASE)), frequency)


def letter_frequency(response: str, *, letter: str, let_frequency: int, let_relation: Relation) -> bool:
    """The letter (case-insensitive) occurs fewer than / at least `let_frequency` times."""
    return let_relation.holds(response.lower().count(letter.strip().lower()), let_frequency)


# The reference's placeholder: the shortest '[...]' on one line, empty '[]' included.
PLACEHOLDER_RE = re.compile(r"\[.*?\]")


def number_placeholders(response: str, *, num_placeholders: int) -> bool:
    """At least `num_placeholders` square-bracket placeholders."""
    return len(PLACEHOLDER_RE.findall(response)) >= num_placeholders


def _postscript_pattern(marker: str) -> str:
    """The reference's patterns: its two markers allow a space after each dot; any other marker is
    read as a regular expression. Each may start anywhere in a line, not only at its start."""
    if marker == "P.P.S":
        return r"\s*p\.\s?p\.\s?s.*$"
    if marker == "P.S.":
        return r"\s*p\.\s?s\..*$"
    return r"\s*" + marker.lower() + r".*$"


def postscript(response: str, *, postscript_marker: str) -> bool:
    """The postscript marker (e.g. 'P.S.' or 'P.P.S', case-insensitive) occurs somewhere."""
    pattern = _postscript_pattern(postscript_marker.strip())
    return bool(bounded.findall(pattern, response.lower(), flags=re.MULTILINE))


def no_comma(response: str) -> bool:
    """No ASCII comma (the reference does not count fullwidth or ideographic commas)."""
    return "," not in response


def response_language(response: str, *, language: str) -> bool:
    """langdetect's verdict on the text as written is exactly `language` (e.g. 'fr'; Chinese reads
    'zh-cn' or 'zh-tw'); text it cannot judge (digits, punctuation, emoji) counts as followed."""
    detected = reference_language(response)
    return detected is None or detected == language
