"""The verifiable-constraint library: every IFEval instruction type plus our own `cai:` types.

`check(instruction_id, kwargs, response)` answers whether a response follows one instruction.
Ids and keyword-argument names are IFEval's (Zhou et al. 2023), so IFEval-format files score
unchanged; the checkers are our own reading of the paper's definitions (see each docstring).
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import Any, NamedTuple

from ...errors import UserError
from . import cai, case, content, curriculum, layout, length
from .common import Relation


class Param(Enum):
    """The kinds of checker argument, each knowing how to validate a value read from JSON."""

    INT = "int"
    TEXT = "text"
    WORDS = "words"
    RELATION = "relation"

    def coerce(self, name: str, value: Any) -> Any:
        match self:
            case Param.INT:
                if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
                    raise UserError(f"argument {name}={value!r} is not a whole number", "use an integer")
                return int(value)
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


class Checker(NamedTuple):
    fn: Callable[..., bool]
    params: dict[str, Param] = {}
    # The argument that the instruction's own prompt stands in for when a file leaves it out.
    prompt_param: str | None = None


N, T, W, R = Param.INT, Param.TEXT, Param.WORDS, Param.RELATION

CHECKERS: dict[str, Checker] = {
    "change_case:capital_word_frequency": Checker(
        case.capital_word_frequency, {"capital_frequency": N, "capital_relation": R}
    ),
    "change_case:english_capital": Checker(case.english_capital),
    "change_case:english_lowercase": Checker(case.english_lowercase),
    "combination:repeat_prompt": Checker(layout.repeat_prompt, {"prompt_to_repeat": T}, "prompt_to_repeat"),
    "combination:two_responses": Checker(layout.two_responses),
    "detectable_content:number_placeholders": Checker(content.number_placeholders, {"num_placeholders": N}),
    "detectable_content:postscript": Checker(content.postscript, {"postscript_marker": T}),
    "detectable_format:constrained_response": Checker(layout.constrained_response),
    "detectable_format:json_format": Checker(layout.json_format),
    "detectable_format:multiple_sections": Checker(
        layout.multiple_sections, {"section_spliter": T, "num_sections": N}
    ),
    "detectable_format:number_bullet_lists": Checker(layout.number_bullet_lists, {"num_bullets": N}),
    "detectable_format:number_highlighted_sections": Checker(
        layout.number_highlighted_sections, {"num_highlights": N}
    ),
    "detectable_format:title": Checker(layout.title),
    "keywords:existence": Checker(content.keyword_existence, {"keywords": W}),
    "keywords:forbidden_words": Checker(content.forbidden_words, {"forbidden_words": W}),
    "keywords:frequency": Checker(content.keyword_frequency, {"keyword": T, "frequency": N, "relation": R}),
    "keywords:letter_frequency": Checker(
        content.letter_frequency, {"letter": T, "let_frequency": N, "let_relation": R}
    ),
    "language:response_language": Checker(content.response_language, {"language": T}),
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
    if checker.prompt_param and checker.prompt_param not in given and prompt.strip():
        given[checker.prompt_param] = prompt
    missing = [k for k in checker.params if k not in given]
    if missing:
        raise UserError(f"{instruction_id} needs argument {missing[0]!r}", f"it takes {list(checker.params)}")
    return {k: checker.params[k].coerce(k, v) for k, v in given.items()}


def loose_variants(response: str) -> list[str]:
    """The paper's loose-mode variants (Zhou et al. 2023, Sec. 3): the response, without its first
    line, without its last line, without both, and each of these with markdown '*' removed."""
    lines = response.split("\n")
    cut = [response, "\n".join(lines[1:]), "\n".join(lines[:-1]), "\n".join(lines[1:-1])]
    return cut + [text.replace("*", "") for text in cut]


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
    evaluation answers are checked, so both see the same arguments (the prompt stands in for
    prompt_to_repeat, as in IFEval)."""
    return [
        check(c.id, c.kwargs, response, prompt=instruction.prompt, loose=loose)
        for c in instruction.constraints
    ]
