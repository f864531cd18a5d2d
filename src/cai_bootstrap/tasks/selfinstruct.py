"""Self-instruct: the base model proposes new training base tasks by continuing few-shot lists.

After Wang et al. 2023 ("Self-Instruct"), in completion mode: a prompt shows a numbered list of
tasks tagged [topic / kind] (seed tasks plus a few already accepted ones) and ends on the tag of the
next item, so the model writes a task for that topic and kind and usually a few more items.
Each candidate line then goes through, in order:
  line filters -> held-out exclusion -> dedup against seeds and accepted tasks ->
  the model's own A/B critic (margin = logp(" Yes") - logp(" No")) -> dedup within the round.
Where the paper keeps a task when ROUGE-L < 0.7 against the pool, we use the shingle test of
`leakage.NearDupIndex`, the same one the held-out leakage check applies later.

Every candidate ends accepted or rejected with a reason, so accepted + rejected = candidates.
"""

from __future__ import annotations

import hashlib
import math
import random
import re
from collections import Counter
from dataclasses import dataclass
from enum import StrEnum
from itertools import product

from pydantic import BaseModel, ConfigDict, Field

from ..engines import Engine, Sampling
from ..errors import StepFailed, UserError
from ..log import log
from ..records import BaseTask
from ..templates import render
from . import frame
from .leakage import MatchKind, NearDupIndex, normalise

TEMPLATES = ("selfinstruct_propose", "selfinstruct_critic")
# A blank line ends the numbered list; anything after it is a new document.
STOP = ["\n\n"]
YES, NO = " Yes", " No"


class SelfInstructSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool = Field(True, description="propose new training base tasks with the model itself")
    n_tasks: int = Field(64, ge=0, description="target number of accepted tasks; stops when reached")
    min_accepted: int = Field(
        1, ge=0, description="health gate: stop if self-instruct is enabled and accepts fewer tasks"
    )
    max_rounds: int = Field(8, ge=1, description="at most this many generate-filter rounds")
    prompts_per_round: int = Field(16, ge=1, description="list prompts per round (topic/kind hints cycle)")
    samples_per_prompt: int = Field(2, ge=1, description="continuations sampled per prompt")
    examples_per_prompt: int = Field(8, ge=1, description="numbered examples shown in each prompt")
    generated_examples: int = Field(2, ge=0, description="of those, at most this many already accepted tasks")
    temperature: float = Field(0.9, ge=0.0, description="sampling temperature of the proposals")
    top_p: float = Field(0.95, gt=0.0, le=1.0, description="nucleus sampling mass of the proposals")
    max_new_tokens: int = Field(96, ge=8, description="tokens per continuation (a few list items)")
    min_words: int = Field(4, ge=1, description="shorter task lines are dropped")
    max_words: int = Field(40, ge=1, description="longer task lines are dropped")
    dedup_threshold: float = Field(
        0.6,
        gt=0.0,
        le=1.0,
        description="character 5-gram Jaccard at or above which two tasks are near duplicates",
    )
    containment: float | None = Field(
        0.9,
        gt=0.0,
        le=1.0,
        description="share of the shorter task inside the other that also counts (None: off)",
    )
    critic_margin: float = Field(0.0, description="keep a task when logp(' Yes') - logp(' No') >= this")
    seed: int = Field(0, description="seeds example choice, hint order and sampling")
    train_share: float | None = Field(
        0.6,
        ge=0.0,
        le=1.0,
        description="from round share_from_round on, this share of stage-1 training instructions is "
        "composed from model-written tasks (the base tasks are seeds); null = one pool of both",
    )
    share_from_round: int = Field(2, ge=1, description="first round in which train_share applies")


class Reason(StrEnum):
    """Why a candidate line was dropped."""

    EMPTY = "empty"
    NOT_AN_ITEM = "not_an_item"
    BAD_TAG = "bad_tag"
    FRAME_MARKER = "frame_marker"
    NON_ENGLISH = "non_english"
    JUNK = "junk"
    TOO_SHORT = "too_short"
    TOO_LONG = "too_long"
    BAD_START = "bad_start"
    UNFINISHED = "unfinished"
    HELDOUT = "heldout_overlap"
    DUPLICATE = "duplicate"
    NEAR_DUPLICATE = "near_duplicate"
    CRITIC = "critic"
    SURPLUS = "surplus"


