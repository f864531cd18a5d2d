"""Statistics for comparing a baseline and a trained model on the same held-out items.

Rates get Wilson score intervals, paired pass/fail outcomes get McNemar's test, effect sizes are
Cohen's h, and per-constraint-type p-values are adjusted with Benjamini-Hochberg.
"""

from __future__ import annotations

import math
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from .errors import StepFailed

# Below this many discordant pairs the chi-square approximation to McNemar's statistic is poor
# (a common rule of thumb, e.g. Agresti, Categorical Data Analysis, 10.1), so the exact binomial
# test is used instead; at and above it the continuity-corrected chi-square is close to exact.
EXACT_BELOW = 25


def _sps():
    """scipy.stats, imported on first use: it takes about a second, and the recipe check (which imports
    this module through the config's settings classes) must report a bad recipe faster than that."""
    from scipy import stats

    return stats


def wilson(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial rate; (0.0, 1.0) when there is no data."""
    _check_counts(successes, n)
    if n == 0:
        return 0.0, 1.0
    ci = _sps().binomtest(successes, n).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


def _check_counts(successes: int, n: int) -> None:
    if n < 0 or successes < 0 or successes > n:
        raise StepFailed(
            f"impossible counts: {successes} successes out of {n}", "check the evaluation records"
        )


class RateSummary(BaseModel):
    """A success rate with its 95% Wilson interval."""

    model_config = ConfigDict(extra="forbid")
    successes: int = Field(description="number of passing items")
    n: int = Field(description="number of items")
    rate: float = Field(description="successes / n (0.0 when n is 0)")
    ci_low: float = Field(description="lower end of the 95% Wilson interval")
    ci_high: float = Field(description="upper end of the 95% Wilson interval")


def summarize(successes: int, n: int) -> RateSummary:
    low, high = wilson(successes, n)
    return RateSummary(successes=successes, n=n, rate=successes / n if n else 0.0, ci_low=low, ci_high=high)


def summarize_bools(outcomes: list[bool]) -> RateSummary:
    return summarize(sum(bool(x) for x in outcomes), len(outcomes))


class Direction(StrEnum):
    """Which way the discordant pairs lean; knows its arrow for tables."""

    IMPROVED = "improved"
    REGRESSED = "regressed"
    UNCHANGED = "unchanged"

    @property
    def arrow(self) -> str:
        return {"improved": "\u2191", "regressed": "\u2193", "unchanged": "="}[self.value]


class McNemarResult(BaseModel):
    """McNemar's test on paired outcomes of the same items."""

    model_config = ConfigDict(extra="forbid")
    b: int = Field(description="discordant: baseline passed, trained failed")
    c: int = Field(description="discordant: baseline failed, trained passed")
    n: int = Field(description="number of paired items")
    statistic: float | None = Field(description="continuity-corrected chi-square; None for the exact test")
    p_value: float = Field(description="two-sided p-value")
    method: str = Field(description="'exact' (binomial) or 'chi2_cc' (chi-square, continuity corrected)")
    direction: Direction = Field(description="improved if c > b, regressed if b > c")


def _paired(base: list[bool], trained: list[bool]) -> None:
    if len(base) != len(trained):
        raise StepFailed(
            f"baseline and trained results are not paired: {len(base)} vs {len(trained)} items",
            "evaluate both models on the same held-out items",
        )


def mcnemar(base: list[bool], trained: list[bool]) -> McNemarResult:
    """Two-sided McNemar test of base vs trained pass/fail on the same items (same order)."""
    _paired(base, trained)
    b = sum(1 for x, y in zip(base, trained, strict=True) if x and not y)
    c = sum(1 for x, y in zip(base, trained, strict=True) if y and not x)
    direction = Direction.IMPROVED if c > b else Direction.REGRESSED if b > c else Direction.UNCHANGED
    common = {"b": b, "c": c, "n": len(base), "direction": direction}
    if b + c == 0:
        # No discordant pair: the data carry no evidence of a difference.
        return McNemarResult(statistic=None, p_value=1.0, method="exact", **common)
    if b + c < EXACT_BELOW:
        # Under H0 each discordant pair is a fair coin: b ~ Binomial(b + c, 1/2).
        p = _sps().binomtest(b, b + c, 0.5, alternative="two-sided").pvalue
        return McNemarResult(statistic=None, p_value=min(1.0, float(p)), method="exact", **common)
    stat = (abs(b - c) - 1) ** 2 / (b + c)
    p = _sps().chi2.sf(stat, df=1)
    return McNemarResult(statistic=float(stat), p_value=float(p), method="chi2_cc", **common)


def cohens_h(p1: float, p2: float) -> float:
    """Cohen's h effect size from rate p1 (baseline) to p2 (trained); positive means p2 is higher."""
    for p in (p1, p2):
        if not 0.0 <= p <= 1.0:
            raise StepFailed(f"a rate must lie in [0, 1], got {p}", "pass proportions, not percentages")
    return 2 * math.asin(math.sqrt(p2)) - 2 * math.asin(math.sqrt(p1))


def benjamini_hochberg(pvalues: list[float], alpha: float = 0.05) -> list[tuple[float, bool]]:
    """BH-adjusted p-values (same order as given) and whether each is rejected at FDR `alpha`."""
    if not pvalues:
        return []
    for p in pvalues:
        if not 0.0 <= p <= 1.0:
            raise StepFailed(f"a p-value must lie in [0, 1], got {p}", "check the tests that produced it")
    adjusted = _sps().false_discovery_control(pvalues, method="bh")
    return [(float(a), bool(a <= alpha)) for a in adjusted]


class TypeRow(BaseModel):
    """Baseline vs trained on the items that carry one constraint type."""

    model_config = ConfigDict(extra="forbid")
    type: str = Field(description="constraint type, e.g. 'punctuation:no_comma'")
    base: RateSummary = Field(description="baseline pass rate on this type")
    trained: RateSummary = Field(description="trained pass rate on this type")
    mcnemar: McNemarResult = Field(description="paired test on this type's items")
    cohens_h: float = Field(description="effect size, trained vs baseline")
    p_adjusted: float = Field(description="Benjamini-Hochberg adjusted p-value across types")
    significant: bool = Field(description="p_adjusted <= alpha")


class Comparison(BaseModel):
    """Baseline vs trained overall and per constraint type."""

    model_config = ConfigDict(extra="forbid")
    base: RateSummary = Field(description="baseline overall pass rate")
    trained: RateSummary = Field(description="trained overall pass rate")
    mcnemar: McNemarResult = Field(description="paired test over all items")
    cohens_h: float = Field(description="effect size, trained vs baseline")
    alpha: float = Field(0.05, description="false discovery rate used for the per-type marks")
    per_type: list[TypeRow] = Field(default_factory=list, description="one row per constraint type")

    @property
    def delta(self) -> float:
        return self.trained.rate - self.base.rate


def compare(
    base: list[bool],
    trained: list[bool],
    by_type: dict[str, tuple[list[bool], list[bool]]] | None = None,
    alpha: float = 0.05,
) -> Comparison:
    """Compare paired outcomes overall and per type; per-type p-values are BH-adjusted together."""
    _paired(base, trained)
    sb, st = summarize_bools(base), summarize_bools(trained)
    rows = []
    types = sorted((by_type or {}).items())
    tests = [mcnemar(b, t) for _, (b, t) in types]
    adjusted = benjamini_hochberg([m.p_value for m in tests], alpha)
    for (name, (b, t)), test, (p_adj, reject) in zip(types, tests, adjusted, strict=True):
        rb, rt = summarize_bools(b), summarize_bools(t)
        h = cohens_h(rb.rate, rt.rate)
        rows.append(
            TypeRow(
                type=name, base=rb, trained=rt, mcnemar=test, cohens_h=h, p_adjusted=p_adj, significant=reject
            )
        )
    h_all = cohens_h(sb.rate, st.rate)
    return Comparison(
        base=sb, trained=st, mcnemar=mcnemar(base, trained), cohens_h=h_all, alpha=alpha, per_type=rows
    )


class CorrectedRate(BaseModel):
    """A prevalence corrected for a classifier's measured sensitivity and specificity (Rogan-Gladen)."""

    model_config = ConfigDict(extra="forbid")
    raw: float = Field(description="share of items the classifier called positive")
    rate: float = Field(description="corrected prevalence, clipped to [0, 1]")
    ci_low: float = Field(description="lower end of the propagated interval (see rogan_gladen)")
    ci_high: float = Field(description="upper end of the propagated interval")
    n: int = Field(description="items classified")
    sensitivity: float = Field(description="P(called positive | positive), measured on labelled data")
    specificity: float = Field(description="P(called negative | negative), measured on labelled data")


def _rg(p: float, se: float, sp: float) -> float:
    return min(1.0, max(0.0, (p + sp - 1.0) / (se + sp - 1.0)))


def rogan_gladen(
    positives: int, n: int, tp: int, n_pos: int, tn: int, n_neg: int, confidence: float = 0.95
) -> CorrectedRate:
    """Prevalence of positives among n items, `positives` of which a classifier called positive,
    corrected for its sensitivity tp/n_pos and specificity tn/n_neg (Rogan & Gladen 1978):

        pi = (p + Sp - 1) / (Se + Sp - 1)        p = positives / n, clipped to [0, 1]

    Interval: the observed rate, Se and Sp each get a Wilson interval at confidence 1 - alpha/3
    (Bonferroni: all three hold together with probability >= 1 - alpha), and the corrected rate's
    interval is the smallest and largest pi over the corners of that box: with the other two fixed,
    pi is monotone in each of p, Se and Sp (a ratio of linear functions with no pole in the box), so
    its extremes over the box lie on corners. When Se + Sp - 1 can reach 0 inside the box the
    classifier may be no better than chance and the interval is the whole [0, 1]. This is wider than the delta method (Greiner &
    Gardner 2000) but needs no normal approximation, which the small labelled sets would not bear.
    """
    for k, m in ((positives, n), (tp, n_pos), (tn, n_neg)):
        _check_counts(k, m)
    if min(n, n_pos, n_neg) == 0:
        raise StepFailed(
            "a corrected rate needs items and labelled positives and negatives", "calibrate first"
        )
    p, se, sp = positives / n, tp / n_pos, tn / n_neg
    level = 1 - (1 - confidence) / 3
    box = [wilson(positives, n, level), wilson(tp, n_pos, level), wilson(tn, n_neg, level)]
    common = {"raw": p, "n": n, "sensitivity": se, "specificity": sp}
    if se + sp - 1.0 <= 0:
        raise StepFailed(
            f"no correction for a classifier no better than chance (Se {se:.2f} + Sp {sp:.2f} <= 1)",
            "use a judge that passes calibration",
        )
    rate = _rg(p, se, sp)
    if box[1][0] + box[2][0] - 1.0 <= 0:
        return CorrectedRate(rate=rate, ci_low=0.0, ci_high=1.0, **common)
    corners = [_rg(a, b, c) for a in box[0] for b in box[1] for c in box[2]]
    return CorrectedRate(rate=rate, ci_low=min(corners), ci_high=max(corners), **common)
