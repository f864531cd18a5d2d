"""Which constraints may be asked for together: no pair that contradicts itself or makes the other
impossible or ambiguous (lowercase + capital words, two word-count limits, JSON + bullet points).

Three rules, all symmetric: (1) two types that hold the same *slot* of the answer (its case, its
word count, its first or last characters, its list or paragraph layout) conflict; (2) the few
pairs named in PAIR_CONFLICTS conflict; (3) a type in EXCLUSIVE goes only with the types it lists.
`specs_compatible` adds checks on the arguments, e.g. a forbidden word that another constraint
requires.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from ...records import ConstraintSpec

CASE, WORDS, START, END, LIST, LAYOUT = "case", "word count", "start", "end", "list", "paragraph layout"
SENTENCES, COMMAS = "sentence count", "comma count"

SLOTS: dict[str, frozenset[str]] = {
    "change_case:capital_word_frequency": frozenset({CASE}),
    "change_case:english_capital": frozenset({CASE}),
    "change_case:english_lowercase": frozenset({CASE}),
    "length_constraints:number_words": frozenset({WORDS}),
    "cai:exact_words": frozenset({WORDS}),
    "cai:max_words": frozenset({WORDS}),
    "cai:word_range": frozenset({WORDS}),
    "startend:quotation": frozenset({START, END}),
    "cai:start_with": frozenset({START}),
    "combination:repeat_prompt": frozenset({START}),
    "length_constraints:nth_paragraph_first_word": frozenset({START, LAYOUT}),
    "startend:end_checker": frozenset({END}),
    "detectable_content:postscript": frozenset({END}),
    "cai:end_with_question": frozenset({END}),
    "detectable_format:number_bullet_lists": frozenset({LIST}),
    "cai:numbered_list": frozenset({LIST}),
    "length_constraints:number_paragraphs": frozenset({LAYOUT}),
    "detectable_format:multiple_sections": frozenset({LAYOUT}),
    "cai:single_paragraph": frozenset({LAYOUT}),
    # The transfer set (typegroups.TRANSFER_TYPES).
    "cai:max_chars": frozenset({WORDS}),
    "cai:exclaim_end": frozenset({END}),
    "cai:nth_word": frozenset({START}),
    "cai:same_first_last_word": frozenset({START, END}),
    "cai:same_first_last_sentence": frozenset({START, END}),
    "cai:acrostic": frozenset({START, LIST}),
    "cai:line_count": frozenset({LIST}),
    "cai:step_lines": frozenset({LIST}),
    "cai:labeled_lines": frozenset({LIST}),
    "cai:exact_sentences": frozenset({SENTENCES}),
    "length_constraints:number_sentences": frozenset({SENTENCES}),
    "cai:exact_commas": frozenset({COMMAS}),
    "punctuation:no_comma": frozenset({COMMAS}),
}

_KEYWORDS = frozenset(
    {"keywords:existence", "keywords:forbidden_words", "keywords:frequency", "keywords:letter_frequency"}
)
# A JSON document or a pair of alternative answers leaves no room for layout, edges or length rules.
EXCLUSIVE: dict[str, frozenset[str]] = {
    "detectable_format:json_format": _KEYWORDS
    | {"language:response_language", "detectable_content:number_placeholders", "cai:no_digits"},
    "combination:two_responses": _KEYWORDS
    | {
        "language:response_language",
        "detectable_content:number_placeholders",
        "change_case:english_capital",
        "change_case:english_lowercase",
        "punctuation:no_comma",
        "cai:no_digits",
    },
}


def _pairs(left: set[str], right: set[str]) -> set[frozenset[str]]:
    return {frozenset({a, b}) for a in left for b in right}


_ENGLISH_ONLY = {"change_case:english_capital", "change_case:english_lowercase"}
_CASE_TYPES = _ENGLISH_ONLY | {"change_case:capital_word_frequency"}
PAIR_CONFLICTS: frozenset[frozenset[str]] = frozenset(
    # The section word and the fixed answers are matched case-sensitively.
    _pairs(_CASE_TYPES, {"detectable_format:multiple_sections", "detectable_format:constrained_response"})
    # Another language rules out English-only answers and English words that must appear.
    | _pairs(
        {"language:response_language"},
        _ENGLISH_ONLY
        | {"keywords:existence", "keywords:frequency", "cai:start_with", "startend:end_checker"}
        | {"detectable_format:constrained_response", "combination:repeat_prompt"},
    )
    # A repeated request spends the word budget and brings its own letters, words and commas.
    | _pairs(
        {"combination:repeat_prompt"},
        set(t for t, s in SLOTS.items() if WORDS in s)
        | {"length_constraints:number_sentences", "punctuation:no_comma", "keywords:letter_frequency"},
    )
    # Section and list numbers are digits.
    | _pairs({"cai:no_digits"}, {"cai:numbered_list", "detectable_format:multiple_sections"})
    # Several paragraphs or sections do not fit in a tight word budget.
    | _pairs(
        {"cai:exact_words", "cai:max_words", "cai:max_chars"},
        {t for t, s in SLOTS.items() if LAYOUT in s} - {"cai:single_paragraph"},
    )
    # Transfer set: an exact sentence count leaves no room for list lines or several paragraphs
    # (a line break ends a sentence); digits, caps, accents and repeats as their names say.
    | _pairs(
        {"cai:exact_sentences"},
        {t for t, s in SLOTS.items() if LIST in s or LAYOUT in s} - {"cai:single_paragraph"},
    )
    | _pairs({"cai:no_digits"}, {"cai:digit_numbers", "cai:step_lines"})
    | _pairs(
        {"cai:line_count", "cai:acrostic"},
        {t for t, s in SLOTS.items() if LAYOUT in s} - {"cai:single_paragraph"},
    )
    | _pairs({"cai:keyword_caps"}, {"change_case:english_lowercase"})
    | _pairs({"cai:ascii_only"}, {"language:response_language"})
    | _pairs({"cai:max_word_repeats"}, {"keywords:frequency", "combination:repeat_prompt"})
    | _pairs({"cai:sentence_max_words", "cai:max_word_length"}, {"combination:repeat_prompt"})
    | _pairs({"cai:sentences_capitalized"}, {"change_case:english_lowercase"})
    | _pairs({"cai:markdown_headings"}, {"cai:single_paragraph", "cai:exact_words", "cai:max_words"})
)


def types_compatible(a: str, b: str) -> bool:
    """Whether constraint types `a` and `b` may appear in one instruction (never the same type twice)."""
    if a == b:
        return False
    if a in EXCLUSIVE and b not in EXCLUSIVE[a] or b in EXCLUSIVE and a not in EXCLUSIVE[b]:
        return False
    if SLOTS.get(a, frozenset()) & SLOTS.get(b, frozenset()):
        return False
    return frozenset({a, b}) not in PAIR_CONFLICTS


# Arguments holding text the answer must contain.
REQUIRED_TEXT = (
    "keywords",
    "keyword",
    "end_phrase",
    "start_phrase",
    "first_word",
    "prompt_to_repeat",
    "postscript_marker",
    "section_spliter",
    "word",
    "first",
    "second",
    "labels",
    "letters",
    "spell_word",
)


def required_text(spec: ConstraintSpec) -> list[str]:
    """The strings that a response following `spec` must contain."""
    out = []
    for key in REQUIRED_TEXT:
        value = spec.kwargs.get(key)
        out.extend(value if isinstance(value, list) else [value] if isinstance(value, str) else [])
    if spec.id == "keywords:frequency" and spec.kwargs.get("relation") == "less than":
        out = []  # "fewer than N times" does not require the word.
    return out


def _has_word(words: list[str], text: str) -> bool:
    return any(re.search(rf"(?<!\w){re.escape(w.lower())}(?!\w)", text) for w in words if w)


def _limits_keyword(spec: ConstraintSpec, needed: str) -> bool:
    # "at least N times" bans nothing; "fewer than N times" may clash with a phrase that needs it.
    # The keyword counts inside longer words too (IFEval's reference reads it as a pattern).
    keyword = spec.kwargs.get("keyword", "").strip().lower()
    return spec.kwargs.get("relation") == "less than" and bool(keyword) and keyword in needed


def _limits_letter(spec: ConstraintSpec, needed: str) -> bool:
    return spec.kwargs.get("let_relation") == "less than" and spec.kwargs.get("letter", "").lower() in needed


# For a type that forbids or limits something: whether it clashes with the text another needs.
ARGUMENT_CLASHES: dict[str, Callable[[ConstraintSpec, str], bool]] = {
    "keywords:forbidden_words": lambda spec, needed: _has_word(
        spec.kwargs.get("forbidden_words", []), needed
    ),
    "keywords:frequency": _limits_keyword,
    "keywords:letter_frequency": _limits_letter,
    "punctuation:no_comma": lambda spec, needed: "," in needed,
    "cai:no_digits": lambda spec, needed: any(c.isdigit() for c in needed),
    "cai:no_letter": lambda spec, needed: spec.kwargs.get("letter", "").lower() in needed,
    "cai:max_word_length": lambda spec, needed: any(
        len(w) > spec.kwargs.get("max_letters", 0) for w in re.findall(r"[^\W\d_]+", needed)
    ),
    # Either word alone is fine; another constraint that needs both makes it impossible.
    "cai:either_keyword": lambda spec, needed: all(
        _has_word([w], needed) for w in spec.kwargs.get("keywords", [])
    ),
    "cai:exact_commas": lambda spec, needed: needed.count(",") > spec.kwargs.get("num_commas", 0),
    "cai:question_count": lambda spec, needed: needed.count("?") > spec.kwargs.get("num_questions", 0),
}


def _arguments_clash(a: ConstraintSpec, b: ConstraintSpec) -> bool:
    """Whether `a`'s arguments forbid something that `b` requires."""
    clash = ARGUMENT_CLASHES.get(a.id)
    return clash is not None and clash(a, " ".join(required_text(b)).lower())


def specs_compatible(a: ConstraintSpec, b: ConstraintSpec) -> bool:
    """Type compatibility plus argument checks in both directions."""
    return types_compatible(a.id, b.id) and not _arguments_clash(a, b) and not _arguments_clash(b, a)