class RejectedTask(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(description="the raw candidate line")
    reason: Reason
    topic: str = ""
    kind: str = ""
    detail: str = ""


class SelfInstructOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tasks: list[BaseTask] = Field(default_factory=list)
    rejected: list[RejectedTask] = Field(default_factory=list)
    stats: dict = Field(default_factory=dict)


@dataclass(frozen=True)
class Candidate:
    text: str
    topic: str
    kind: str


_ITEM = re.compile(r"^\s*\d{1,3}\s*[.)]\s*(.*)$")
_TAG = re.compile(r"^\[([^\[\]/]*)/([^\[\]/]*)\]\s*(.*)$")
_WORD = re.compile(r"[A-Za-z0-9']+")
_REPEATED_WORD = re.compile(r"\b(\w+)(?:\s+\1\b){2,}", re.IGNORECASE)
_REPEATED_CHAR = re.compile(r"(.)\1{4,}")
_ENDS_WELL = re.compile(r"[.?!][\"')]*$")
# Markers of a prompt frame or a document rather than a task (our own frames included).
_MARKERS = (frame.INSTRUCTION, frame.RESPONSE, "Request:", "Answer:", "Question:", "Clear, feasible")
_MARKERS += ("###", "http://", "https://", "www.", "[", "]", "<", ">", "{", "}", "|", "\\")


def parse_continuation(
    text: str, topic: str, kind: str, topics: set[str], kinds: set[str]
) -> tuple[list[Candidate], list[RejectedTask]]:
    """Split a list continuation into candidate tasks; never raises on junk.

    The first line is the item whose [topic / kind] tag ended the prompt; later lines must be
    numbered items with a known tag. Blank lines are skipped; every other line is one candidate.
    """
    first, *rest = text.split("\n")
    found = [Candidate(first.strip(), topic, kind)]
    dropped: list[RejectedTask] = []
    for line in rest:
        if not line.strip():
            continue
        item = _ITEM.match(line)
        tag = _TAG.match(item.group(1).strip()) if item else None
        if item is None:
            dropped.append(RejectedTask(text=line, reason=Reason.NOT_AN_ITEM))
        elif tag is None or tag.group(1).strip() not in topics or tag.group(2).strip() not in kinds:
            dropped.append(RejectedTask(text=line, reason=Reason.BAD_TAG))
        else:
            found.append(Candidate(tag.group(3).strip(), tag.group(1).strip(), tag.group(2).strip()))
    return found, dropped


def _non_english(text: str) -> bool:
    letters = [c for c in text if c.isalpha()]
    return sum(not c.isascii() for c in letters) > 0.05 * len(letters)


def _junk(text: str) -> bool:
    letters = sum(c.isalpha() for c in text)
    visible = sum(not c.isspace() for c in text)
    return letters < 0.7 * visible or bool(_REPEATED_WORD.search(text) or _REPEATED_CHAR.search(text))


def line_problem(text: str, cfg: SelfInstructSettings) -> Reason | None:
    """The first reason a candidate line is not a usable task, or None."""
    n_words = len(_WORD.findall(text))
    checks = (
        (Reason.EMPTY, lambda: not text),
        (Reason.FRAME_MARKER, lambda: any(m in text for m in _MARKERS)),
        (Reason.NON_ENGLISH, lambda: _non_english(text)),
        (Reason.JUNK, lambda: _junk(text)),
        (Reason.TOO_SHORT, lambda: n_words < cfg.min_words),
        (Reason.TOO_LONG, lambda: n_words > cfg.max_words),
        (Reason.BAD_START, lambda: not (text[0].isascii() and text[0].isupper())),
        (Reason.UNFINISHED, lambda: not _ENDS_WELL.search(text)),
    )
    return next((reason for reason, failed in checks if failed()), None)


def task_id(text: str) -> str:
    """Stable id from the normalised text: the same task gets the same id in every run."""
    return "si-" + hashlib.sha256(normalise(text).encode()).hexdigest()[:12]


def propose_prompt(examples: list[BaseTask], topic: str, kind: str) -> str:
    return render("selfinstruct_propose", examples=examples, topic=topic, kind=kind)


def critic_margins(engine: Engine, texts: list[str]) -> list[float]:
    """logp(" Yes") - logp(" No") of the critic prompt per task; non-finite scores are an error."""
    if not texts:
        return []
    prompts = [render("selfinstruct_critic", task=t) for t in texts]
    scores = engine.logprobs(prompts + prompts, [YES] * len(texts) + [NO] * len(texts))
    if len(scores) != 2 * len(texts) or not all(math.isfinite(s) for s in scores):
        raise StepFailed("self-instruct critic returned missing or non-finite log-probs", "check the engine")
    return [y - n for y, n in zip(scores[: len(texts)], scores[len(texts) :], strict=True)]


class _State:
    """What a run accumulates: the dedup pool, the held-out index, accepted and rejected tasks."""

    def __init__(self, cfg: SelfInstructSettings, seeds: list[BaseTask], exclude: list[str]):
        self.cfg = cfg
        self.heldout = NearDupIndex(cfg.dedup_threshold, cfg.containment, exclude)
        self.pool = NearDupIndex(cfg.dedup_threshold, cfg.containment, [t.text for t in seeds])
        clash = self.heldout.match_many([t.text for t in seeds]) if exclude else [None] * len(seeds)
        # Held-out tasks are never shown to the proposer, so it cannot copy them into training data.
        self.examples = [t for t, m in zip(seeds, clash, strict=True) if m is None]
        self.seeds_hidden = len(seeds) - len(self.examples)
        self.accepted: list[BaseTask] = []
        self.rejected: list[RejectedTask] = []
        self.margins: list[float] = []
        self.candidates = 0

    def reject(self, c: Candidate | RejectedTask, reason: Reason, detail: str = "") -> None:
        self.rejected.append(
            RejectedTask(text=c.text, reason=reason, topic=c.topic, kind=c.kind, detail=detail)
        )

    def screen(self, c: Candidate) -> bool:
        """Line filters, held-out exclusion and dedup against the pool; False when rejected."""
        if problem := line_problem(c.text, self.cfg):
            self.reject(c, problem)
        elif (m := self.heldout.match(c.text)) is not None:
            self.reject(c, Reason.HELDOUT, f"{m.kind.value} to held-out task #{m.index} (J={m.jaccard:.2f})")
        else:
            return self.dedup(c)
        return False

    def dedup(self, c: Candidate) -> bool:
        m = self.pool.match(c.text)
        if m is None:
            return True
        reason = Reason.DUPLICATE if m.kind == MatchKind.EXACT else Reason.NEAR_DUPLICATE
        self.reject(c, reason, f"{m.kind.value} (J={m.jaccard:.2f}): {self.pool.texts[m.index]}")
        return False

    def decide(self, c: Candidate, margin: float) -> None:
        """After the critic: the margin, then dedup within the round, then the target."""
        if margin < self.cfg.critic_margin:
            self.reject(c, Reason.CRITIC, f"margin {margin:.3f} < {self.cfg.critic_margin}")
        elif not self.dedup(c):
            return
        elif len(self.accepted) >= self.cfg.n_tasks:
            self.reject(c, Reason.SURPLUS)
        else:
            self.pool.add(c.text)
            self.accepted.append(
                BaseTask(id=task_id(c.text), text=c.text, kind=c.kind, topic=c.topic, source="self_instruct")
            )


def _check_hints(topics: list[str], kinds: list[str], seeds: list[BaseTask]) -> None:
    if not topics or not kinds:
        raise UserError("self-instruct needs at least one topic and one kind", "list them in the recipe")
    bad = [h for h in [*topics, *kinds] if not h.strip() or any(ch in h for ch in "[]/\n")]
    if bad:
        raise UserError(f"self-instruct hint {bad[0]!r} is empty or holds one of '[', ']', '/'", "rename it")
    if len(seeds) < 2:
        raise UserError("self-instruct needs at least 2 seed tasks to show as examples", "add seed tasks")


def _examples(state: _State, rng: random.Random) -> list[BaseTask]:
    """Mostly seed tasks plus a few accepted ones, shuffled (Self-Instruct shows 6 human + 2 model)."""
    cfg = state.cfg
    n_gen = min(cfg.generated_examples, len(state.accepted), cfg.examples_per_prompt)
    n_seed = min(cfg.examples_per_prompt - n_gen, len(state.examples))
    chosen = rng.sample(state.examples, n_seed) + rng.sample(state.accepted, n_gen)
    rng.shuffle(chosen)
    return chosen


def _generate(engine: Engine, prompts: list[str], sampling: Sampling) -> list[list[str]]:
    out = engine.generate(prompts, sampling)
    if len(out) != len(prompts) or any(len(o) != sampling.n for o in out):
        raise StepFailed(
            "engine returned the wrong number of continuations for self-instruct", "check the engine"
        )
    return out


def _round(
    state: _State, engine: Engine, hints: list[tuple[str, str]], r: int, known: tuple[set, set]
) -> None:
    cfg = state.cfg
    rng = random.Random(cfg.seed * 1_000_003 + r)
    prompts = [propose_prompt(_examples(state, rng), topic, kind) for topic, kind in hints]
    sampling = Sampling(
        n=cfg.samples_per_prompt,
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        max_new_tokens=cfg.max_new_tokens,
        stop=STOP,
        seed=cfg.seed * 1_000_003 + r,
    )
    survivors: list[Candidate] = []
    for (topic, kind), samples in zip(hints, _generate(engine, prompts, sampling), strict=True):
        for text in samples:
            found, dropped = parse_continuation(text, topic, kind, *known)
            state.candidates += len(found) + len(dropped)
            state.rejected.extend(dropped)
            survivors += [c for c in found if state.screen(c)]
    margins = critic_margins(engine, [c.text for c in survivors])
    state.margins += margins
    for c, margin in zip(survivors, margins, strict=True):
        state.decide(c, margin)


def run(
    cfg: SelfInstructSettings,
    seed_tasks: list[BaseTask],
    engine: Engine,
    topics: list[str],
    kinds: list[str],
    *,
    exclude: list[str],
) -> SelfInstructOutput:
    """Propose up to cfg.n_tasks new training base tasks; `exclude` holds the held-out task texts."""
    if not cfg.enabled or cfg.n_tasks == 0:
        return SelfInstructOutput(stats={"enabled": False})
    _check_hints(topics, kinds, seed_tasks)
    state = _State(cfg, seed_tasks, exclude)
    if len(state.examples) < 2:
        raise UserError("fewer than 2 seed tasks are left once held-out ones are hidden", "add seed tasks")
    if state.seeds_hidden:
        log.warning(
            f"self-instruct: {state.seeds_hidden} seed tasks overlap held-out tasks and are not shown"
        )
    pairs = list(product(topics, kinds))
    random.Random(cfg.seed).shuffle(pairs)
    rounds = 0
    while rounds < cfg.max_rounds and len(state.accepted) < cfg.n_tasks:
        start = rounds * cfg.prompts_per_round
        hints = [pairs[(start + i) % len(pairs)] for i in range(cfg.prompts_per_round)]
        _round(state, engine, hints, rounds, (set(topics), set(kinds)))
        rounds += 1
        log.info(f"self-instruct round {rounds}: {len(state.accepted)}/{cfg.n_tasks} tasks accepted")
    if len(state.accepted) < cfg.n_tasks:
        log.warning(f"self-instruct reached {len(state.accepted)} of {cfg.n_tasks} tasks in {rounds} rounds")
    return SelfInstructOutput(tasks=state.accepted, rejected=state.rejected, stats=_stats(state, rounds))


def _stats(state: _State, rounds: int) -> dict:
    reasons = Counter(r.reason.value for r in state.rejected)
    margins = state.margins
    return {
        "enabled": True,
        "rounds": rounds,
        "prompts": rounds * state.cfg.prompts_per_round,
        "candidates": state.candidates,
        "accepted": len(state.accepted),
        "rejected": len(state.rejected),
        "rejected_by_reason": dict(sorted(reasons.items())),
        "critic_scored": len(margins),
        "critic_margin_mean": sum(margins) / len(margins) if margins else None,
        "target": state.cfg.n_tasks,
        "target_met": len(state.accepted) >= state.cfg.n_tasks,
        "seed_examples": len(state.examples),
        "seeds_hidden_as_heldout": state.seeds_hidden,
    }
