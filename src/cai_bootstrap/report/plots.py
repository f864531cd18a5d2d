"""Report plots as PNG bytes; each returns None when it has nothing to draw.

Figures are built with matplotlib's object API (no pyplot), so no global backend state is touched
and the Agg renderer is used for PNG output.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

from matplotlib.figure import Figure

from ..stats import Comparison, RateSummary
from .model import IFEVAL_METRICS

BASE_COLOR = "#9aa5b1"
TRAINED_COLOR = "#2f6db5"
PALETTE = (BASE_COLOR, TRAINED_COLOR, "#d9822b", "#3a9a5b", "#8e5ab5")
DPI = 110


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    return buf.getvalue()


def _style(ax) -> None:
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(axis="y", color="#e5e7eb", linewidth=0.8)
    ax.set_axisbelow(True)


def _errors(rates: Sequence[RateSummary]) -> list[list[float]]:
    """Asymmetric error bar lengths (below, above) from Wilson intervals."""
    return [[r.rate - r.ci_low for r in rates], [r.ci_high - r.rate for r in rates]]


def rates_plot(cmp: Comparison | None) -> bytes | None:
    """Baseline vs trained overall success rate with 95% Wilson intervals."""
    if cmp is None:
        return None
    fig = Figure(figsize=(4.2, 3.2))
    ax = fig.add_subplot()
    rates = [cmp.base, cmp.trained]
    ax.bar(["baseline", "trained"], [r.rate for r in rates], yerr=_errors(rates), capsize=6,
           color=[BASE_COLOR, TRAINED_COLOR], width=0.55)  # fmt: skip
    for i, r in enumerate(rates):
        ax.text(i, r.ci_high + 0.02, f"{r.rate:.0%}", ha="center", va="bottom", fontsize=10)
    ax.set_ylim(0, 1.12)
    ax.set_ylabel("success rate")
    ax.set_title("Held-out success (95% Wilson CI)", fontsize=10)
    _style(ax)
    return _png(fig)


def per_type_plot(cmp: Comparison | None) -> bytes | None:
    """Horizontal baseline/trained bars per constraint type; '*' marks BH-significant changes."""
    if cmp is None or not cmp.per_type:
        return None
    rows = cmp.per_type
    fig = Figure(figsize=(7.5, 0.9 + 0.42 * len(rows)))
    ax = fig.add_subplot()
    ys = range(len(rows))
    h = 0.38
    ax.barh([y + h / 2 for y in ys], [r.base.rate for r in rows], h, color=BASE_COLOR, label="baseline")
    ax.barh([y - h / 2 for y in ys], [r.trained.rate for r in rows], h, color=TRAINED_COLOR, label="trained")
    for y, r in zip(ys, rows, strict=True):
        if r.significant:
            top = max(r.base.rate, r.trained.rate)
            ax.text(
                top + 0.02, y, f"* {r.mcnemar.direction.arrow}", va="center", fontsize=11, color="#b42318"
            )
    ax.set_yticks(list(ys), [f"{r.type} (n={r.base.n})" for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.12)
    ax.set_xlabel(f"pass rate  (* = significant after Benjamini-Hochberg, FDR {cmp.alpha:g})", fontsize=8)
    ax.legend(loc="lower left", bbox_to_anchor=(0, 1), ncol=2, fontsize=8, frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(axis="x", color="#e5e7eb", linewidth=0.8)
    ax.set_axisbelow(True)
    return _png(fig)


def ifeval_plot(ifeval: dict[str, dict[str, float]] | None) -> bytes | None:
    """Grouped bars: the four IFEval accuracies, one bar per model."""
    if not ifeval:
        return None
    metrics = [m for m in IFEVAL_METRICS if any(m in v for v in ifeval.values())]
    if not metrics:
        return None
    fig = Figure(figsize=(4.8, 2.9))
    ax = fig.add_subplot()
    width = 0.8 / len(ifeval)
    for i, (tag, values) in enumerate(ifeval.items()):
        xs = [j + (i - (len(ifeval) - 1) / 2) * width for j in range(len(metrics))]
        ax.bar(xs, [values.get(m, 0.0) for m in metrics], width, label=tag, color=PALETTE[i % len(PALETTE)])
    ax.set_xticks(range(len(metrics)), [m.replace("_", "\n") for m in metrics], fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("accuracy")
    ax.legend(fontsize=8, frameon=False)
    _style(ax)
    return _png(fig)


def safety_plot(
    harmlessness: dict[str, RateSummary] | None, over_refusal: dict[str, RateSummary] | None
) -> bytes | None:
    """One panel per rate measured on any item (harmlessness, over-refusal), one horizontal bar per
    model with its CI and its k/n written beside it, so long labels never overlap and a 0% bar is
    still read; None when nothing was measured."""
    panels = [(t, {k: r for k, r in (d or {}).items() if r.n}) for t, d in (
        ("harmless (higher is better)", harmlessness), ("over-refusal (lower is better)", over_refusal))]  # fmt: skip
    panels = [(t, d) for t, d in panels if d]
    if not panels:
        return None
    rows = max(len(d) for _, d in panels)
    fig = Figure(figsize=(4.4 * len(panels), 0.9 + 0.45 * rows), layout="constrained")  # no label overlap
    for k, (title, data) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), k + 1)
        rates, ys = list(data.values()), list(range(len(data)))[::-1]
        colors = [PALETTE[i % len(PALETTE)] for i in range(len(rates))]
        ax.barh(ys, [r.rate for r in rates], xerr=_errors(rates), capsize=4, color=colors, height=0.55)
        for y, r in zip(ys, rates, strict=True):
            ax.text(min(r.ci_high, 1.0) + 0.03, y, f"{r.successes}/{r.n}", va="center", fontsize=7)
        ax.set_yticks(ys, list(data), fontsize=8)
        ax.set_xlim(0, 1.25)
        ax.tick_params(axis="x", labelsize=8)
        ax.set_title(title, fontsize=9)
        _style(ax)
    return _png(fig)


JUDGE_MARGIN = "judge margin (chosen - rejected log-prob)"
VERIFIER_MARGIN = "verifier margin (share of constraints chosen passed beyond rejected)"


def margin_plot(margins: list[float], xlabel: str = JUDGE_MARGIN) -> bytes | None:
    """Histogram of the kept preference pairs' margins of one kind (judge or verifier: `xlabel`)."""
    if not margins:
        return None
    fig = Figure(figsize=(4.6, 2.8))
    ax = fig.add_subplot()
    ax.hist(margins, bins=min(30, max(5, len(margins) // 5)), color=TRAINED_COLOR, edgecolor="white")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("pairs")
    _style(ax)
    return _png(fig)


def _step_axis(rows: list[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    pts = [(r.get("step", i), r[key]) for i, r in enumerate(rows) if isinstance(r.get(key), int | float)]
    return [p[0] for p in pts], [p[1] for p in pts]


def curve_plot(rows: list[dict[str, Any]], panels: dict[str, Sequence[str]]) -> bytes | None:
    """One subplot per panel title, each drawing the listed keys against 'step' (row index if absent)."""
    drawn = {t: [k for k in keys if _step_axis(rows, k)[0]] for t, keys in panels.items()}
    drawn = {t: keys for t, keys in drawn.items() if keys}
    if not drawn:
        return None
    fig = Figure(figsize=(3.5 * len(drawn), 2.8))
    for n, (title, keys) in enumerate(drawn.items()):
        ax = fig.add_subplot(1, len(drawn), n + 1)
        for i, key in enumerate(keys):
            xs, ys = _step_axis(rows, key)
            ax.plot(xs, ys, marker="o" if len(xs) < 30 else None, markersize=3,
                    color=PALETTE[(i + 1) % len(PALETTE)], label=key)  # fmt: skip
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        if len(keys) > 1:
            ax.legend(fontsize=7, frameon=False)
        _style(ax)
    return _png(fig)


# Which trainer log keys each curve shows (TRL's log_history names).
SFT_PANELS = {"SFT loss": ("loss", "eval_loss"), "token accuracy": ("mean_token_accuracy",)}
DPO_PANELS = {
    "DPO loss": ("loss", "eval_loss"),
    "reward accuracy": ("rewards/accuracies",),
    "reward margin": ("rewards/margins",),
}
