"""Preference pairs (TRL prompt/chosen/rejected) from sampled answers and their revisions.

Every two answers to one instruction form a candidate pair. The verifiers order it first (more
constraints passed wins); a tie goes to the judge (self A/B judge or reward model). Filters drop
empty, identical and near-identical pairs, judge-only pairs with a weak margin, judge-only pairs
whose chosen side is much longer (judges favour length: Singhal et al. 2023, "A long way to go"),
and pairs over the per-instruction cap. The content guards (content_guards.py) drop pairs whose
chosen answer does not do the task, and refuse such answers as SFT targets. Every dropped candidate
is recorded with its reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

from pydantic import BaseModel, ConfigDict, Field

from ..log import log
from ..records import Instruction, PreferencePair, Response, SFTExample
from ..tasks import frame
from . import content_guards
from .content_guards import ContentGuardSettings, Guard
from .judge import JudgeFn
from .pair_records import DroppedPair, DropReason, OrderSource, jaccard, normalise, words
from .pair_stats import PairStats, pair_stats


class PairSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pairs_per_instruction: int = Field(2, ge=1, description="at most this many pairs per instruction")
    drop_identical: bool = Field(True, description="drop pairs whose answers are equal up to whitespace")
    max_jaccard: float = Field(
        0.9, gt=0.0, le=1.0, description="drop pairs whose word-set Jaccard similarity is >= this"
    )
    min_margin: float = Field(0.5, ge=0.0, description="drop judge-ordered pairs with |margin| below this")
    max_length_ratio: float | None = Field(
        3.0,
        gt=1.0,
        description="drop judge-ordered pairs whose chosen is > this x longer (words); null = off",
    )
    max_judged_per_instruction: int = Field(
        12, ge=0, description="verifier ties sent to the judge per instruction (compute bound)"
    )
    drop_truncated: bool = Field(
        True,
        description="an answer cut off at max_new_tokens is never chosen nor an SFT target; "
        "false only for models that never stop (random-weight timing runs, tiny test models)",
    )
    sft_from_chosen: bool = Field(
        False,
        description="SFT also on the chosen answer of instructions with no passing answer (judge-ordered)",
    )
    sft_per_instruction: int = Field(
        1,
        ge=1,
        description="SFT examples per instruction: up to this many distinct verified answers "
        "(rejection-sampling fine-tuning)",
    )
    min_pairs: int = Field(
        8, ge=0, description="health gate: stop if DPO is enabled and fewer pairs survive the filters"
    )
    guards: ContentGuardSettings = Field(
        default_factory=ContentGuardSettings,
        description="content guards on chosen answers, SFT targets and revisions (content_guards.py)",
    )


@dataclass
class PairOutput:
    pairs: list[PreferencePair]
    dropped: list[DroppedPair]
    stats: PairStats


@dataclass
class _Ordered:
    instruction: Instruction
    chosen: Response
    rejected: Response
    source: OrderSource
    margin: float
    reason: str
    gap: int = 0  # verifier score difference


def score(response: Response) -> int:
    """Verifier score: the number of constraints passed."""
    return sum(response.passed)


def _drop(a: Response, b: Response, reason: DropReason, detail: str = "") -> DroppedPair:
    return DroppedPair(
        id=f"{a.instruction_id}:{a.id}|{b.id}",
        instruction_id=a.instruction_id,
        a_id=a.id,
        b_id=b.id,
        reason=reason,
        detail=detail,
    )


def text_filter(cfg: PairSettings, a: Response, b: Response) -> DroppedPair | None:
    """The filters that look at the two texts only: empty, identical, near-identical."""
    if not a.text.strip() or not b.text.strip():
        return _drop(a, b, DropReason.EMPTY)
    if cfg.drop_identical and normalise(a.text) == normalise(b.text):
        return _drop(a, b, DropReason.IDENTICAL)
    sim = jaccard(a.text, b.text)
    if sim >= cfg.max_jaccard:
        return _drop(a, b, DropReason.NEAR_IDENTICAL, f"jaccard {sim:.2f}")
    return None


def _by_verifier(instruction: Instruction, a: Response, b: Response) -> _Ordered:
    chosen, rejected = (a, b) if score(a) > score(b) else (b, a)
    n = max(len(instruction.constraints), 1)
    sc, sr = score(chosen), score(rejected)
    reason = f"{OrderSource.VERIFIER} {sc}/{n} vs {sr}/{n}"
    return _Ordered(instruction, chosen, rejected, OrderSource.VERIFIER, (sc - sr) / n, reason, sc - sr)


def _candidates(cfg: PairSettings, instruction: Instruction, answers: list[Response]):
    """Split one instruction's candidate pairs into verifier-ordered, ties for the judge, and drops."""
    ordered, ties, dropped = [], [], []
    for a, b in combinations(answers, 2):
        if (d := text_filter(cfg, a, b)) is not None:
            dropped.append(d)
        elif score(a) != score(b):
            o = _by_verifier(instruction, a, b)
            if cfg.drop_truncated and o.chosen.truncated:
                dropped.append(_drop(a, b, DropReason.TRUNCATED_CHOSEN))
            else:
                ordered.append(o)
        elif cfg.drop_truncated and a.truncated and b.truncated:
            dropped.append(_drop(a, b, DropReason.TRUNCATED_CHOSEN))
        elif len(ties) >= cfg.max_judged_per_instruction:
            dropped.append(_drop(a, b, DropReason.JUDGE_BUDGET))
        else:
            ties.append((instruction, a, b))
    return ordered, ties, dropped


