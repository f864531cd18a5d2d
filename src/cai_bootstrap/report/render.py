"""Render ReportData to report.md (plots as PNG files beside it) and one self-contained report.html.

The HTML embeds every plot as a base64 data URI and carries its own small stylesheet, so the
single file can be mailed or opened offline. Both files come from Jinja2 templates in this folder;
the HTML environment autoescapes, so model text can never inject markup.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from ..errors import StepFailed
from ..store import atomic_write_text
from . import plots
from .content import content_rows
from .model import IFEVAL_METRICS, ReportData, StageReport, safety_table

TEMPLATES = Path(__file__).parent
PLOTS_DIR = "report_plots"


@dataclass(frozen=True)
class Plot:
    """One rendered figure: embedded in HTML, written as a file for Markdown."""

    key: str
    title: str
    png: bytes
    file: str  # path relative to the report folder

    @property
    def data_uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")


class Plots(dict):
    """Plots by key; a missing key reads as None, so templates can test `v.plots.dpo` directly."""

    def __missing__(self, key: str) -> None:
        return None


@dataclass(frozen=True)
class StageView:
    """A stage plus what the templates need that is derived from it."""

    s: StageReport
    plots: Plots
    ifeval_metrics: list[str]
    step_time_columns: list[str]
    improved: list
    regressed: list
    other: list


def _stage_plots(s: StageReport) -> Plots:
    cmp = s.comparison
    made = {
        "rates": ("Baseline vs trained", plots.rates_plot(cmp)),
        "per_type": ("Per constraint type", plots.per_type_plot(cmp)),
        "ifeval": ("IFEval-style accuracies", plots.ifeval_plot(s.ifeval)),
        "safety": ("Harmlessness and over-refusal", plots.safety_plot(s.harmlessness, s.over_refusal)),
        "margins": ("Pair margins", plots.margin_plot(s.margins)),
        "sft": ("SFT training", plots.curve_plot(s.sft_curve, plots.SFT_PANELS)),
        "dpo": ("DPO training", plots.curve_plot(s.dpo_curve, plots.DPO_PANELS)),
    }
    return Plots(
        (key, Plot(key, title, png, f"{PLOTS_DIR}/stage{s.stage}_{key}.png"))
        for key, (title, png) in made.items()
        if png is not None
    )


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    """Union of the rows' keys in first-seen order."""
    seen: dict[str, None] = {}
    for row in rows:
        seen.update(dict.fromkeys(row))
    return list(seen)


def _view(s: StageReport) -> StageView:
    metrics = [m for m in IFEVAL_METRICS if s.ifeval and any(m in v for v in s.ifeval.values())]
    if s.ifeval:  # keep extra metrics the caller chose to report, after the standard four
        metrics += [m for m in _columns(list(s.ifeval.values())) if m not in metrics]
    return StageView(
        s=s,
        plots=_stage_plots(s),
        ifeval_metrics=metrics,
        step_time_columns=_columns(s.step_times),
        improved=[e for e in s.examples if e.improved],
        regressed=[e for e in s.examples if e.regressed],
        other=[e for e in s.examples if not (e.improved or e.regressed)],
    )


def fmt(value: Any) -> str:
    """Readable text for a table cell: short floats, nested dicts inline."""
    if isinstance(value, bool) or value is None:
        return {True: "yes", False: "no", None: "-"}[value]
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {fmt(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(fmt(v) for v in value)
    return str(value)


def pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def pval(p: float) -> str:
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def p_is(p: float) -> str:
    """'< 0.001' or '= 0.023', to follow a 'p' in running text."""
    return "< 0.001" if p < 0.001 else f"= {p:.3f}"


def md_cell(value: Any) -> str:
    """A Markdown table cell: pipes escaped, line breaks flattened."""
    return fmt(value).replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def fence(text: str) -> str:
    """A Markdown code block whose fence is longer than any backtick run inside the text."""
    longest, run = 0, 0
    for ch in text:
        run = run + 1 if ch == "`" else 0
        longest = max(longest, run)
    bar = "`" * max(3, longest + 1)
    return f"{bar}text\n{text}\n{bar}"


def _env(autoescape: bool) -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=autoescape,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(fmt=fmt, pct=pct, pval=pval, p_is=p_is, md_cell=md_cell, fence=fence)
    env.globals["safety_table"] = safety_table
    env.globals["content_rows"] = content_rows
    return env


def _write_plots(views: list[StageView], out_dir: Path) -> None:
    folder = out_dir / PLOTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("stage*_*.png"):  # plots a previous render made and this one may not
        old.unlink()
    for view in views:
        for plot in view.plots.values():
            path = out_dir / plot.file
            tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
            tmp.write_bytes(plot.png)
            os.replace(tmp, path)


def render(data: ReportData, out_dir: Path) -> tuple[Path, Path]:
    """Write report.md (+ report_plots/*.png) and a self-contained report.html; return both paths."""
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StepFailed(f"cannot create report folder {out_dir}: {e.strerror}", "check permissions") from e
    views = [_view(s) for s in sorted(data.stages, key=lambda s: s.stage)]
    context = {"d": data, "views": views}
    md_path, html_path = out_dir / "report.md", out_dir / "report.html"
    _write_plots(views, out_dir)
    atomic_write_text(md_path, _env(autoescape=False).get_template("report.md.j2").render(context))
    atomic_write_text(html_path, _env(autoescape=True).get_template("report.html.j2").render(context))
    return md_path, html_path
