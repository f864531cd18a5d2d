"""Text measures of whether an answer does the task, none of which needs a judge (issue 26).

A model trained on verifiable constraints learns to satisfy them without doing the task: it restates
the request, repeats itself, fills a required format with stubs, copies a few-shot answer, or answers
something else. These functions measure each of those on plain text; `steps/content_guards.py` turns
them into the drops of pair building and critique, and `steps/content_measures.py` into the
report's base-vs-trained rates. The measures are hand-written because they are a few lines of word
n-gram counting that no well-kept library offers in this form (nltk's ngrams would add a dependency
for one generator).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from ..engines import Engine
from ..errors import UserError

_WORD = re.compile(r"\w+")
# A span the request asks to be reproduced ("include the keyword 'garden'", 'end with "Sleep well."'):
# double quotes, typographic quotes, or single quotes that are not apostrophes.
_QUOTED = re.compile(r"\"[^\"\n]*\"|“[^”\n]*”|‘[^’\n]*’|(?<!\w)'[^'\n]+'(?!\w)")


def words(text: str) -> list[str]:
    """Lower-cased word tokens (letters, digits, underscores)."""
    return _WORD.findall(text.lower())


def ngrams(tokens: list[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def echo_overlap(request: str, answer: str, n: int = 3) -> float:
    """Share of the answer's word n-grams that also occur in the request (0.0 for an empty answer).

    Spans the request quotes are not counted as request text: an answer must be free to contain the
    phrases it was asked to contain. An answer shorter than n words is 0.0: a restatement is a phrase,
    and a one-word answer is the short-answer measures' business (and may be right: "Paris").
    """
    tokens = words(answer)
    if len(tokens) < n:
        return 0.0
    # Split at the quoted spans, so that removing one does not join its neighbours into n-grams.
    req_grams = {g for part in _QUOTED.split(request) for g in ngrams(words(part), n)}
    grams = ngrams(tokens, n)
    return sum(g in req_grams for g in grams) / len(grams)


# Constraint wording addressed to the one answering ("Do not use the words ... in your response"):
# an answer that says it restates rules instead of following them, whichever request it came from.
_RULE_TALK = re.compile(
    r"\b(?:in|of|throughout)\s+(?:your|the)\s+(?:entire\s+|whole\s+)?(?:response|answer|reply)\b"
    r"|\byour\s+(?:entire\s+|whole\s+)?(?:response|answer|reply)\s+(?:should|must|will|has\s+to)\b"
    r"|\b(?:answer|respond|write)\s+(?:in|with|using)\s+(?:exactly\s+|at\s+least\s+|at\s+most\s+)?"
    r"(?:\d+|one|two|three|four|five)\s+(?:words|sentences|paragraphs|bullet)"
    r"|\b(?:use|include|mention|avoid)\s+the\s+words?\s+[\"“']",
    re.IGNORECASE,
)


def rule_talk(answer: str) -> str:
    """The first piece of constraint wording aimed at the answerer, or "" (see _RULE_TALK)."""
    m = _RULE_TALK.search(answer)
    return m.group(0) if m else ""


def repeated_line_share(answer: str) -> float:
    """Share of the non-empty lines that repeat an earlier line (case and spacing ignored)."""
    lines = [" ".join(words(line)) for line in answer.splitlines()]
    lines = [line for line in lines if line]
    return (len(lines) - len(set(lines))) / len(lines) if lines else 0.0


def repeated_ngram_share(answer: str, n: int = 4) -> float:
    """Share of the answer's word n-grams that repeat an earlier one (0.0 below n words)."""
    grams = ngrams(words(answer), n)
    return (len(grams) - len(set(grams))) / len(grams) if grams else 0.0


# Text that stands in for content: bracketed stubs, "lorem ipsum", template markers.
_STUB = re.compile(
    r"\[\s*(?:\.\.\.|…|insert\b[^\]]*|placeholder[^\]]*|your\s[^\]]*|text|content|here)\s*\]"
    r"|<\s*(?:\.\.\.|…|insert\b[^>]*|placeholder[^>]*|your\s[^>]*)\s*>"
    r"|\blorem\s+ipsum\b|\bplaceholder\b|\bhighlighted\s+section\b|\bTODO\b|\bxxx+\b",
    re.IGNORECASE,
)
_HIGHLIGHT = re.compile(r"\*([^*\n]+)\*")
_BULLET = re.compile(r"^[ \t]*(?:[*\-•]|\d+[.)])(?:[ \t]+(.*))?$", re.MULTILINE)
# Words that name a slot rather than fill it ("*highlight*", "* Point 1").
_SLOT_WORDS = frozenset(
    "highlight highlighted section text important part title point item bullet here example idea "
    "tip step reason keyword answer content".split()
)