def _judge_ties(
    cfg: PairSettings, ties: list, judge_fn: JudgeFn | None, judge_refused: str | None = None
) -> tuple[list, list]:
    """Order verifier ties by the judge; drop weak margins and length-biased wins. Without a judge
    every tie is dropped, with the calibration's reason when the judge was refused."""
    if judge_fn is None:
        if judge_refused:
            return [], [_drop(a, b, DropReason.JUDGE_UNCALIBRATED, judge_refused) for _, a, b in ties]
        return [], [_drop(a, b, DropReason.TIE_NO_JUDGE) for _, a, b in ties]
    prefs = judge_fn(ties) if ties else []
    ordered, dropped = [], []
    for (ins, a, b), pref in zip(ties, prefs, strict=True):
        if abs(pref.margin) < cfg.min_margin:
            dropped.append(_drop(a, b, DropReason.WEAK_MARGIN, f"margin {pref.margin:+.3f}"))
            continue
        chosen, rejected = (a, b) if pref.margin > 0 else (b, a)
        if cfg.drop_truncated and chosen.truncated:
            dropped.append(_drop(a, b, DropReason.TRUNCATED_CHOSEN, f"margin {pref.margin:+.3f}"))
            continue
        ratio = words(chosen.text) / max(words(rejected.text), 1)
        if cfg.max_length_ratio is not None and ratio > cfg.max_length_ratio:
            dropped.append(_drop(a, b, DropReason.LENGTH_RATIO, f"chosen {ratio:.1f}x longer"))
            continue
        source = OrderSource(pref.source)
        reason = f"{source} margin {abs(pref.margin):.3f} ({pref.note})"
        ordered.append(_Ordered(ins, chosen, rejected, source, abs(pref.margin), reason))
    return ordered, dropped


def _guarded(guard: Guard, ordered: dict[str, list[_Ordered]]) -> list[DroppedPair]:
    """Drop ordered pairs whose chosen answer fails a content guard; relevance is scored in one
    batch, for the pairs whose chosen passes the text guards."""
    flat = [o for group in ordered.values() for o in group]
    live = [
        o for o in flat if not content_guards.answer_problem(guard, o.instruction, o.chosen.text, o.chosen.id)
    ]
    content_guards.score_relevance(guard, [(o.instruction, r) for o in live for r in (o.chosen, o.rejected)])
    dropped = []
    for key, group in ordered.items():
        ordered[key] = []
        for o in group:
            if why := content_guards.pair_problem(guard, o.instruction, o.chosen, o.rejected):
                dropped.append(_drop(o.chosen, o.rejected, *why))
            else:
                ordered[key].append(o)
    return dropped


