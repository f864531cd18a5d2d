"""Our own `cai:` structure types (transfer set): labelled lines, headings, asides, quotes, steps.

Designed for this project (issue 26). Every checker accepts any string and never raises on it.
"""

from __future__ import annotations

import re

# Markup that may open a line before its label or heading: bullets, bold, spaces.
_LEAD = r"^[ \t>*_\-]*"
HEADING_RE = re.compile(r"^[ \t]{0,3}#{1,6}[ \t]+\S", re.MULTILINE)
# An aside in round brackets with at least one letter in it: '(for example)' yes, '(1)' no.
PAREN_RE = re.compile(r"\([^()\n]*[^\W\d_][^()\n]*\)")
# A quoted phrase on one line, straight or curly quotes, with a word character inside.
QUOTE_RE = re.compile(r'"([^"\n]*\w[^"\n]*)"|\u201c([^\u201c\u201d\n]*\w[^\u201c\u201d\n]*)\u201d')
STEP_RE = re.compile(_LEAD + r"step[ \t]+(\d{1,3})[*_]*[ \t]*[:.)\-]", re.IGNORECASE | re.MULTILINE)


def _label_line(label: str) -> re.Pattern[str]:
    body = r"\s+".join(re.escape(p) for p in label.split())
    return re.compile(_LEAD + body + r"[*_]*[ \t]*:[*_]*[ \t]*\S", re.IGNORECASE | re.MULTILINE)


def labeled_lines(response: str, *, labels: list[str]) -> bool:
    """For each label, in the given order, a line that opens with 'Label:' and goes on with text
    on the same line (any case; bullets or bold around the label are fine)."""
    if not labels or not all(label.split() for label in labels):
        return False
    pos = 0
    for label in labels:
        m = _label_line(label).search(response, pos)
        if m is None:
            return False
        pos = m.end()
    return True


def markdown_headings(response: str, *, num_headings: int) -> bool:
    """Exactly `num_headings` markdown headings: lines opening with 1-6 '#' and a space."""
    return bool(response.strip()) and len(HEADING_RE.findall(response)) == num_headings


def parenthetical(response: str) -> bool:
    """An aside in round brackets that holds a word, on one line: '(as a rule)'."""
    return PAREN_RE.search(response) is not None


def quoted_phrases(response: str, *, num_quotes: int) -> bool:
    """At least `num_quotes` phrases in double quotes (straight or curly), each on one line."""
    return len(QUOTE_RE.findall(response)) >= num_quotes


def step_lines(response: str, *, num_steps: int) -> bool:
    """Exactly `num_steps` lines opening with 'Step N:' (or 'Step N.'), numbered 1, 2, ... in order."""
    numbers = [int(n) for n in STEP_RE.findall(response)]
    return numbers == list(range(1, num_steps + 1))
