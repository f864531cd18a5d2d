"""Text helpers shared by the checkers: relations, word and sentence counts, language detection.

Every helper accepts any string (empty, unicode, very long) and never raises on the text itself.
"""

from __future__ import annotations

import re
from enum import StrEnum
from functools import lru_cache

import pysbd
from langdetect import DetectorFactory, detect
from langdetect.lang_detect_exception import LangDetectException

# langdetect samples n-grams at random; a fixed seed makes every verdict reproducible. Google's
# reference fixes the same seed (0); lm-eval's port leaves it unset, so its verdicts on borderline
# text can change from run to run.
DetectorFactory.seed = 0

WORD_RE = re.compile(r"\w+")
# pysbd's rule cascade is roughly quadratic in the length of its input (2,000 sentences: 4 s), so
# long text is cut into pieces of about this many characters at a sentence-final mark first.
SENTENCE_CHUNK = 1500
_CUT_RE = re.compile(r"(?<=[.!?])\s+")


class Relation(StrEnum):
    """IFEval's two comparison words, with the comparison they mean (Zhou et al. 2023, Table 1)."""

    LESS_THAN = "less than"
    AT_LEAST = "at least"

    def holds(self, count: int, n: int) -> bool:
        return count < n if self is Relation.LESS_THAN else count >= n


def ifeval_words(text: str) -> list[str]:
    """Words as IFEval counts them: runs of word characters ("don't" is two words), found by NLTK's
    RegexpTokenizer as the reference does (NLTK >= 3.10 matches with the `regex` engine, whose
    Unicode tables are newer than `re`'s, so `re.findall` would split some rare letters)."""
    return _word_tokenizer().tokenize(text)


@lru_cache(maxsize=1)
def _word_tokenizer():
    # Imported on first use: importing nltk loads scipy.stats (seconds), which most commands never need.
    from nltk.tokenize import RegexpTokenizer

    return RegexpTokenizer(r"\w+")


def plain_words(text: str) -> list[str]:
    """Words as a reader counts them: whitespace-separated tokens holding at least one word character.

    Our own `cai:` length types use this, so "don't" and "3.5" are one word each.
    """
    return [t for t in text.split() if WORD_RE.search(t)]


@lru_cache(maxsize=1)
def _segmenter() -> pysbd.Segmenter:
    return pysbd.Segmenter(language="en", clean=False)


def _chunks(line: str) -> list[str]:
    """Cut one long line into pieces of about SENTENCE_CHUNK characters at sentence-final marks."""
    if len(line) <= SENTENCE_CHUNK:
        return [line]
    pieces, start = [], 0
    for m in _CUT_RE.finditer(line):
        if m.start() - start >= SENTENCE_CHUNK:
            pieces.append(line[start : m.start()])
            start = m.end()
    pieces.append(line[start:])
    return pieces


def sentences(text: str) -> list[str]:
    """Sentences by pysbd, run line by line: a line break always ends a sentence (list items, titles).

    Our curriculum cuts text with it; the IFEval checker counts NLTK Punkt sentences (tokens.py)."""
    out = []
    for line in text.splitlines():
        for piece in _chunks(line):
            if piece.strip():
                out.extend(s for s in _segmenter().segment(piece) if WORD_RE.search(s))
    return out


def paragraphs_by_blank_lines(text: str) -> list[str]:
    """Non-empty paragraphs, where a paragraph ends at a line that is empty or only whitespace."""
    return [p.strip() for p in re.split(r"\n[ \t\r\f\v]*\n", text) if p.strip()]


def reference_language(text: str) -> str | None:
    """langdetect's verdict on the text as written (the IFEval reference does not lowercase it), or
    None where langdetect finds nothing to judge (digits, punctuation, emoji only)."""
    try:
        return detect(text)
    except LangDetectException:
        return None


def word_pattern(phrase: str) -> re.Pattern[str]:
    """A case-insensitive pattern for `phrase` as a whole word or words (not inside a longer word)."""
    body = r"\s+".join(re.escape(p) for p in phrase.split())
    return re.compile(rf"(?<!\w){body}(?!\w)", re.IGNORECASE)


def count_phrase(text: str, phrase: str) -> int:
    if not phrase.split():
        return 0
    return len(word_pattern(phrase).findall(text))


def starts_with_phrase(text: str, phrase: str) -> bool:
    """True when the stripped text opens with `phrase` (case-insensitive) followed by a non-word char."""
    head, phrase = text.strip().lower(), " ".join(phrase.lower().split())
    if not phrase:
        return False
    head = " ".join(head.split(maxsplit=len(phrase.split()) + 1))
    if not head.startswith(phrase) or len(head) == len(phrase):
        return head.startswith(phrase)
    # "Sure" must not match "Surely"; a phrase ending in punctuation needs no boundary after it.
    return not (phrase[-1].isalnum() and head[len(phrase)].isalnum())
