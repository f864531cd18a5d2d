"""Deliberately broken answers: a passing answer edited so that one chosen constraint fails.

Stage 4 pairs an answer that passes with its broken twin ("which is better?", "does it follow?") and
stage 5 asks for the twin to be repaired. The edit is small and specific to the constraint (add a
comma for no_comma, drop the end phrase, append digits), so the two answers differ in what the
constraint checks and little else. Every edit is confirmed by the checker: a breaker whose result
still passes counts as no break.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from typing import Any

from ...records import ConstraintSpec, Instruction
from ..constraints.common import sentences, word_pattern
from .common import passes

FILLER = (
    "This part adds a little more detail to the answer.",
    "There is one more thing worth saying here as well.",
    "Some people find this point interesting too.",
    "It helps to keep this in mind for later.",
)
CAPS_WORDS = ("VERY", "IMPORTANT", "NOTE", "REALLY", "TRULY", "ALWAYS", "NEVER", "CLEAR")

Breaker = Callable[[str, dict[str, Any], random.Random], str | None]


def _append(text: str, extra: str) -> str:
    return f"{text.rstrip()} {extra}"


def _filler(rng: random.Random, n_words: int) -> str:
    """At least n_words words of neutral filler sentences."""
    out: list[str] = []
    while len(" ".join(out).split()) < n_words:
        out.append(rng.choice(FILLER))
    return " ".join(out)


def _add_comma(text, kw, rng):
    """A comma where a writer might put one: before a joining word, else in an added sentence."""
    for joiner in (" and ", " but ", " so ", " while ", " because "):
        if joiner in text:
            return text.replace(joiner, f",{joiner}", 1)
    return _append(text, "In short, that is the answer.")


def _one_capital(text, kw, rng):
    return re.sub(r"[a-z]", lambda m: m.group(0).upper(), text, count=1)


def _lower_words(text, kw, rng):
    return text.capitalize()


def _capital_words(text, kw, rng):
    if kw["capital_relation"] == "at least":
        return _lower_words(text, kw, rng)
    return _append(text, " ".join(rng.choice(CAPS_WORDS) for _ in range(kw["capital_frequency"])) + ".")


def _drop_end(text, kw, rng):
    phrase = kw["end_phrase"].strip()
    cut = text.rstrip()
    return (
        cut[: -len(phrase)].rstrip() if phrase and cut.endswith(phrase) else _append(text, rng.choice(FILLER))
    )


def _unquote(text, kw, rng):
    return text.strip().strip('"\u201c\u201d')


def _remove_words(text: str, words: list[str]) -> str:
    """The text without any whole-word occurrence of `words`, spacing and first capital restored."""
    for w in words:
        text = word_pattern(w).sub("", text)
    text = re.sub(r"[ \t]{2,}", " ", re.sub(r"[ \t]+([.,;:!?])", r"\1", text)).strip()
    return text[:1].upper() + text[1:]


def _drop_keywords(text, kw, rng):
    return _remove_words(text, [rng.choice(kw["keywords"])])


def _add_forbidden(text, kw, rng):
    return _append(text, f"{rng.choice(kw['forbidden_words']).capitalize()} matters here.")


def _keyword_count(text, kw, rng):
    if kw["relation"] == "at least":
        return _remove_words(text, [kw["keyword"]])
    return _append(text, " ".join([kw["keyword"]] * kw["frequency"]) + ".")


def _strip_marks(pattern: str) -> Breaker:
    return lambda text, kw, rng: re.sub(pattern, "", text)


def _bullets(text, kw, rng):
    return f"{text.rstrip()}\n* {rng.choice(FILLER)}"


def _drop_postscript(text, kw, rng):
    marker = re.escape(kw["postscript_marker"].strip().rstrip("."))
    return re.sub(rf"(?im)^\s*{marker}.*$", "", text).strip()


def _sentence_count(text, kw, rng):
    n = kw["num_sentences"]
    if kw["relation"] == "at least":
        return " ".join(s.strip() for s in sentences(text)[: n - 1]) if n > 1 else None
    return _append(text, " ".join(rng.choice(FILLER) for _ in range(n)))


def _truncate(text: str, n_words: int) -> str | None:
    words = text.split()
    return " ".join(words[:n_words]) if n_words > 0 else None


def _word_count(text, kw, rng):
    n = kw["num_words"]
    if kw["relation"] == "at least":
        return _truncate(text, n - 1)
    return _append(text, _filler(rng, n))


def _over_max(text, kw, rng):
    return _append(text, _filler(rng, kw["max_words"]))


def _word_range(text, kw, rng):
    if kw["min_words"] > 1 and rng.random() < 0.5:
        return _truncate(text, kw["min_words"] - 1)
    return _append(text, _filler(rng, kw["max_words"]))


def _more_sections(text, kw, rng):
    return f"{text.rstrip()}\n***\n{rng.choice(FILLER)}"


def _fewer_sections(text, kw, rng):
    return re.sub(r"(?:^|(?<=\s))\*\*\*(?=\s|$)", "", text)


def _split_paragraph(text, kw, rng):
    parts = sentences(text)
    return f"{parts[0]}\n\n{' '.join(parts[1:]) or rng.choice(FILLER)}" if parts else None


def _new_start(text, kw, rng):
    return f"Okay. {text.strip()}"


def _numbered(text, kw, rng):
    return f"{text.rstrip()}\n{kw['num_items'] + 1}. {rng.choice(FILLER)}"


def _add_sentence(text, kw, rng):
    return _append(text, rng.choice(FILLER))


def _digits(text, kw, rng):
    return _append(text, f"({rng.randint(2, 99)})")


def _drop_answer(text, kw, rng):
    return _remove_words(text, sorted(kw["answers"], key=len, reverse=True))


def _swap_label(text, kw, rng):
    return {"A": "B", "B": "A"}.get(kw["label"])


def _swap_verdict(text, kw, rng):
    return {"yes": "No.", "no": "Yes."}.get(kw["answer"].strip().lower())


def _drop_first_word(text, kw, rng):
    return " ".join(text.split()[1:]) or None


def _no_title(text, kw, rng):
    return text.replace("<<", "").replace(">>", "")


BREAKERS: dict[str, Breaker] = {
    "punctuation:no_comma": _add_comma,
    "change_case:english_lowercase": _one_capital,
    "change_case:english_capital": _lower_words,
    "change_case:capital_word_frequency": _capital_words,
    "startend:end_checker": _drop_end,
    "startend:quotation": _unquote,
    "keywords:existence": _drop_keywords,
    "keywords:forbidden_words": _add_forbidden,
    "keywords:frequency": _keyword_count,
    "detectable_format:title": _no_title,
    "detectable_format:number_bullet_lists": _bullets,
    "detectable_format:number_highlighted_sections": _strip_marks(r"\*"),
    "detectable_content:postscript": _drop_postscript,
    "detectable_content:number_placeholders": _strip_marks(r"[\[\]]"),
    "length_constraints:number_sentences": _sentence_count,
    "length_constraints:number_words": _word_count,
    "length_constraints:number_paragraphs": _more_sections,
    "combination:repeat_prompt": _drop_first_word,
    "cai:max_words": _over_max,
    "cai:exact_words": _add_sentence,
    "cai:word_range": _word_range,
    "cai:start_with": _new_start,
    "cai:numbered_list": _numbered,
    "cai:end_with_question": _add_sentence,
    "cai:single_paragraph": _split_paragraph,
    "cai:no_digits": _digits,
    "cai:contains_answer": _drop_answer,
    "cai:choice": _swap_label,
    "cai:yes_no": _swap_verdict,
}
# number_paragraphs fails with one section more or one fewer; dropping the dividers is the second try.
SECOND_TRY: dict[str, Breaker] = {"length_constraints:number_paragraphs": _fewer_sections}


def break_constraint(c: ConstraintSpec, answer: str, rng: random.Random, prompt: str = "") -> str | None:
    """`answer` edited so that constraint `c` fails, or None when no edit of ours breaks it."""
    for breaker in (BREAKERS.get(c.id), SECOND_TRY.get(c.id)):
        if breaker is None:
            continue
        broken = breaker(answer, c.kwargs, rng)
        if broken and broken.strip() and not passes(c, broken, prompt):
            return broken.strip()
    return None


def break_answer(instruction: Instruction, answer: str, rng: random.Random) -> str | None:
    """A passing answer made to fail one of the instruction's constraints (tried in an rng order).

    None when the answer fails a constraint already, has no constraint, or no constraint can be broken.
    """
    specs = instruction.constraints
    if not specs or not all(passes(c, answer, instruction.task) for c in specs):
        return None
    for c in rng.sample(specs, len(specs)):
        broken = break_constraint(c, answer, rng, instruction.task)
        if broken is not None:
            return broken
    return None
