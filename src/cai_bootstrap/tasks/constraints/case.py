"""change_case:* checkers (IFEval), scored as the reference implementation does.

Capital words are NLTK word tokens ('AI-POWERED' is one); the English checks ask langdetect about
the text as written and, like the reference, count text it cannot judge as followed.
"""

from __future__ import annotations

from .common import Relation, reference_language
from .tokens import nltk_words


def capital_word_frequency(response: str, *, capital_frequency: int, capital_relation: Relation) -> bool:
    """NLTK word tokens written entirely in capitals: fewer than / at least `capital_frequency`."""
    count = sum(1 for w in nltk_words(response) if w.isupper())
    return capital_relation.holds(count, capital_frequency)


def english_capital(response: str) -> bool:
    """No lowercase letter (at least one cased letter) and English, or a language langdetect
    cannot judge."""
    return response.isupper() and reference_language(response) in ("en", None)


def english_lowercase(response: str) -> bool:
    """No capital letter (at least one cased letter) and English, or a language langdetect cannot
    judge."""
    return response.islower() and reference_language(response) in ("en", None)