def _is_slot(span: str) -> bool:
    toks = words(span)
    return not toks or all(t in _SLOT_WORDS or t.isdigit() for t in toks)


def placeholder(answer: str, brackets_allowed: bool = False, short_bullets_are_stubs: bool = False) -> str:
    """Why the answer fills a format with stubs instead of content, or "" when it does not.

    brackets_allowed: the request itself asks for [bracketed] placeholders (IFEval's
    number_placeholders), so those do not count. short_bullets_are_stubs: the request asks for
    content (an explanation, advice), so bullets of one or two words are stubs; in a plain list
    ("name three animals") they are the answer.
    """
    for m in _STUB.finditer(answer):
        if brackets_allowed and m.group(0).lstrip().startswith("["):
            continue
        return f"stub {m.group(0).strip()!r}"
    spans = [s.strip() for s in _HIGHLIGHT.findall(answer)]
    if spans and (any(_is_slot(s) for s in spans) or (len(spans) > 1 and len(set(spans)) == 1)):
        return f"highlight stubs {spans[:3]}"
    bullets = [b.strip() for b in _BULLET.findall(answer)]
    if bullets and any(_is_slot(b) for b in bullets):
        return f"bullet stubs {bullets[:3]}"
    if short_bullets_are_stubs and len(bullets) > 1 and all(len(words(b)) <= 2 for b in bullets):
        return f"bullets of one or two words {bullets[:3]}"
    return ""


def copy_overlap(answer: str, exemplar_grams: set[tuple[str, ...]], request: str = "", n: int = 4) -> float:
    """Share of the answer's word n-grams found in exemplar text (few-shot answers, constitution
    examples, template text), leaving out n-grams the request itself contains. An answer shorter
    than n words is 0.0: single words of it ("Yes.") are in some exemplar by chance."""
    tokens = words(answer)
    own = set(ngrams(words(request), n))
    grams = [g for g in ngrams(tokens, n) if g not in own]
    return sum(g in exemplar_grams for g in grams) / len(grams) if grams else 0.0


def exemplar_ngrams(texts: Iterable[str], n: int = 4) -> set[tuple[str, ...]]:
    """Every word n-gram of the exemplar texts, for `copy_overlap`."""
    return {g for text in texts for g in ngrams(words(text), n)}


# ---------------------------------------------------------------- relevance by back-translation
# Li et al. 2023 ("Self-Alignment with Instruction Backtranslation") predict the instruction from
# the answer; here the same model's log-likelihood of the request after the answer, minus after no
# answer, per request token (a pointwise mutual information): an answer about the request makes the
# request more likely; an off-topic one does not.
BACK_FRAME = "Answer: {answer}\nThe request this answers:"
MAX_ANSWER_CHARS = 1200  # one forward per answer; a long answer's first part says what it is about

RelevanceFn = Callable[[list[tuple[str, str]]], list[float]]


def relevance_scorer(engine: Engine) -> RelevanceFn:
    """(request, answer) pairs -> nats per request token that the answer adds to the request.

    One batched `engine.logprobs` call: one forward per pair plus one per distinct request."""
    if not engine.capabilities.prompt_logprobs:
        raise UserError(
            "the content guards and measures score relevance with the model, but this engine does not "
            "return prompt logprobs",
            "serve the model with vLLM or llama-cpp-python (--logits_all True), or set "
            "pairs.guards.relevance: false and eval.content.relevance: false",
        )

    def score(items: list[tuple[str, str]]) -> list[float]:
        if not items:
            return []
        requests = sorted({r for r, _ in items})
        prompts = [BACK_FRAME.format(answer=a.strip()[:MAX_ANSWER_CHARS]) for _, a in items]
        prompts += [BACK_FRAME.format(answer="") for _ in requests]
        conts = [f" {r.strip()}" for r, _ in items] + [f" {r.strip()}" for r in requests]
        lps = engine.logprobs(prompts, conts)
        alone = dict(zip(requests, lps[len(items) :], strict=True))
        return [
            (lp - alone[r]) / max(engine.count_tokens(f" {r.strip()}"), 1)
            for (r, _), lp in zip(items, lps, strict=False)
        ]

    return score
