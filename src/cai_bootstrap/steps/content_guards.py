"""Content guards: an answer that restates the request, repeats itself, fills a format with stubs,
copies an exemplar, says almost nothing, or is about something else is never chosen, never an SFT
target and never an accepted revision (issue 26). No judge: the measures are in
`tasks/content_checks.py`; relevance uses the input model's own log-likelihoods.

pairs.py asks `pair_problem` of each ordered pair and `sft_problem` of each SFT target; critique.py
asks `revision_problems` of its revisions. Each answer's result is cached by response id.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from importlib import resources

import jinja2
from pydantic import BaseModel, ConfigDict, Field

from ..constitution import Constitution
from ..records import Instruction, Response
from ..tasks import content_checks as cc
from ..tasks import frame
from ..tasks.phrasings import PHRASINGS
from .pair_records import DropReason

# Requests whose own rules set how long the answer is (a lower bound, an exact count, a fixed answer):
# the verifiers judge its length. An upper bound alone ("fewer than 5 sentences") does not excuse
# a two-word poem; `_word_floor` lowers the floor under a word cap the request sets.
OWN_LENGTH_IDS = frozenset(
    {
        "length_constraints:number_paragraphs",
        "length_constraints:nth_paragraph_first_word",
        "cai:exact_words",
        "cai:word_range",
        "cai:choice",
        "cai:yes_no",
        "cai:contains_answer",
        "detectable_format:constrained_response",
        "detectable_format:json_format",
    }
)
ANSWER_IDS = frozenset({"cai:choice", "cai:yes_no", "cai:contains_answer"})
# Task kinds (tasks/composer.py) that ask for content: an explanation, not a name or a list.
CONTENT_KINDS = frozenset({"explain", "describe", "story", "advice", "compare", "letter", "poem", "howto"})
TEMPLATES = ("critique.j2", "revision.j2", "judge.j2")
_FIELD = re.compile(r"\{[^}]*\}")  # a {field} of a constraint wording (tasks/phrasings.py)


class ContentGuardSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool = Field(
        True, description="apply the content guards to chosen answers, SFT targets, revisions"
    )
    max_echo: float | None = Field(
        0.5,
        gt=0.0,
        le=1.0,
        description="drop an answer when >= this share of its word 3-grams occur in the request "
        "(quoted phrases excepted); null = off",
    )
    max_repeated_lines: float | None = Field(
        0.34,
        gt=0.0,
        le=1.0,
        description="drop when >= this share of lines repeat an earlier line; null = off",
    )
    max_repeated_ngrams: float | None = Field(
        0.4, gt=0.0, le=1.0, description="drop when >= this share of word 4-grams repeat; null = off"
    )
    placeholders: bool = Field(
        True, description="drop answers that fill a format with stubs ([...], *highlight*)"
    )
    max_copy: float | None = Field(
        0.5,
        gt=0.0,
        le=1.0,
        description="drop when >= this share of the answer's word 4-grams come from the frame's few-shot "
        "answers, the constitution's examples or template text; null = off",
    )
    min_content_words: int = Field(
        8, ge=0, description="fewest words for a content request (explain, describe...) that sets no length"
    )
    relevance: bool = Field(
        True,
        description="score each chosen and rejected answer's back-translation relevance with the input "
        "model (one forward per answer)",
    )
    max_relevance_drop: float = Field(
        0.3,
        ge=0.0,
        description="drop a pair whose chosen is this many nats/token less relevant than its rejected",
    )
    min_sft_relevance: float | None = Field(
        0.0, description="an SFT target must make its request at least this much more likely; null = off"
    )


@dataclass
class Guard:
    """The settings plus what they are checked against; built once per step."""

    cfg: ContentGuardSettings
    exemplar_grams: set[tuple[str, ...]]
    relevance_fn: cc.RelevanceFn | None = None
    _problems: dict[str, tuple[DropReason, str] | None] = field(default_factory=dict)
    _relevance: dict[str, float] = field(default_factory=dict)


@cache
def template_text() -> tuple[str, ...]:
    """The literal text of the prompt templates (Jinja2's own lexer separates it from the tags)."""
    env = jinja2.Environment()
    out = []
    for name in TEMPLATES:
        source = resources.files("cai_bootstrap").joinpath("templates", name).read_text("utf-8")
        out += [value for _, kind, value in env.lex(source) if kind == "data"]
    return tuple(out)


def exemplars(constitution: Constitution | None) -> list[str]:
    """Texts no answer may copy: the frame's shots, the constitution's examples, template text and
    the training wordings of every constraint type (an answer that recites constraint wording, as in
    issue 26's "Do not use the words ... in your response", does not do its task). Held-out wordings
    stay out: held-out data is not used to shape training data, not even as a filter."""
    out = [t for shot in frame.SHOTS for t in shot] + list(template_text())
    out += [part for p in PHRASINGS.values() for t in p.train for part in _FIELD.split(t)]
    for p in constitution.principles if constitution else []:
        out += [p.critique_request, p.revision_request]
        for ex in p.examples:
            out += [ex.prompt, ex.response, ex.critique, ex.revision or ""]
    return out


def make_guard(
    cfg: ContentGuardSettings, constitution: Constitution | None, relevance_fn: cc.RelevanceFn | None = None
) -> Guard | None:
    """The guard of a step, or None when the guards are off."""
    if not cfg.enabled:
        return None
    grams = cc.exemplar_ngrams(exemplars(constitution))
    return Guard(cfg, grams, relevance_fn if cfg.relevance else None)


def _repeat_prefix(instruction: Instruction, text: str) -> str:
    """The answer without the request it was asked to repeat first (IFEval's repeat_prompt)."""
    for c in instruction.constraints:
        if c.id == "combination:repeat_prompt":
            asked = str(c.kwargs.get("prompt_to_repeat") or instruction.prompt).strip()
            if text.strip().lower().startswith(asked.lower()):
                return text.strip()[len(asked) :]
    return text


def _check(cfg: ContentGuardSettings, grams, instruction: Instruction, text: str):
    ids = {c.id for c in instruction.constraints}
    body = _repeat_prefix(instruction, text)
    content = instruction.task_kind in CONTENT_KINDS
    # A question whose answer is checked (curriculum stages: a fact, a choice, a span of a given
    # passage) may be answered with the request's own words.
    echo = cfg.max_echo is not None and not ids & ANSWER_IDS
    if echo and (e := cc.echo_overlap(instruction.prompt, body)) >= cfg.max_echo:
        return DropReason.ECHO, f"{e:.0%} of its 3-grams are in the request"
    if cfg.max_echo is not None and (talk := cc.rule_talk(body)):
        return DropReason.ECHO, f"restates constraint wording {talk!r}"
    if cfg.max_repeated_lines is not None and (r := cc.repeated_line_share(body)) >= cfg.max_repeated_lines:
        return DropReason.REPETITION, f"{r:.0%} of lines repeat"
    if (
        cfg.max_repeated_ngrams is not None
        and (r := cc.repeated_ngram_share(body)) >= cfg.max_repeated_ngrams
    ):
        return DropReason.REPETITION, f"{r:.0%} of 4-grams repeat"
    brackets = "detectable_content:number_placeholders" in ids
    if cfg.placeholders and (why := cc.placeholder(body, brackets, content)):
        return DropReason.PLACEHOLDER, why
    if cfg.max_copy is not None and (c := cc.copy_overlap(body, grams, instruction.prompt)) >= cfg.max_copy:
        return DropReason.COPIED_EXEMPLAR, f"{c:.0%} of its 4-grams are exemplar text"
    n, floor = len(cc.words(body)), _word_floor(instruction, cfg.min_content_words)
    if content and floor is not None and n < floor:
        return DropReason.NO_CONTENT, f"{n} words for a {instruction.task_kind} request (floor {floor})"
    return None


def _word_floor(instruction: Instruction, min_words: int) -> int | None:
    """Fewest words a content answer needs: min_words, lowered to half a word cap the request sets;
    None when the request's own rules set a length (OWN_LENGTH_IDS, or an 'at least' bound)."""
    floor = min_words
    for c in instruction.constraints:
        at_least = c.id.startswith("length_constraints:") and c.kwargs.get("relation") == "at least"
        if c.id in OWN_LENGTH_IDS or at_least:
            return None
        # A word cap: at least half of what it allows ("at most 3 words" is answered by one or two).
        if c.id == "cai:max_words":
            floor = min(floor, int(c.kwargs["max_words"]) // 2)
        if c.id == "length_constraints:number_words":  # "less than" N: at most N - 1
            floor = min(floor, (int(c.kwargs["num_words"]) - 1) // 2)
    return floor


def answer_problem(guard: Guard, instruction: Instruction, text: str, key: str | None = None):
    """(reason, detail) of the first guard the answer fails, or None; cached under `key`."""
    if key is not None and key in guard._problems:
        return guard._problems[key]
    out = _check(guard.cfg, guard.exemplar_grams, instruction, text)
    if key is not None:
        guard._problems[key] = out
    return out


def score_relevance(guard: Guard, items: list[tuple[Instruction, Response]]) -> None:
    """Back-translation relevance of the answers not yet scored, in one batch."""
    todo = {r.id: (i.task or i.prompt, r.text) for i, r in items if r.id not in guard._relevance}
    if guard.relevance_fn is None or not todo:
        return
    for rid, s in zip(todo, guard.relevance_fn(list(todo.values())), strict=True):
        guard._relevance[rid] = s


def relevance(guard: Guard, response_id: str) -> float | None:
    return guard._relevance.get(response_id)


def pair_problem(guard: Guard, instruction: Instruction, chosen: Response, rejected: Response):
    """Why a pair may not be kept: its chosen answer fails a guard, or is much less relevant than
    its rejected one (relevance must have been scored first). None: keep it."""
    if why := answer_problem(guard, instruction, chosen.text, chosen.id):
        return why
    rc, rr = relevance(guard, chosen.id), relevance(guard, rejected.id)
    if rc is not None and rr is not None and rc < rr - guard.cfg.max_relevance_drop:
        return DropReason.LESS_RELEVANT, f"relevance {rc:+.2f} vs rejected {rr:+.2f} nats/token"
    return None


def sft_problem(guard: Guard, instruction: Instruction, answer: Response):
    """Why an answer may not be an SFT target (a guard, or relevance below min_sft_relevance)."""
    if why := answer_problem(guard, instruction, answer.text, answer.id):
        return why
    floor, rel = guard.cfg.min_sft_relevance, relevance(guard, answer.id)
    if floor is not None and rel is not None and rel < floor:
        return DropReason.LESS_RELEVANT, f"relevance {rel:+.2f} < {floor:+.2f} nats/token"
    return None


def revision_problems(guard: Guard, items: list[tuple[Instruction, str, str]]) -> list:
    """Per (instruction, original, revision): why the revision may not count as revised (a text
    guard, or much less relevant than the original it replaces), or None. Relevance in one batch."""
    out = [answer_problem(guard, ins, revision) for ins, _, revision in items]
    live = [k for k, why in enumerate(out) if why is None]
    if guard.relevance_fn is None or not live:
        return out
    asks = [(items[k][0].task or items[k][0].prompt, items[k][j]) for k in live for j in (1, 2)]
    scores = guard.relevance_fn(asks)
    for n, k in enumerate(live):
        before, after = scores[2 * n], scores[2 * n + 1]
        if after < before - guard.cfg.max_relevance_drop:
            out[k] = DropReason.LESS_RELEVANT, f"relevance {after:+.2f} vs original {before:+.2f} nats/token"
    return out
