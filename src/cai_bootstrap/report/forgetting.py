"""The forgetting matrix of a run, read from the stage results: rows are the model after stage n,
columns the held-out set of stage m (m <= n). The diagonal is stage n's own held-out result; a cell
left of it is the later model on that set, with the change against the model that finished stage m."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from ..results import StageResult
from ..stats import RateSummary
from .model import ForgettingRow, ForgettingTable
from .render import pct, pval


def _rate(r: RateSummary) -> str:
    return f"{pct(r.rate)} [{pct(r.ci_low)}, {pct(r.ci_high)}]"


def _results(run_dir: Path) -> list[StageResult]:
    out = []
    for path in sorted(run_dir.glob("stage*/stage.json")):
        try:
            out.append(StageResult.read(path))
        except ValidationError:
            continue  # the stage's own section already says its stage.json is from an older version
    return sorted(out, key=lambda s: s.stage)


def table(run_dir: Path) -> ForgettingTable | None:
    """The matrix, or None when no stage measured an earlier stage's held-out set."""
    results = _results(run_dir)
    if not any(s.forgetting for s in results):
        return None
    columns = [s.stage for s in results]
    rows, dropped = [], []
    for s in results:
        by_m = {c.heldout_stage: c for c in s.forgetting}
        cells = []
        for m in columns:
            c = by_m.get(m)
            if m == s.stage and s.chosen.comparison:
                cells.append(_rate(s.chosen.comparison.trained) + " (own)")
            elif c:
                flag = " DROP" if c.dropped else ""
                d = c.comparison
                cells.append(
                    f"{_rate(d.trained)}; {100 * d.delta:+.1f} pts, p={pval(d.mcnemar.p_value)}{flag}"
                )
                if c.dropped:
                    dropped.append(
                        f"after stage {s.stage}, stage {m}'s held-out {c.metric} fell "
                        f"{pct(d.base.rate)} -> {pct(d.trained.rate)} (McNemar p={pval(d.mcnemar.p_value)} "
                        f"< {c.alpha})"
                    )
            else:
                cells.append("")
        rows.append(ForgettingRow(after_stage=s.stage, cells=cells))
    return ForgettingTable(columns=columns, rows=rows, dropped=dropped)
