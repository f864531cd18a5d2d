"""change_case:* checkers (IFEval), defined as in Zhou et al. 2023, Table 1."""

from __future__ import annotations

from .common import Relation, detected_language, ifeval_words


def capital_word_frequency(response: str, *, capital_frequency: int, capital_relation: Relation) -> bool:
    """Words written entirely in capital letters: fewer than / at least `capital_frequency` of them."""
    count = sum(1 for w in ifeval_words(response) if w.isupper())
    return capital_relation.holds(count, capital_frequency)


def english_capital(response: str) -> bool:
    """The whole response is English and has no lowercase letter (at least one cased letter)."""
    return response.isupper() and detected_language(response) == "en"


def english_lowercase(response: str) -> bool:
    """The whole response is English and has no capital letter (at least one cased letter)."""
    return response.islower() and detected_language(response) == "en"