def _choose(cfg: PairSettings, ordered: list[_Ordered]) -> tuple[list[_Ordered], list[DroppedPair]]:
    """At most pairs_per_instruction pairs: verifier-ordered first, bigger gaps and margins first,
    and pairs that reuse no already chosen answer before pairs that do."""
    ranked = sorted(
        ordered,
        key=lambda o: (o.source is not OrderSource.VERIFIER, -o.gap, -o.margin, o.chosen.id, o.rejected.id),
    )
    used: set[str] = set()
    fresh, reused = [], []
    for o in ranked:
        ids = {o.chosen.id, o.rejected.id}
        if ids & used:
            reused.append(o)
        else:
            fresh.append(o)
            used |= ids
    keep = (fresh + reused)[: cfg.pairs_per_instruction]
    kept_ids = {id(o) for o in keep}
    cut = [o for o in ranked if id(o) not in kept_ids]
    return keep, [_drop(o.chosen, o.rejected, DropReason.PER_INSTRUCTION_CAP) for o in cut]


def to_pair(o: _Ordered) -> PreferencePair:
    """A TRL preference record in the exact generation frame (prompt ends at 'Response:')."""
    return PreferencePair(
        id=f"{o.instruction.id}:{o.chosen.id}>{o.rejected.id}",
        prompt=frame.prompt(o.instruction.prompt),
        chosen=frame.completion(o.chosen.text),
        rejected=frame.completion(o.rejected.text),
        instruction_id=o.instruction.id,
        chosen_id=o.chosen.id,
        rejected_id=o.rejected.id,
        reason=o.reason,
        margin=o.margin,
        chosen_origin=o.chosen.origin,
        rejected_origin=o.rejected.origin,
    )


def _grouped(instructions: list[Instruction], responses: list[Response]) -> list[tuple]:
    by_instruction: dict[str, list[Response]] = {i.id: [] for i in instructions}
    for r in responses:
        if r.instruction_id in by_instruction:
            by_instruction[r.instruction_id].append(r)
    return [(i, by_instruction[i.id]) for i in instructions]


def run(
    cfg: PairSettings,
    instructions: list[Instruction],
    responses: list[Response],
    judge_fn: JudgeFn | None,
    critiques: list | None = None,
    judge_refused: str | None = None,
    guard: Guard | None = None,
) -> PairOutput:
    """Build, order, filter and cap preference pairs; returns pairs, dropped candidates and stats
    (which also summarise `critiques`, the critique step's records, when given). `judge_refused`:
    why the judge is not used (its calibration), recorded on every tie it would have ordered.
    `guard`: the content guards (content_guards.make_guard), applied before the per-instruction cap."""

    ordered: dict[str, list[_Ordered]] = {}
    ties, dropped = [], []
    for instruction, answers in _grouped(instructions, responses):
        o, t, d = _candidates(cfg, instruction, answers)
        ordered[instruction.id] = o
        ties += t
        dropped += d
    judged, judge_dropped = _judge_ties(cfg, ties, judge_fn, judge_refused)
    dropped += judge_dropped
    for o in judged:
        ordered[o.instruction.id].append(o)
    if guard is not None:
        dropped += _guarded(guard, ordered)
    pairs = []
    for instruction in instructions:
        keep, cut = _choose(cfg, ordered[instruction.id])
        pairs += [to_pair(o) for o in keep]
        dropped += cut
    stats = pair_stats(pairs, dropped, critiques or [])
    log.info(f"pairs: {len(pairs)} kept of {stats.candidates} candidates; dropped {stats.dropped_by_reason}")
    return PairOutput(pairs=pairs, dropped=dropped, stats=stats)


