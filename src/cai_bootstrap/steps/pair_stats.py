"""Statistics of a preference-pair set: how many candidates each filter removed, how often answers
were identical, how often revisions win, the margin distribution, meta-commentary in revisions,
principle usage, and length bias. `cai-bootstrap pairs-stats DIR` prints them.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from rich.table import Table

from ..records import PreferencePair
from ..store import read_jsonl
from .critique import CritiqueRecord, RejectReason
from .pair_records import DroppedPair, DropReason, OrderSource, normalise, words

PAIRS_FILE = "records.jsonl"
DROPPED_FILE = "dropped.jsonl"
CRITIQUES_FILE = "critiques.jsonl"
# Warn when the final set has more identical pairs than this share (they teach DPO nothing)...
MAX_IDENTICAL_SHARE = 0.05
# ...or when revisions win less than this share of the pairs they are in (critique is not helping).
MIN_REVISION_WIN = 0.60
QUANTILES = {"min": 0.0, "p10": 0.1, "p25": 0.25, "p50": 0.5, "p75": 0.75, "p90": 0.9, "max": 1.0}


class FunnelStep(BaseModel):
    model_config = ConfigDict(extra="forbid")
    filter: str
    dropped: int
    remaining: int


class PairStats(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pairs: int = Field(description="pairs in the final set")
    candidates: int = Field(description="candidate pairs before any filter (final + dropped)")
    dropped_by_reason: dict[str, int]
    funnel: list[FunnelStep] = Field(description="candidates left after each filter, in filter order")
    identical_rate: float = Field(description="share of candidate pairs whose answers were identical")
    identical_in_final: int = Field(description="final pairs whose chosen and rejected are identical")
    order_sources: dict[str, int] = Field(
        description="final pairs per ordering source (verifier, judge, reward)"
    )
    revision_pairs: int = Field(description="final pairs with a revision on exactly one side")
    revised_chosen_rate: float | None = Field(description="share of those where the revision is chosen")
    margin_quantiles: dict[str, dict[str, float]] = Field(description="per ordering source")
    critiques: int
    critique_status: dict[str, int]
    reject_reasons: dict[str, int]
    meta_commentary_rate: float | None = Field(
        description="share of revision attempts rejected as meta-commentary"
    )
    principle_usage: dict[str, int]
    chosen_mean_words: float | None
    rejected_mean_words: float | None
    sft_refused_by_reason: dict[str, int] = Field(
        default_factory=dict, description="passing answers a content guard refused as SFT targets"
    )
    warnings: list[str]


def _rate(num: int, den: int) -> float | None:
    return num / den if den else None


def _funnel(candidates: int, dropped: Counter) -> list[FunnelStep]:
    remaining, out = candidates, []
    for reason in DropReason:
        remaining -= dropped.get(reason.value, 0)
        out.append(FunnelStep(filter=reason.value, dropped=dropped.get(reason.value, 0), remaining=remaining))
    return out


def _source(pair: PreferencePair) -> str:
    word = pair.reason.split(" ", 1)[0]
    return word if word in {s.value for s in OrderSource} else "other"


def _margins(pairs: list[PreferencePair]) -> dict[str, dict[str, float]]:
    by_source: dict[str, list[float]] = {}
    for p in pairs:
        if p.margin is not None:
            by_source.setdefault(_source(p), []).append(p.margin)
    return {
        src: {k: float(np.quantile(vals, q)) for k, q in QUANTILES.items()} for src, vals in by_source.items()
    }


def _revision_wins(pairs: list[PreferencePair]) -> tuple[int, float | None]:
    mixed = [p for p in pairs if (p.chosen_origin == "revision") != (p.rejected_origin == "revision")]
    won = sum(p.chosen_origin == "revision" for p in mixed)
    return len(mixed), _rate(won, len(mixed))


def _critique_stats(critiques: list[CritiqueRecord]) -> dict:
    attempts = [c for c in critiques if c.revision_raw is not None]
    meta = sum(c.reject_reason is RejectReason.META_COMMENTARY for c in attempts)
    return {
        "critiques": len(critiques),
        "critique_status": dict(Counter(c.status.value for c in critiques)),
        "reject_reasons": dict(Counter(c.reject_reason.value for c in critiques if c.reject_reason)),
        "meta_commentary_rate": _rate(meta, len(attempts)),
        "principle_usage": dict(Counter(c.principle_id for c in critiques).most_common()),
    }


def _warnings(pairs: int, identical_in_final: int, revision_pairs: int, revised_rate: float | None) -> list:
    out = []
    if pairs and identical_in_final / pairs > MAX_IDENTICAL_SHARE:
        out.append(
            f"{identical_in_final} of {pairs} final pairs ({identical_in_final / pairs:.0%}) have identical "
            f"answers (limit {MAX_IDENTICAL_SHARE:.0%}): turn pairs.drop_identical on"
        )
    if revised_rate is not None and revised_rate < MIN_REVISION_WIN:
        out.append(
            f"revisions win only {revised_rate:.0%} of the {revision_pairs} pairs they are in "
            f"(expected >= {MIN_REVISION_WIN:.0%}): critique and revision may not be helping"
        )
    return out


def _mean(values: list[int]) -> float | None:
    return float(np.mean(values)) if values else None


def pair_stats(
    pairs: list[PreferencePair], dropped: list[DroppedPair], critiques: list[CritiqueRecord]
) -> PairStats:
    """Statistics of a final pair set, the candidates dropped on the way, and the critique records.
    Dropped records with target "sft" (content guards on SFT targets) are counted on their own."""
    sft_refused = Counter(d.reason.value for d in dropped if d.target == "sft")
    dropped = [d for d in dropped if d.target == "pair"]
    by_reason = Counter(d.reason.value for d in dropped)
    candidates = len(pairs) + len(dropped)
    identical_final = sum(normalise(p.chosen) == normalise(p.rejected) for p in pairs)
    revision_pairs, revised_rate = _revision_wins(pairs)
    return PairStats(
        pairs=len(pairs),
        candidates=candidates,
        dropped_by_reason={r.value: by_reason[r.value] for r in DropReason if by_reason[r.value]},
        funnel=_funnel(candidates, by_reason),
        identical_rate=(by_reason[DropReason.IDENTICAL.value] + identical_final) / candidates
        if candidates
        else 0.0,
        identical_in_final=identical_final,
        order_sources=dict(Counter(_source(p) for p in pairs)),
        revision_pairs=revision_pairs,
        revised_chosen_rate=revised_rate,
        margin_quantiles=_margins(pairs),
        chosen_mean_words=_mean([words(p.chosen) for p in pairs]),
        rejected_mean_words=_mean([words(p.rejected) for p in pairs]),
        sft_refused_by_reason=dict(sft_refused),
        warnings=_warnings(len(pairs), identical_final, revision_pairs, revised_rate),
        **_critique_stats(critiques),
    )


def _critiques_path(folder: Path) -> Path | None:
    """critiques.jsonl in the pairs folder, else in the sibling critique step's folder."""
    for path in (folder / CRITIQUES_FILE, folder.parent / "critique" / CRITIQUES_FILE):
        if path.is_file():
            return path
    return None


