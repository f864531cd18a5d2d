"""length_constraints:* checkers (IFEval).

Each one scores as the reference implementation does (Google's instruction_following_eval, as
ported to lm-eval's `ifeval` task), quirks included: sentences are NLTK Punkt sentences, words are
runs of word characters, '***' divides paragraphs even inside '***bold***'.
"""

from __future__ import annotations

import re

from .common import Relation, ifeval_words
from .tokens import punkt_sentences

DIVIDER_RE = re.compile(r"\s?\*\*\*\s?")
# The marks that end a paragraph's first word in the reference ('"Really?!' reads 'really').
FIRST_WORD_END = frozenset(".,?!'\"")


def number_paragraphs(response: str, *, num_paragraphs: int) -> bool:
    """Exactly `num_paragraphs` paragraphs separated by the markdown divider '***'; an empty
    paragraph is allowed only before the first or after the last divider."""
    parts = DIVIDER_RE.split(response)
    count = len(parts)
    for i, part in enumerate(parts):
        if not part.strip():
            if 0 < i < len(parts) - 1:
                return False
            count -= 1
    return count == num_paragraphs


def _first_word(paragraph: str) -> str:
    """The paragraph's first word, lowercased, without opening quotes and cut at its first mark."""
    word = paragraph.split()[0].strip().lstrip("'").lstrip('"')
    out = []
    for ch in word:
        if ch in FIRST_WORD_END:
            break
        out.append(ch.lower())
    return "".join(out)


def nth_paragraph_first_word(
    response: str, *, num_paragraphs: int, nth_paragraph: int, first_word: str
) -> bool:
    """Exactly `num_paragraphs` non-empty paragraphs split at each '\\n\\n', and the n-th (1-based,
    counted among all parts, empty ones included) begins with `first_word` (case-insensitive)."""
    parts = response.split("\n\n")
    count = sum(1 for p in parts if p.strip())
    if nth_paragraph > count:
        return False
    paragraph = parts[nth_paragraph - 1].strip()
    if not paragraph:
        return False
    return count == num_paragraphs and _first_word(paragraph) == first_word.lower()


def number_sentences(response: str, *, num_sentences: int, relation: Relation) -> bool:
    """Fewer than / at least `num_sentences` sentences (NLTK Punkt, English)."""
    return relation.holds(len(punkt_sentences(response)), num_sentences)


def number_words(response: str, *, num_words: int, relation: Relation) -> bool:
    """Fewer than / at least `num_words` words (runs of word characters: "don't" is two)."""
    return relation.holds(len(ifeval_words(response)), num_words)