def _passes(response: Response, instruction: Instruction, drop_truncated: bool = True) -> bool:
    """A usable SFT target: non-empty, finished (an answer cut off at the token limit would teach the
    model to stop mid-sentence, and a cut-off ramble can pass word limits), and passing its checks."""
    if (drop_truncated and response.truncated) or not response.text.strip():
        return False
    return response.all_passed or not instruction.constraints


def sft_examples(
    instructions: list[Instruction],
    responses: list[Response],
    chosen: list[PreferencePair] = (),
    drop_truncated: bool = True,
    per_instruction: int = 1,
) -> list[SFTExample]:
    """Up to `per_instruction` SFT examples per instruction from its distinct passing answers.

    First: the latest accepted revision (it was critiqued and kept every constraint it met), else
    the first sample that passes; then other passing samples with different text, in sample order
    (rejection-sampling fine-tuning: several verified answers per prompt, Yuan et al. 2023). An
    instruction without a passing answer gives no example, unless `chosen` holds a pair for it: then its
    first pair's chosen answer is used (the `sft_from_chosen` setting; such an answer is only better
    than its rejected one, not verified).
    """
    by_id = {r.id: r for r in responses}
    first_chosen: dict[str, Response] = {}
    for p in chosen:
        first_chosen.setdefault(p.instruction_id, by_id[p.chosen_id])
    out = []
    for instruction, answers in _grouped(instructions, responses):
        passing = [r for r in answers if _passes(r, instruction, drop_truncated)]
        if passing:
            revisions = [r for r in passing if r.origin == "revision"]
            ordered = sorted(passing, key=lambda r: (r.sample, r.id))
            picked = _distinct(revisions[-1:] + ordered, per_instruction)
        elif instruction.id in first_chosen:
            picked = [first_chosen[instruction.id]]
        else:
            continue
        for j, best in enumerate(picked):
            out.append(
                SFTExample(
                    id=f"sft-{instruction.id}" + (f"-{j}" if j else ""),
                    prompt=frame.prompt(instruction.prompt),
                    completion=frame.completion(best.text),
                    instruction_id=instruction.id,
                )
            )
    return out


def sft_candidates(
    guard: Guard | None,
    instructions: list[Instruction],
    responses: list[Response],
    drop_truncated: bool = True,
) -> tuple[list[Response], list[DroppedPair]]:
    """The responses less the passing answers a content guard refuses as SFT targets, and those
    refusals as dropped records (target "sft"). Answers that fail their constraints are never SFT
    targets of their own, so they are left in for `sft_examples` to ignore."""
    if guard is None:
        return responses, []
    by_id = {i.id: i for i in instructions}
    passing = [
        r
        for r in responses
        if r.instruction_id in by_id and _passes(r, by_id[r.instruction_id], drop_truncated)
    ]
    refused: dict[str, DroppedPair] = {}
    if guard.cfg.min_sft_relevance is not None:  # one batch, for the answers the text guards pass
        live = [
            r
            for r in passing
            if not content_guards.answer_problem(guard, by_id[r.instruction_id], r.text, r.id)
        ]
        content_guards.score_relevance(guard, [(by_id[r.instruction_id], r) for r in live])
    for r in passing:
        if why := content_guards.sft_problem(guard, by_id[r.instruction_id], r):
            reason, detail = why
            refused[r.id] = DroppedPair(
                id=f"{r.instruction_id}:{r.id}|sft",
                instruction_id=r.instruction_id,
                a_id=r.id,
                b_id="",
                reason=reason,
                detail=detail,
                target="sft",
            )
    return [r for r in responses if r.id not in refused], list(refused.values())


def _distinct(answers: list[Response], n: int) -> list[Response]:
    """The first n answers whose texts differ (up to whitespace)."""
    seen, out = set(), []
    for r in answers:
        key = " ".join(r.text.split())
        if key not in seen and len(out) < n:
            seen.add(key)
            out.append(r)
    return out