def pairs_stats_from_dir(folder: Path) -> PairStats:
    """Read records.jsonl (pairs), dropped.jsonl and, if present, critique records; compute stats."""
    folder = Path(folder)
    pairs = read_jsonl(folder / PAIRS_FILE, PreferencePair)
    dropped = read_jsonl(folder / DROPPED_FILE, DroppedPair) if (folder / DROPPED_FILE).exists() else []
    crit_path = _critiques_path(folder)
    critiques = read_jsonl(crit_path, CritiqueRecord) if crit_path else []
    return pair_stats(pairs, dropped, critiques)


def _fmt(value: float | None, pct: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value:.1%}" if pct else f"{value:.2f}"


def format_stats(stats: PairStats) -> Table:
    """A two-column rich table of the statistics, warnings last."""
    table = Table(title="preference pairs", show_header=True)
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("candidate pairs", str(stats.candidates))
    for step in stats.funnel:
        table.add_row(f"  after {step.filter}", f"{step.remaining} (-{step.dropped})")
    table.add_row("final pairs", str(stats.pairs))
    table.add_row("identical rate (candidates)", _fmt(stats.identical_rate, pct=True))
    table.add_row("identical in final set", str(stats.identical_in_final))
    table.add_row("ordered by", ", ".join(f"{k} {v}" for k, v in stats.order_sources.items()) or "-")
    table.add_row("revision chosen", f"{_fmt(stats.revised_chosen_rate, pct=True)} of {stats.revision_pairs}")
    for src, q in stats.margin_quantiles.items():
        table.add_row(f"{src} margin p10/p50/p90", f"{q['p10']:.2f} / {q['p50']:.2f} / {q['p90']:.2f}")
    table.add_row(
        "mean words chosen / rejected", f"{_fmt(stats.chosen_mean_words)} / {_fmt(stats.rejected_mean_words)}"
    )
    refused = ", ".join(f"{k} {v}" for k, v in stats.sft_refused_by_reason.items())
    table.add_row("SFT targets refused (content)", refused or "0")
    table.add_row("critiques", str(stats.critiques))
    table.add_row("  meta-commentary rate", _fmt(stats.meta_commentary_rate, pct=True))
    for pid, n in stats.principle_usage.items():
        table.add_row(f"  principle {pid}", str(n))
    for w in stats.warnings:
        table.add_row("[yellow]warning[/yellow]", w)
    return table
