"""The verifiable-constraint library: every IFEval instruction type plus our own `cai:` types.

`check(instruction_id, kwargs, response)` answers whether a response follows one instruction.
Ids and keyword-argument names are IFEval's (Zhou et al. 2023). Under an IFEval id a checker scores
exactly as the reference implementation does (Google's instruction_following_eval and its port in
lm-eval's `ifeval` task), quirks included, since they define the benchmark; tests/test_ifeval_oracle.py
compares the two. Where we want a stricter reading for our own training data, it lives under a
`cai:` id (e.g. `cai:contains_answer` matches whole words), never under an IFEval id.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from enum import Enum
from typing import Any, NamedTuple

from ...errors import UserError
from . import cai, case, chars, content, copying, counting, curriculum, layout, length, positions, structure
from .common import Relation


class Param(Enum):
    """The kinds of checker argument, each knowing how to validate a value read from JSON."""

    INT = "int"
    TEXT = "text"
    WORDS = "words"
    RELATION = "relation"
    # IFEval's keyword arguments, which its reference reads as regular expressions.
    PATTERN = "pattern"
    PATTERNS = "patterns"
    # One ASCII letter: the reference draws a random letter for anything else.
    LETTER = "letter"
    # A language code the reference knows (it fails on any other).
    LANGUAGE = "language"

    def coerce(self, name: str, value: Any) -> Any:
        match self:
            case Param.INT:
                if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
                    raise UserError(f"argument {name}={value!r} is not a whole number", "use an integer")
                if value < 0:  # the reference draws a random number in place of a negative one
                    raise UserError(f"argument {name}={value!r} is negative", "use a number >= 0")
                return int(value)
            case Param.PATTERN:
                return _pattern(name, Param.TEXT.coerce(name, value))
            case Param.PATTERNS:
                return [_pattern(name, v) for v in Param.WORDS.coerce(name, value)]
            case Param.LETTER:
                text = Param.TEXT.coerce(name, value)
                if len(text) != 1 or not ("a" <= text.lower() <= "z"):
                    raise UserError(f"argument {name}={value!r} is not one letter", "use one letter a-z")
                return text
            case Param.LANGUAGE:
                text = Param.TEXT.coerce(name, value)
                if text not in IFEVAL_LANGUAGES:
                    raise UserError(
                        f"argument {name}={value!r} is not a language IFEval knows",
                        f"use one of: {', '.join(sorted(IFEVAL_LANGUAGES))}",
                    )
                return text
            case Param.TEXT:
                if not isinstance(value, str):
                    raise UserError(f"argument {name}={value!r} is not a string", "use a string")
                return value
            case Param.WORDS:
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise UserError(f"argument {name}={value!r} is not a list of strings", "use a list")
                return value
            case Param.RELATION:
                try:
                    return Relation(value)
                except ValueError as e:
                    raise UserError(
                        f"argument {name}={value!r} is not a relation", 'use "less than" or "at least"'
                    ) from e


# The ISO 639-1 codes that IFEval's reference accepts for language:response_language.
IFEVAL_LANGUAGES = frozenset(
    "en es pt ar hi fr ru de ja it bn uk th ur ta te bg ko pl he fa vi ne sw kn mr gu pa ml fi".split()
)


def _pattern(name: str, text: str) -> str:
    """A keyword as the reference reads it: a non-empty regular expression ('c(' is an error)."""
    if not text.strip():
        raise UserError(f"argument {name}={text!r} is empty", "give a word")
    try:
        re.compile(text.strip())
    except re.error as e:
        raise UserError(
            f"argument {name}={text!r} is not a valid regular expression ({e})",
            "IFEval reads keywords as regular expressions: escape special characters",
        ) from e
    return text


class Checker(NamedTuple):
    fn: Callable[..., bool]
    params: dict[str, Param] = {}
    # The argument that the instruction's own prompt stands in for when a file leaves it out.
    prompt_param: str | None = None


N, T, W, R = Param.INT, Param.TEXT, Param.WORDS, Param.RELATION
P, PS, L, LANG = Param.PATTERN, Param.PATTERNS, Param.LETTER, Param.LANGUAGE

CHECKERS: dict[str, Checker] = {
    "change_case:capital_word_frequency": Checker(
        case.capital_word_frequency, {"capital_frequency": N, "capital_relation": R}
    ),
    "change_case:english_capital": Checker(case.english_capital),
    "change_case:english_lowercase": Checker(case.english_lowercase),
    "combination:repeat_prompt": Checker(layout.repeat_prompt, {"prompt_to_repeat": T}, "prompt_to_repeat"),
    "combination:two_responses": Checker(layout.two_responses),
    "detectable_content:number_placeholders": Checker(content.number_placeholders, {"num_placeholders": N}),
    "detectable_content:postscript": Checker(content.postscript, {"postscript_marker": P}),
    "detectable_format:constrained_response": Checker(layout.constrained_response),
    "detectable_format:json_format": Checker(layout.json_format),
    "detectable_format:multiple_sections": Checker(
        layout.multiple_sections, {"section_spliter": P, "num_sections": N}
    ),
    "detectable_format:number_bullet_lists": Checker(layout.number_bullet_lists, {"num_bullets": N}),
    "detectable_format:number_highlighted_sections": Checker(
        layout.number_highlighted_sections, {"num_highlights": N}
    ),
    "detectable_format:title": Checker(layout.title),
    "keywords:existence": Checker(content.keyword_existence, {"keywords": PS}),
    "keywords:forbidden_words": Checker(content.forbidden_words, {"forbidden_words": PS}),
    "keywords:frequency": Checker(content.keyword_frequency, {"keyword": P, "frequency": N, "relation": R}),
    "keywords:letter_frequency": Checker(
        content.letter_frequency, {"letter": L, "let_frequency": N, "let_relation": R}
    ),
    "language:response_language": Checker(content.response_language, {"language": LANG}),
    "length_constraints:nth_paragraph_first_word": Checker(
        length.nth_paragraph_first_word, {"num_paragraphs": N, "nth_paragraph": N, "first_word": T}
    ),
    "length_constraints:number_paragraphs": Checker(length.number_paragraphs, {"num_paragraphs": N}),
    "length_constraints:number_sentences": Checker(
        length.number_sentences, {"num_sentences": N, "relation": R}
    ),
    "length_constraints:number_words": Checker(length.number_words, {"num_words": N, "relation": R}),
    "punctuation:no_comma": Checker(content.no_comma),
    "startend:end_checker": Checker(layout.end_checker, {"end_phrase": T}),
    "startend:quotation": Checker(layout.quotation),
    "cai:exact_words": Checker(cai.exact_words, {"num_words": N}),
    "cai:max_words": Checker(cai.max_words, {"max_words": N}),
    "cai:word_range": Checker(cai.word_range, {"min_words": N, "max_words": N}),
    "cai:start_with": Checker(cai.start_with, {"start_phrase": T}),
    "cai:numbered_list": Checker(cai.numbered_list, {"num_items": N}),
    "cai:end_with_question": Checker(cai.end_with_question),
    "cai:single_paragraph": Checker(cai.single_paragraph),
    "cai:no_digits": Checker(cai.no_digits),
    "cai:contains_answer": Checker(curriculum.contains_answer, {"answers": W}),
    "cai:choice": Checker(curriculum.choice, {"label": T}),
    "cai:yes_no": Checker(curriculum.yes_no, {"answer": T}),
    # The transfer set (issue 26): our own types, none of them IFEval's; see tasks/typegroups.py.
    "cai:no_letter": Checker(chars.no_letter, {"letter": L}),
    "cai:max_chars": Checker(chars.max_chars, {"max_chars": N}),
    "cai:ascii_only": Checker(chars.ascii_only),
    "cai:max_word_length": Checker(chars.max_word_length, {"max_letters": N}),
    "cai:exclaim_end": Checker(chars.exclaim_end),
    "cai:sentences_capitalized": Checker(chars.sentences_capitalized),
    "cai:alliteration": Checker(chars.alliteration, {"letter": L, "min_words": N}),
    "cai:exact_sentences": Checker(counting.exact_sentences, {"num_sentences": N}),
    "cai:sentence_max_words": Checker(counting.sentence_max_words, {"max_words": N}),
    "cai:max_word_repeats": Checker(counting.max_word_repeats, {"max_repeats": N}),
    "cai:exact_commas": Checker(counting.exact_commas, {"num_commas": N}),
    "cai:question_count": Checker(counting.question_count, {"num_questions": N}),
    "cai:line_count": Checker(counting.line_count, {"num_lines": N}),
    "cai:digit_numbers": Checker(counting.digit_numbers, {"min_numbers": N}),
    "cai:keyword_first_sentence": Checker(positions.keyword_first_sentence, {"keyword": T}),
    "cai:keyword_last_sentence": Checker(positions.keyword_last_sentence, {"keyword": T}),
    "cai:keyword_order": Checker(positions.keyword_order, {"first": T, "second": T}),
    "cai:nth_word": Checker(positions.nth_word, {"position": N, "word": T}),
    "cai:same_first_last_word": Checker(positions.same_first_last_word),
    "cai:acrostic": Checker(positions.acrostic, {"letters": T}),
    "cai:labeled_lines": Checker(structure.labeled_lines, {"labels": W}),
    "cai:markdown_headings": Checker(structure.markdown_headings, {"num_headings": N}),
    "cai:parenthetical": Checker(structure.parenthetical),
    "cai:quoted_phrases": Checker(structure.quoted_phrases, {"num_quotes": N}),
    "cai:step_lines": Checker(structure.step_lines, {"num_steps": N}),
    "cai:keyword_caps": Checker(copying.keyword_caps, {"keyword": T}),
    "cai:spelled_out": Checker(copying.spelled_out, {"spell_word": T}),
    "cai:bracketed_keyword": Checker(copying.bracketed_keyword, {"keyword": T}),
    "cai:same_first_last_sentence": Checker(copying.same_first_last_sentence),
    "cai:either_keyword": Checker(copying.either_keyword, {"keywords": W}),
}


def checker_kwargs(instruction_id: str, kwargs: dict[str, Any] | None, prompt: str = "") -> dict[str, Any]:
    """Validated checker arguments: None values dropped (IFEval files carry many), the rest coerced.

    An unknown id, an unknown non-None key or a missing argument is a UserError naming it.
    """
    checker = CHECKERS.get(instruction_id)
    if checker is None:
        raise UserError(f"unknown instruction id {instruction_id!r}", f"use one of: {', '.join(CHECKERS)}")
    given = {k: v for k, v in (kwargs or {}).items() if v is not None}
    unknown = sorted(set(given) - set(checker.params))
    if unknown:
        raise UserError(
            f"{instruction_id} takes no argument {unknown[0]!r}", f"it takes {list(checker.params)}"
        )
    # The reference drops 0, "" and [] along with None, then draws a random value for a missing
    # argument: such a value defines no IFEval score.
    empty = [k for k, v in given.items() if not instruction_id.startswith("cai:") and v in (0, "", [])]
    if empty:
        raise UserError(
            f"{instruction_id} argument {empty[0]}={given[empty[0]]!r} is empty or zero",
            "IFEval's reference ignores such a value and draws a random one: give a real value",
        )
    if checker.prompt_param and checker.prompt_param not in given and prompt.strip():
        given[checker.prompt_param] = prompt
    missing = [k for k in checker.params if k not in given]
    if missing:
        raise UserError(f"{instruction_id} needs argument {missing[0]!r}", f"it takes {list(checker.params)}")
    args = {k: checker.params[k].coerce(k, v) for k, v in given.items()}
    # The reference draws a random paragraph number for one outside 1..num_paragraphs.
    if "nth_paragraph" in args and not 1 <= args["nth_paragraph"] <= args["num_paragraphs"]:
        raise UserError(
            f"{instruction_id}: nth_paragraph={args['nth_paragraph']} is not within 1..num_paragraphs",
            "use a paragraph number between 1 and num_paragraphs",
        )
    return args


def loose_variants(response: str) -> list[str]:
    """The paper's loose-mode variants (Zhou et al. 2023, Sec. 3) as the reference builds them: the
    response, and without its first line, its last line or both (these three stripped), and each of
    the four with every '*' removed."""
    lines = response.split("\n")
    cut = ["\n".join(lines[1:]), "\n".join(lines[:-1]), "\n".join(lines[1:-1])]
    variants = [response] + [text.strip() for text in cut]
    return variants + [text.replace("*", "") for text in variants]


def check(
    instruction_id: str, kwargs: dict[str, Any] | None, response: str, prompt: str = "", loose: bool = False
) -> bool:
    """Whether `response` follows the instruction; an empty (whitespace-only) answer follows none.

    Loose mode passes when any of `loose_variants(response)` passes.
    """
    args = checker_kwargs(instruction_id, kwargs, prompt)
    fn = CHECKERS[instruction_id].fn
    variants = loose_variants(response) if loose else [response]
    return any(text.strip() and fn(text, **args) for text in variants)


__all__ = ["CHECKERS", "Checker", "Param", "Relation", "check", "checker_kwargs", "loose_variants"]


def check_instruction(instruction, response: str, loose: bool = False) -> list[bool]:
    """`check` for each constraint of an `Instruction`, in order. The one place training answers and
    evaluation answers are checked, so both see the same arguments (the prompt stands in for a
    missing prompt_to_repeat; IFEval's files always give it, and its reference refuses a row without)."""
    return [
        check(c.id, c.kwargs, response, prompt=instruction.prompt, loose=loose)
        for c in instruction.constraints
    ]
