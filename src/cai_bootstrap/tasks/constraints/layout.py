"""detectable_format:*, startend:* and combination:* checkers (IFEval).

Definitions follow Zhou et al. 2023, Table 1; the docstrings say how each one reads the text.
"""

from __future__ import annotations

import json
import re

CONSTRAINED_OPTIONS = ("My answer is yes.", "My answer is no.", "My answer is maybe.")
# A markdown bullet: '*', '-' or '+' then whitespace then text ('**bold**' and '---' are not bullets).
BULLET_RE = re.compile(r"^[ \t]*[*+-][ \t]+\S", re.MULTILINE)
BOLD_RE = re.compile(r"\*\*([^\n*]*)\*\*")
ITALIC_RE = re.compile(r"\*([^\n*]*)\*")
TITLE_RE = re.compile(r"<<([^\n]*?)>>")
FENCE_RE = re.compile(r"^```[A-Za-z]*[ \t]*\n?(.*?)\n?```$", re.DOTALL)
RESPONSE_SEPARATOR = "******"


def constrained_response(response: str) -> bool:
    """The response contains one of the fixed answers ('My answer is yes.' / no. / maybe.)."""
    return any(option in response for option in CONSTRAINED_OPTIONS)


def json_format(response: str) -> bool:
    """The whole response parses as JSON, optionally inside one markdown code fence."""
    text = response.strip()
    fenced = FENCE_RE.match(text)
    if fenced:
        text = fenced.group(1)
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        return False
    return bool(text.strip())


def multiple_sections(response: str, *, section_spliter: str, num_sections: int) -> bool:
    """At least `num_sections` section headers '<spliter> <number>' (e.g. 'SECTION 1'), case as given."""
    if not section_spliter.strip():
        return False
    header = re.compile(rf"(?<!\w){re.escape(section_spliter.strip())}\s*\d+")
    return len(header.findall(response)) >= num_sections


def number_bullet_lists(response: str, *, num_bullets: int) -> bool:
    """Exactly `num_bullets` markdown bullet lines."""
    return len(BULLET_RE.findall(response)) == num_bullets


def number_highlighted_sections(response: str, *, num_highlights: int) -> bool:
    """At least `num_highlights` non-empty '*text*' or '**text**' spans, each on one line."""
    bold = [m for m in BOLD_RE.findall(response) if m.strip()]
    rest = BOLD_RE.sub(" ", response)
    italic = [m for m in ITALIC_RE.findall(rest) if m.strip()]
    return len(bold) + len(italic) >= num_highlights


def title(response: str) -> bool:
    """A non-empty title in double angular brackets on one line, e.g. '<<the sea>>'."""
    return any(t.strip() for t in TITLE_RE.findall(response))


def end_checker(response: str, *, end_phrase: str) -> bool:
    """The response ends with exactly this phrase (case-insensitive), nothing after it."""
    end = end_phrase.strip().lower()
    return bool(end) and response.strip().lower().endswith(end)


QUOTE_PAIRS = (('"', '"'), ("\u201c", "\u201d"))


def quotation(response: str) -> bool:
    """The whole response is wrapped in one pair of double quotation marks (straight or curly)."""
    text = response.strip()
    return len(text) > 1 and any(text[0] == a and text[-1] == b for a, b in QUOTE_PAIRS)


def repeat_prompt(response: str, *, prompt_to_repeat: str) -> bool:
    """The response begins with the request repeated word for word (case and spacing aside)."""
    want = " ".join(prompt_to_repeat.lower().split())
    head = " ".join(response.lower().split())
    return bool(want) and head.startswith(want)


def two_responses(response: str) -> bool:
    """Two different, non-empty answers separated by six asterisks ('******')."""
    parts = [p.strip() for p in response.split(RESPONSE_SEPARATOR)]
    # Empty parts are tolerated only at the ends (a separator written before or after both answers).
    while parts and not parts[0]:
        parts.pop(0)
    while parts and not parts[-1]:
        parts.pop()
    return len(parts) == 2 and all(parts) and parts[0] != parts[1]
