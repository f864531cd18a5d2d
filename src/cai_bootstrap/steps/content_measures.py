"""Content measures of the held-out answers, base vs trained (issue 26): does an answer still do the
task while the constraint score rises?

Per answer: its length in words, whether it echoes the request, whether it repeats itself, whether
it has three words or fewer, and its back-translation relevance (tasks/content_checks.py), scored by
one fixed model (the stage's input model) for base and trained answers alike. Rates get Wilson
intervals and McNemar's test; lengths and relevance Wilcoxon's signed-rank test (scipy) on the
paired answers. A round whose constraint score rose while a measure got significantly worse is
flagged "gain with degraded content".
"""

from __future__ import annotations

import statistics

from pydantic import BaseModel, ConfigDict, Field

from ..records import EvalItem, Instruction, Record
from ..stats import Comparison, McNemarResult, RateSummary, mcnemar, summarize_bools
from ..tasks import content_checks as cc
from .content_guards import ANSWER_IDS

FLAG = "gain with degraded content"
SHORT_WORDS = 3


class ContentSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool = Field(True, description="measure the held-out answers' content, base vs trained")
    relevance: bool = Field(
        True,
        description="score back-translation relevance with the stage's input model (one forward per answer)",
    )
    echo_threshold: float = Field(
        0.5,
        gt=0.0,
        le=1.0,
        description="an answer echoes when >= this share of its word 3-grams is in the request",
    )
    repetition_threshold: float = Field(
        0.4, gt=0.0, le=1.0, description="an answer repeats itself when >= this share of its 4-grams repeat"
    )
    alpha: float = Field(0.05, gt=0.0, lt=1.0, description="significance level of 'degraded'")


class ContentRecord(Record):
    """The content measures of one held-out answer."""

    model_tag: str
    instruction_id: str
    words: int
    echo: bool
    repetition: bool
    short: bool = Field(description=f"{SHORT_WORDS} words or fewer")
    relevance: float | None = Field(None, description="nats per request token; None when not scored")


def measure(
    cfg: ContentSettings, held: list[Instruction], items: list[EvalItem], relevance_fn: cc.RelevanceFn | None
) -> list[ContentRecord]:
    """One ContentRecord per evaluated answer to a request for content; relevance in one batch when
    `relevance_fn` is given. Answer-checked questions (a fact, a choice, a span of a passage: the
    curriculum stages) are left out: a short answer in the request's own words is right there."""
    by_id = {i.id: i for i in held}
    pairs = [(by_id[it.instruction_id], it) for it in items]
    pairs = [(i, it) for i, it in pairs if not {c.id for c in i.constraints} & ANSWER_IDS]
    scores = relevance_fn([(i.task or i.prompt, it.response) for i, it in pairs]) if relevance_fn else None
    out = []
    for k, (ins, it) in enumerate(pairs):
        n = len(cc.words(it.response))
        echo = cc.echo_overlap(ins.prompt, it.response) >= cfg.echo_threshold or bool(
            cc.rule_talk(it.response)
        )
        repeats = max(cc.repeated_ngram_share(it.response), cc.repeated_line_share(it.response))
        out.append(
            ContentRecord(
                id=f"{it.model_tag}:{it.instruction_id}",
                model_tag=it.model_tag,
                instruction_id=it.instruction_id,
                words=n,
                echo=echo,
                repetition=repeats >= cfg.repetition_threshold,
                short=n <= SHORT_WORDS,
                relevance=scores[k] if scores is not None else None,
            )
        )
    return out


class RateMeasure(BaseModel):
    """A rate where higher is worse (echo, repetition, short answers)."""

    model_config = ConfigDict(extra="forbid")
    base: RateSummary
    trained: RateSummary
    mcnemar: McNemarResult
    degraded: bool = Field(description="trained significantly higher than base")


class ValueMeasure(BaseModel):
    """A paired value where lower is worse (length, relevance)."""

    model_config = ConfigDict(extra="forbid")
    base_mean: float
    trained_mean: float
    base_median: float
    trained_median: float
    p_value: float = Field(description="two-sided Wilcoxon signed-rank test on the paired values")
    degraded: bool = Field(description="trained significantly lower than base")


class ContentComparison(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n: int = Field(description="paired held-out answers")
    rates: dict[str, RateMeasure] = Field(description="echo, repetition, short (<= 3 words)")
    values: dict[str, ValueMeasure] = Field(description="words, relevance (when scored)")
    alpha: float

    @property
    def degraded(self) -> list[str]:
        return [k for k, m in {**self.rates, **self.values}.items() if m.degraded]


def _rate(base: list[bool], trained: list[bool], alpha: float) -> RateMeasure:
    test = mcnemar(base, trained)
    # McNemar's b counts base-yes/trained-no: for a bad property, more c than b means worse.
    worse = test.c > test.b and test.p_value < alpha
    return RateMeasure(
        base=summarize_bools(base), trained=summarize_bools(trained), mcnemar=test, degraded=worse
    )


def wilcoxon_p(base: list[float], trained: list[float]) -> float:
    """Two-sided signed-rank p-value; 1.0 when every pair is equal (no evidence of a difference)."""
    from scipy.stats import wilcoxon

    if all(b == t for b, t in zip(base, trained, strict=True)):
        return 1.0
    return float(wilcoxon(trained, base).pvalue)


def _value(base: list[float], trained: list[float], alpha: float) -> ValueMeasure:
    diffs = [t - b for b, t in zip(base, trained, strict=True)]
    # Lower after training: the paired differences lean negative (median, else mean when it is 0).
    lower = statistics.median(diffs) < 0 or (statistics.median(diffs) == 0 and statistics.fmean(diffs) < 0)
    p = wilcoxon_p(base, trained)
    return ValueMeasure(
        base_mean=statistics.fmean(base),
        trained_mean=statistics.fmean(trained),
        base_median=statistics.median(base),
        trained_median=statistics.median(trained),
        p_value=p,
        degraded=lower and p < alpha,
    )


def compare_content(
    base: list[ContentRecord], trained: list[ContentRecord], alpha: float
) -> ContentComparison:
    """Base vs trained on the answers to the same held-out instructions (paired by instruction)."""
    t_by = {r.instruction_id: r for r in trained}
    paired = [(b, t_by[b.instruction_id]) for b in base if b.instruction_id in t_by]
    if not paired:
        return ContentComparison(n=0, rates={}, values={}, alpha=alpha)
    rates = {
        name: _rate([getattr(b, name) for b, _ in paired], [getattr(t, name) for _, t in paired], alpha)
        for name in ("echo", "repetition", "short")
    }
    values = {"words": _value([b.words for b, _ in paired], [t.words for _, t in paired], alpha)}
    if all(b.relevance is not None and t.relevance is not None for b, t in paired):
        values["relevance"] = _value(
            [b.relevance for b, _ in paired], [t.relevance for _, t in paired], alpha
        )
    return ContentComparison(n=len(paired), rates=rates, values=values, alpha=alpha)


def flag(comparison: Comparison | None, content: ContentComparison | None) -> str | None:
    """FLAG and the degraded measures when the constraint score rose while content got worse."""
    if comparison is None or content is None or comparison.trained.rate <= comparison.base.rate:
        return None
    worse = content.degraded
    return f"{FLAG}: {', '.join(worse)}" if worse else None
