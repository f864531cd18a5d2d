"""The report's content section (steps/content_measures.py): one plain-text row per measure, so the
Markdown and HTML templates stay a loop."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from ..steps.content_measures import ContentComparison

LABELS = {
    "echo": "echo rate (restates the request)",
    "repetition": "repetition rate",
    "short": "answers of <= 3 words",
    "words": "length in words, mean / median",
    "relevance": "relevance (nats/token), mean / median",
}


class ContentRow(BaseModel):
    model_config = ConfigDict(extra="forbid")
    measure: str
    baseline: str
    trained: str
    test: str
    p: float
    worse: bool


def _rate(r) -> str:
    return f"{100 * r.rate:.1f}% [{100 * r.ci_low:.1f}, {100 * r.ci_high:.1f}] ({r.successes}/{r.n})"


def content_rows(content: ContentComparison | None) -> list[ContentRow]:
    """Rates (Wilson 95% interval, McNemar) then values (Wilcoxon signed-rank), in LABELS order."""
    if content is None:
        return []
    rows = []
    for name, m in content.rates.items():
        test = f"McNemar, b/c {m.mcnemar.b}/{m.mcnemar.c}"
        rows.append(ContentRow(measure=LABELS.get(name, name), baseline=_rate(m.base), trained=_rate(m.trained),
                               test=test, p=m.mcnemar.p_value, worse=m.degraded))  # fmt: skip
    for name, m in content.values.items():
        f = "{:.2f} / {:.2f}" if name == "relevance" else "{:.1f} / {:.0f}"
        rows.append(ContentRow(measure=LABELS.get(name, name), baseline=f.format(m.base_mean, m.base_median),
                               trained=f.format(m.trained_mean, m.trained_median), test="Wilcoxon signed-rank",
                               p=m.p_value, worse=m.degraded))  # fmt: skip
    return rows
