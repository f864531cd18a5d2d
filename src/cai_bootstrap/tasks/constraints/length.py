"""length_constraints:* checkers (IFEval), defined as in Zhou et al. 2023, Table 1."""

from __future__ import annotations

import re

from .common import Relation, ifeval_words, paragraphs_by_blank_lines, sentences

# The markdown divider '***' standing alone (whitespace or the text's edge on both sides), so the
# asterisks of '***bold italic***' never split a paragraph.
DIVIDER_RE = re.compile(r"(?:^|(?<=\s))\*\*\*(?=\s|$)")
# Characters stripped from a paragraph's first word before it is compared ('"However,' -> however).
WORD_EDGE = "\"'`*_#([{<>}])-.,;:!?\u201c\u201d\u2018\u2019"


def number_paragraphs(response: str, *, num_paragraphs: int) -> bool:
    """Exactly `num_paragraphs` non-empty paragraphs separated by the markdown divider '***'.

    A divider at the very start or end is tolerated; two dividers in a row (an empty paragraph) fail.
    """
    parts = [p.strip() for p in DIVIDER_RE.split(response)]
    while parts and not parts[0]:
        parts.pop(0)
    while parts and not parts[-1]:
        parts.pop()
    return all(parts) and len(parts) == num_paragraphs


def nth_paragraph_first_word(
    response: str, *, num_paragraphs: int, nth_paragraph: int, first_word: str
) -> bool:
    """Exactly `num_paragraphs` paragraphs (split by blank lines) and the n-th (1-based) begins with
    `first_word` (case-insensitive, surrounding quotes and punctuation ignored)."""
    paras = paragraphs_by_blank_lines(response)
    if len(paras) != num_paragraphs or not 1 <= nth_paragraph <= len(paras):
        return False
    words = paras[nth_paragraph - 1].split()
    return bool(words) and words[0].strip(WORD_EDGE).lower() == first_word.strip(WORD_EDGE).lower()


def number_sentences(response: str, *, num_sentences: int, relation: Relation) -> bool:
    """Fewer than / at least `num_sentences` sentences (pysbd)."""
    return relation.holds(len(sentences(response)), num_sentences)


def number_words(response: str, *, num_words: int, relation: Relation) -> bool:
    """Fewer than / at least `num_words` words (runs of word characters, as IFEval counts them)."""
    return relation.holds(len(ifeval_words(response)), num_words)
