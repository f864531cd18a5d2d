"""Critique and revision (Bai et al. 2022, Constitutional AI, sec. 3.1) run on a BASE model.

Per answer and round a principle is sampled; a few-shot completion prompt asks for a critique that
ends in a verdict; a PROBLEM verdict (or every critique, with `revise: always`) leads to a revision
prompt (complete new answer or KEEP_ORIGINAL). Parsers never raise: they return a flagged result and keep the raw text.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from .. import health
from ..constitution import Constitution, Principle
from ..engines import Engine, Sampling
from ..log import log
from ..records import Instruction, Record, Response
from ..tasks.constraints import check_instruction
from ..templates import KEEP_ORIGINAL, REVISION_END, STOP, VERDICT_OK, VERDICT_PROBLEM, render

CheckFn = Callable[[Instruction, str], list[bool]]
# [(instruction, original, revision)] -> per revision, (reason, detail) of the content guard it fails,
# or None (content_guards.revision_problems); batched, as its relevance check runs the model.
GuardFn = Callable[[list[tuple[Instruction, str, str]]], list[tuple[str, str] | None]]


def verify(instruction: Instruction, text: str) -> list[bool]:
    """Strict check of each constraint of `instruction` on `text`, in constraint order."""
    return check_instruction(instruction, text, loose=False)


# ---------------------------------------------------------------- critique parsing
class Verdict(StrEnum):
    PROBLEM = "problem"
    OK = "ok"
    UNCLEAR = "unclear"  # no verdict line: treated as "do not revise"


_VERDICT = re.compile(r"^\s*Verdict:\s*(\w+)", re.MULTILINE)


class ParsedCritique(BaseModel):
    raw: str
    critique: str
    verdict: Verdict


def parse_critique(raw: str) -> ParsedCritique:
    """Split a critique continuation into its text and its verdict (the first verdict line)."""
    m = _VERDICT.search(raw)
    if m is None:
        return ParsedCritique(raw=raw, critique=raw.strip(), verdict=Verdict.UNCLEAR)
    word = m.group(1).upper()
    verdict = {VERDICT_PROBLEM: Verdict.PROBLEM, VERDICT_OK: Verdict.OK}.get(word, Verdict.UNCLEAR)
    return ParsedCritique(raw=raw, critique=raw[: m.start()].strip(), verdict=verdict)


# ---------------------------------------------------------------- revision parsing
class RevisionStatus(StrEnum):
    REVISED = "revised"
    KEEP = "kept"
    REJECTED = "rejected"


class RejectReason(StrEnum):
    META_COMMENTARY = "meta_commentary"
    MARKER_LEAK = "marker_leak"
    TRUNCATED = "truncated"
    TOO_SHORT = "too_short"
    CONSTRAINT_REGRESSION = "constraint_regression"
    NO_VERDICT = "no_verdict"  # set on critique records whose critique had no verdict line
    CONTENT_GUARD = "content_guard"  # an echo, repetition, stub, copied exemplar (content_guards.py)


# Remarks about the answer instead of the answer: at the start of the revision...
_META_START = re.compile(
    r"(?:here\s+is|here's|below\s+is|this\s+is)\s+(?:a|an|the|my)\s+(?:revised|improved|new|updated|better|rewritten)"
    r"|(?:i|we)(?:\s+|')(?:could|would|should|will|can|might|need\s+to|ll|d)\s+(?:now\s+|also\s+|instead\s+)?"
    r"(?:rewrite|revise|improve|change|make|add|remove|fix|correct|rephrase|say|write|answer|respond|mention|include)\b"
    r"|(?:revised|improved|updated|rewritten|corrected)\s+(?:response|answer|version)\b"
    r"|(?:sure|certainly|okay)[,!.]\s+(?:here|i)\b",
    re.IGNORECASE,
)
# ...and anywhere in it.
_META_ANYWHERE = re.compile(
    r"\b(?:the|this|my)\s+(?:original|previous|revised|above|new)\s+(?:response|answer|version)\b"
    r"|\b(?:the|this|my)\s+(?:response|answer|revision)\s+(?:should|could|would|needs\s+to|must|has\s+been|now)\b"
    r"|\bthe\s+critique\b|\bas\s+an\s+ai\b",
    re.IGNORECASE,
)
_MARKER = re.compile(
    r"^\s*(?:Instruction|Response(?:\s+[AB])?|Critique|Revision(?:\s+request)?|Principle|Verdict|Question about each response)\s*:"
    r"|^\s*===\s*Example|" + KEEP_ORIGINAL,
    re.MULTILINE,
)


class ParsedRevision(BaseModel):
    """The outcome of one revision continuation; `text` is set only when status is REVISED."""

    raw: str
    status: RevisionStatus
    text: str | None = None
    reason: RejectReason | None = None
    detail: str = ""


def _reject(raw: str, reason: RejectReason, detail: str) -> ParsedRevision:
    return ParsedRevision(raw=raw, status=RevisionStatus.REJECTED, reason=reason, detail=detail)


def _regressions(
    instruction: Instruction,
    original: str,
    text: str,
    original_passed: list[bool] | None,
    check: CheckFn | None,
) -> list[str]:
    """Ids of constraints that the original met and the revision breaks."""
    if not instruction.constraints:
        return []
    check = check or verify
    if original_passed is None or len(original_passed) != len(instruction.constraints):
        original_passed = check(instruction, original)
    pairs = zip(instruction.constraints, original_passed, check(instruction, text), strict=True)
    return [c.id for c, was, now in pairs if was and not now]


def parse_revision(
    raw: str,
    original: str,
    instruction: Instruction,
    *,
    original_passed: list[bool] | None = None,
    min_chars: int = 20,
    min_length_ratio: float = 0.2,
    check: CheckFn | None = None,
) -> ParsedRevision:
    """Judge one revision continuation; never raises.

    raw: the generated text after "Revision:" (stop string removed, end line kept if emitted).
    A revision without the end line was cut by max_new_tokens (or wandered off): TRUNCATED.
    """
    end = raw.find(REVISION_END)
    body = (raw if end < 0 else raw[:end]).strip()
    if body.startswith(KEEP_ORIGINAL):
        return ParsedRevision(raw=raw, status=RevisionStatus.KEEP, detail="model kept the original")
    if m := _META_START.match(body) or _META_ANYWHERE.search(body):
        return _reject(raw, RejectReason.META_COMMENTARY, m.group(0))
    if m := _MARKER.search(body):
        return _reject(raw, RejectReason.MARKER_LEAK, m.group(0).strip())
    if end < 0:
        return _reject(raw, RejectReason.TRUNCATED, f"no '{REVISION_END}' line")
    floor = min(min_chars, len(original.strip()))
    if len(body) < floor or len(body) < min_length_ratio * len(original.strip()):
        return _reject(raw, RejectReason.TOO_SHORT, f"{len(body)} chars vs original {len(original.strip())}")
    if " ".join(body.split()) == " ".join(original.split()):
        return ParsedRevision(raw=raw, status=RevisionStatus.KEEP, detail="same as the original")
    if broken := _regressions(instruction, original, body, original_passed, check):
        return _reject(raw, RejectReason.CONSTRAINT_REGRESSION, ", ".join(broken))
    return ParsedRevision(raw=raw, status=RevisionStatus.REVISED, text=body)


class CritiqueSelect(StrEnum):
    """Which answers get critiqued."""

    ALL = "all"
    FAILING = "failing"  # answers that break at least one verifiable constraint
    FAILING_OR_UNVERIFIED = "failing_or_unverified"  # ...plus answers to instructions without constraints

    def wants(self, response: Response, instruction: Instruction) -> bool:
        failing = bool(instruction.constraints) and not response.all_passed
        match self:
            case CritiqueSelect.ALL:
                return True
            case CritiqueSelect.FAILING:
                return failing
            case CritiqueSelect.FAILING_OR_UNVERIFIED:
                return failing or not instruction.constraints


class ReviseWhen(StrEnum):
    """Which critiqued answers get a revision prompt."""

    PROBLEM = "problem"  # only a PROBLEM verdict: saves the revision pass where the critic is content
    ALWAYS = "always"  # every critique, whatever its verdict, as in Bai et al. (2022)


class CritiqueSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool = Field(True, description="run critique and revision at all")
    select: CritiqueSelect = Field(CritiqueSelect.FAILING_OR_UNVERIFIED, description="answers to critique")
    max_items: int | None = Field(200, ge=1, description="cap on answers (seeded sample); null = all")
    rounds: int = Field(1, ge=1, le=4, description="critique/revise rounds, a new principle each")
    revise: ReviseWhen = Field(ReviseWhen.PROBLEM, description="revise after a PROBLEM verdict, or always")
    shots: int = Field(3, ge=0, le=8, description="few-shot examples per prompt, from the constitution")
    critique_max_new_tokens: int = Field(160, ge=8, description="token budget of one critique")
    max_new_tokens: int = Field(384, ge=8, description="token budget of one revision")
    temperature: float = Field(0.3, ge=0.0, description="sampling temperature of critiques and revisions")
    top_p: float = Field(0.95, gt=0.0, le=1.0, description="nucleus sampling of critiques and revisions")
    min_revision_chars: int = Field(20, ge=1, description="shorter revisions are rejected (or < original)")
    min_length_ratio: float = Field(0.2, ge=0.0, le=1.0, description="reject revisions < this x original")
    seed: int = Field(0, description="seed of item selection, principle sampling and decoding")
    stop_if_all_rejected: bool = Field(
        True, description="health gate: stop when every critique or revision was rejected"
    )


class CritiqueRecord(Record):
    response_id: str = Field(description="the answer that was critiqued")
    instruction_id: str
    round: int
    principle_id: str
    critique: str
    verdict: Verdict
    revision_raw: str | None = Field(None, description="raw revision continuation, when one was asked for")
    status: RevisionStatus
    reject_reason: RejectReason | None = None
    detail: str = ""
    revision_id: str | None = Field(None, description="id of the new Response when status is revised")


@dataclass
class CritiqueOutput:
    revisions: list[Response]
    critiques: list[CritiqueRecord]
    principle_usage: Counter = field(default_factory=Counter)


# ---------------------------------------------------------------- prompts
def critique_prompt(
    constitution: Constitution, principle: Principle, instruction: Instruction, answer: str, shots: int
) -> str:
    """The few-shot prompt whose continuation is a critique of `answer` ending in a verdict line."""
    return render(
        "critique",
        shots=constitution.examples(principle, shots, with_revision=False),
        prompt=instruction.prompt,
        response=answer,
        principle=principle,
    )


def revision_prompt(
    constitution: Constitution,
    principle: Principle,
    instruction: Instruction,
    answer: str,
    critique: str,
    shots: int,
) -> str:
    """The few-shot prompt whose continuation is a complete revised answer or KEEP_ORIGINAL."""
    return render(
        "revision",
        shots=constitution.examples(principle, shots, with_revision=True),
        prompt=instruction.prompt,
        response=answer,
        principle=principle,
        critique=critique,
    )


# ---------------------------------------------------------------- the step
@dataclass
class _Item:
    """One answer being worked on: the instruction and the latest accepted version of the answer."""

    instruction: Instruction
    current: Response
    principle: Principle | None = None
    critique: ParsedCritique | None = None


def select(cfg: CritiqueSettings, instructions: list[Instruction], responses: list[Response]) -> list[_Item]:
    """Answers to critique: those `cfg.select` wants, a seeded sample of at most max_items, in input order."""
    by_id = {i.id: i for i in instructions}
    wanted = [
        (n, r)
        for n, r in enumerate(responses)
        if r.instruction_id in by_id and cfg.select.wants(r, by_id[r.instruction_id])
    ]
    if cfg.max_items is not None and len(wanted) > cfg.max_items:
        wanted = sorted(random.Random(cfg.seed).sample(wanted, cfg.max_items))
    return [_Item(by_id[r.instruction_id], r) for _, r in wanted]


def _sampling(cfg: CritiqueSettings, max_new_tokens: int, round_: int) -> Sampling:
    common = cfg.model_dump(include={"temperature", "top_p"})
    return Sampling(n=1, max_new_tokens=max_new_tokens, stop=STOP, seed=cfg.seed + round_, **common)


def _critique_round(cfg, items: list[_Item], constitution: Constitution, engine: Engine, round_: int) -> None:
    for it in items:
        # Seeded per answer and round, so the principle does not depend on batch order or resume point.
        it.principle = constitution.sample(random.Random(f"{cfg.seed}:{it.current.id}:{round_}"))
    prompts = [
        critique_prompt(constitution, it.principle, it.instruction, it.current.text, cfg.shots)
        for it in items
    ]
    outs = engine.generate(prompts, _sampling(cfg, cfg.critique_max_new_tokens, round_))
    for it, out in zip(items, outs, strict=True):
        it.critique = parse_critique(out[0])


def _record(
    it: _Item, rnd: int, parsed: ParsedRevision | None, why: RejectReason | None = None
) -> CritiqueRecord:
    status = parsed.status if parsed else (RevisionStatus.REJECTED if why else RevisionStatus.KEEP)
    return CritiqueRecord(
        id=f"{it.current.id}~c{rnd}",
        response_id=it.current.id,
        instruction_id=it.instruction.id,
        round=rnd,
        principle_id=it.principle.id,
        critique=it.critique.critique,
        verdict=it.critique.verdict,
        revision_raw=parsed.raw if parsed else None,
        status=status,
        reject_reason=parsed.reason if parsed else why,
        detail=parsed.detail if parsed else "",
        revision_id=f"{it.current.id}~r{rnd}" if status is RevisionStatus.REVISED else None,
    )


def _apply_guard(guard: GuardFn, items: list[_Item], parses: list[ParsedRevision]) -> None:
    """Reject, in place, the revisions the content guard refuses (they do not count as revised)."""
    done = [k for k, p in enumerate(parses) if p.status is RevisionStatus.REVISED]
    whys = guard([(items[k].instruction, items[k].current.text, parses[k].text) for k in done])
    for k, why in zip(done, whys, strict=True):
        if why:
            parses[k] = _reject(parses[k].raw, RejectReason.CONTENT_GUARD, f"{why[0]}: {why[1]}")


def _revision_round(
    cfg, items, constitution, engine, round_, check: CheckFn, guard: GuardFn | None = None
) -> tuple[list, list[_Item]]:
    """Revise the given items (see CritiqueSettings.revise); return records and the items revised."""
    prompts = [
        revision_prompt(
            constitution, it.principle, it.instruction, it.current.text, it.critique.critique, cfg.shots
        )
        for it in items
    ]
    outs = engine.generate(prompts, _sampling(cfg, cfg.max_new_tokens, round_)) if items else []
    records, revised = [], []
    parses = [
        parse_revision(
            out[0],
            it.current.text,
            it.instruction,
            original_passed=it.current.passed,
            min_chars=cfg.min_revision_chars,
            min_length_ratio=cfg.min_length_ratio,
            check=check,
        )
        for it, out in zip(items, outs, strict=True)
    ]
    if guard:
        _apply_guard(guard, items, parses)
    for it, parsed in zip(items, parses, strict=True):
        rec = _record(it, round_, parsed)
        records.append(rec)
        if parsed.status is RevisionStatus.REVISED:
            passed = check(it.instruction, parsed.text)
            it.current = it.current.model_copy(
                update={
                    "id": rec.revision_id,
                    "text": parsed.text,
                    "passed": passed,
                    "all_passed": all(passed),
                    "origin": "revision",
                    "parent_id": it.current.id,
                    "principle_id": it.principle.id,
                }
            )
            revised.append(it)
    return records, revised


def run(
    cfg: CritiqueSettings,
    instructions: list[Instruction],
    responses: list[Response],
    constitution: Constitution,
    engine: Engine,
    check: CheckFn | None = None,
    guard: GuardFn | None = None,
) -> CritiqueOutput:
    """Critique the selected answers and revise those with a problem, for up to cfg.rounds rounds.

    check(instruction, text) -> passed per constraint; default: the constraint library (strict).
    guard: a revision it refuses is rejected (content_guard), not counted as revised.
    Returns the accepted revisions as Response records (origin="revision"), one CritiqueRecord
    per critique, and how often each principle was used.
    """
    check = check or verify
    out = CritiqueOutput(revisions=[], critiques=[])
    if not cfg.enabled:
        return out
    items = select(cfg, instructions, responses)
    log.info(f"critique: {len(items)} of {len(responses)} answers selected ({cfg.select.value})")
    # The engine shows generation progress; here one log line per round says where we are.
    for round_ in range(1, cfg.rounds + 1):
        if not items:
            break
        _critique_round(cfg, items, constitution, engine, round_)
        out.principle_usage.update(it.principle.id for it in items)
        always = cfg.revise is ReviseWhen.ALWAYS
        problems = [it for it in items if always or it.critique.verdict is Verdict.PROBLEM]
        for it in items:
            if not always and it.critique.verdict is not Verdict.PROBLEM:
                reason = RejectReason.NO_VERDICT if it.critique.verdict is Verdict.UNCLEAR else None
                out.critiques.append(_record(it, round_, None, reason))
        log.info(f"critique round {round_}: {len(problems)} of {len(items)} answers to revise")
        records, items = _revision_round(cfg, problems, constitution, engine, round_, check, guard)
        out.critiques.extend(records)
        out.revisions.extend(it.current for it in items)
    _log_summary(out)
    rejected = sum(c.status is RevisionStatus.REJECTED for c in out.critiques)
    health.check_critiques(len(out.critiques), rejected, cfg.stop_if_all_rejected)
    return out


def _log_summary(out: CritiqueOutput) -> None:
    status = Counter(c.status.value for c in out.critiques)
    reasons = Counter(c.reject_reason.value for c in out.critiques if c.reject_reason)
    log.info(f"critique: {dict(status)}; rejected because {dict(reasons) or 'nothing'}")
