"""Our own `cai:` checkers for curriculum stages 2-4: answers to questions, A/B choices, yes/no verdicts.

`contains_answer` checks content (a short factual or reading-comprehension answer); `choice` and
`yes_no` read the verdict that opens an evaluation answer. Like every checker they accept any text
and never raise on it; a malformed argument (a label other than A/B) is a UserError.
"""

from __future__ import annotations

import re

from ...errors import UserError
from .common import count_phrase

LABELS = ("A", "B")
VERDICTS = ("yes", "no")
# Markup and quotes that may wrap a verdict: '**A**', '"Yes."', '[B]'.
WRAP = "\"'*_`([{ \t\n\u201c\u2018"
# What may open an A/B answer before the label: 'Answer A', 'The better reply is: B', 'I choose A'.
CHOICE_LEAD = re.compile(
    r"(?:(?:the\s+|my\s+)?(?:better\s+|best\s+|correct\s+|right\s+)?"
    r"(?:answer|response|reply|option|choice|one)(?:\s+is)?|i\s+(?:choose|pick|prefer|would\s+pick)"
    r"|verdict)\s*[:\-]?\s*",
    re.IGNORECASE,
)
YES_NO_LEAD = re.compile(r"(?:(?:the\s+|my\s+)?answer(?:\s+is)?|verdict)\s*[:\-]?\s*", re.IGNORECASE)
# After the label: the end, punctuation, or a word that continues a verdict ('A is better',
# 'A because ...'). Anything else ('A better answer is B') reads as the article, not the label.
LABEL_END = re.compile(
    r"[\"'*_`)\]}]*(?:\s*$|\s*[.,:;!?)\-\u2013\u2014/&+]|[ \t]*\n"
    r"|\s+(?:is|was|seems|looks|wins|follows|does|fits|meets|because|since|as|and|or|clearly)\b)"
)
# A hedge that names both options right after the first: 'A or B', 'A and B', 'A/B', 'A, B'.
HEDGE = r"[\s\"'*_`)\]}]*(?:,|/|&|\+|\band\b|\bor\b|\bthen\b)?[\s\"'*_`(\[{]*{other}(?!\w)"


def contains_answer(response: str, *, answers: list[str]) -> bool:
    """Some accepted answer occurs as whole words (case- and whitespace-insensitive)."""
    return any(count_phrase(response, a) > 0 for a in answers)


def _strip_lead(text: str, lead: re.Pattern[str]) -> str:
    text = text.lstrip(WRAP)
    m = lead.match(text)
    return text[m.end() :].lstrip(WRAP) if m else text


def choice(response: str, *, label: str) -> bool:
    """The answer opens with the verdict `label` (A or B): 'A', '(A)', 'Answer A', 'A.', 'Reply B is
    better'; an answer that names both as its verdict ('A or B', 'A and B') fails. A reason that
    mentions the other answer later ('A, because B has a comma') is fine."""
    if label not in LABELS:
        raise UserError(f"cai:choice label {label!r} is not A or B", 'use label "A" or "B"')
    other = LABELS[1 - LABELS.index(label)]
    for text in (response.lstrip(WRAP), _strip_lead(response, CHOICE_LEAD)):
        if not text.startswith(label):
            continue
        rest = text[len(label) :]
        if LABEL_END.match(rest) and not re.match(HEDGE.replace("{other}", other), rest):
            return True
    return False


def yes_no(response: str, *, answer: str) -> bool:
    """The answer opens with `answer` ('yes' or 'no', any case, markup and 'Answer:' aside) as a whole
    word, and is not a hedge such as 'Yes and no' or 'No or yes'."""
    want = answer.strip().lower()
    if want not in VERDICTS:
        raise UserError(f"cai:yes_no answer {answer!r} is not yes or no", 'use answer "yes" or "no"')
    other = VERDICTS[1 - VERDICTS.index(want)]
    text = _strip_lead(response, YES_NO_LEAD)
    m = re.match(r"(\w+)", text)
    if not m or m.group(1).lower() != want:
        return False
    # Only a joined pair is a hedge: 'Yes, no commas are used.' is a plain yes.
    hedge = re.compile(rf"[\s,\"'*_`]*(?:\band\b|\bor\b|/)\s*{other}\b", re.IGNORECASE)
    return not hedge.match(text[m.end() :])
