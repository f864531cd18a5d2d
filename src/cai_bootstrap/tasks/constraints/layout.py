"""detectable_format:*, startend:* and combination:* checkers (IFEval).

Each one scores as the reference implementation does (Google's instruction_following_eval, as
ported to lm-eval's `ifeval` task), quirks included; the docstrings say how each one reads the text.
"""

from __future__ import annotations

import json
import re

from . import bounded

CONSTRAINED_OPTIONS = ("My answer is yes.", "My answer is no.", "My answer is maybe.")
# The reference's bullets: a line opening with '*' not followed by another '*' ('*text' counts,
# '**bold**' does not), or with '-' (so '---' and '-text' count too).
STAR_BULLET_RE = re.compile(r"^\s*\*[^\*].*$", re.MULTILINE)
DASH_BULLET_RE = re.compile(r"^\s*-.*$", re.MULTILINE)
HIGHLIGHT_RE = re.compile(r"\*[^\n\*]*\*")
DOUBLE_HIGHLIGHT_RE = re.compile(r"\*\*[^\n\*]*\*\*")
TITLE_RE = re.compile(r"<<[^\n]+>>")
# Removed in this order, each at most once, before parsing: a '```python' fence stays and fails.
JSON_FENCES = ("```json", "```Json", "```JSON", "```")
RESPONSE_SEPARATOR = "******"


def constrained_response(response: str) -> bool:
    """The response contains one of the fixed answers ('My answer is yes.' / no. / maybe.)."""
    text = response.strip()
    return any(option in text for option in CONSTRAINED_OPTIONS)


def json_format(response: str) -> bool:
    """The response parses as JSON once the fence openings of JSON_FENCES (in turn) and one closing
    '```' are removed."""
    text = response.strip()
    for fence in JSON_FENCES:
        text = text.removeprefix(fence)
    text = text.removesuffix("```").strip()
    try:
        json.loads(text)
    except ValueError:
        return False
    except RecursionError:  # the reference crashes on very deep nesting; we call it not JSON
        return False
    return True


def multiple_sections(response: str, *, section_spliter: str, num_sections: int) -> bool:
    """At least `num_sections` headers '<spliter> <number>' (the spliter is a case-sensitive regular
    expression, found anywhere: 'SUBSECTION 1' counts for 'SECTION')."""
    pattern = r"\s?" + section_spliter.strip() + r"\s?\d+\s?"
    return len(bounded.split(pattern, response)) - 1 >= num_sections


def number_bullet_lists(response: str, *, num_bullets: int) -> bool:
    """Exactly `num_bullets` bullet lines ('*' or '-' first, with or without a space after it)."""
    found = len(STAR_BULLET_RE.findall(response)) + len(DASH_BULLET_RE.findall(response))
    return found == num_bullets


def number_highlighted_sections(response: str, *, num_highlights: int) -> bool:
    """At least `num_highlights` highlights: each non-blank '*text*' on one line counts, and each
    non-blank '**text**' counts once more ('***x***' counts as well)."""
    single = sum(1 for h in HIGHLIGHT_RE.findall(response) if h.strip("*").strip())
    double = sum(
        1 for h in DOUBLE_HIGHLIGHT_RE.findall(response) if h.removeprefix("**").removesuffix("**").strip()
    )
    return single + double >= num_highlights


def title(response: str) -> bool:
    """A title in double angular brackets on one line, e.g. '<<the sea>>', with some text in it."""
    return any(t.lstrip("<").rstrip(">").strip() for t in TITLE_RE.findall(response))


def end_checker(response: str, *, end_phrase: str) -> bool:
    """The response ends with the phrase (case-insensitive; closing straight quotes aside)."""
    # An empty phrase is no instruction (the reference would draw a random one).
    end = end_phrase.strip().lower()
    return bool(end_phrase) and response.strip().strip('"').lower().endswith(end)


def quotation(response: str) -> bool:
    """The whole response is wrapped in straight double quotes ('"...'); curly quotes do not count."""
    text = response.strip()
    return len(text) > 1 and text[0] == '"' and text[-1] == '"'


def repeat_prompt(response: str, *, prompt_to_repeat: str) -> bool:
    """The response begins with the request repeated exactly (case and outer spaces aside)."""
    # An empty request is no instruction (the reference refuses it).
    want = prompt_to_repeat.strip().lower()
    return bool(prompt_to_repeat) and response.strip().lower().startswith(want)


def two_responses(response: str) -> bool:
    """Two different answers separated by six asterisks ('******'); an empty part is allowed only
    before the first or after the last separator."""
    answers = []
    parts = response.split(RESPONSE_SEPARATOR)
    for i, part in enumerate(parts):
        if part.strip():
            answers.append(part)
        elif 0 < i < len(parts) - 1:
            return False
    return len(answers) == 2 and answers[0].strip() != answers[1].strip()
