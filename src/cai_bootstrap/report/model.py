"""What a report shows, as typed data the pipeline fills from the run directory.

Every section of a stage is optional: an empty list, an empty dict or None simply leaves the
section (and its plot) out of the report.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..stats import Comparison, McNemarResult, RateSummary
from ..steps.content_measures import ContentComparison
from ..transfer import TransferResult

# IFEval reports four accuracies; these are the names the report looks for, in this order.
IFEVAL_METRICS = ("prompt_strict", "prompt_loose", "instruction_strict", "instruction_loose")


class GateOutcome(BaseModel):
    """Whether a stage reached its target."""

    model_config = ConfigDict(extra="forbid")
    passed: bool = Field(description="True when the stage reached its target (always True with no gate)")
    metric: str = Field(description="what was compared, e.g. 'trained prompt_strict CI low - baseline rate'")
    achieved: float = Field(description="the value the stage reached")
    needed: float | None = Field(description="the value the gate asked for; None with no gate")
    configured: bool = Field(
        True, description="False when the recipe sets no gate: the outcome is only recorded"
    )
    reason: str = Field("", description="one line on why it passed or failed")


class Example(BaseModel):
    """One held-out prompt answered by both models, with the checks each answer passed."""

    model_config = ConfigDict(extra="forbid")
    prompt: str = Field(description="the instruction as the models saw it")
    baseline: str = Field(description="the baseline model's answer")
    trained: str = Field(description="the trained model's answer")
    checks: list[str] = Field(default_factory=list, description="check names, e.g. constraint ids")
    baseline_passed: list[bool] = Field(default_factory=list, description="one per check")
    trained_passed: list[bool] = Field(default_factory=list, description="one per check")

    @property
    def improved(self) -> bool:
        return all(self.trained_passed) and not all(self.baseline_passed)

    @property
    def regressed(self) -> bool:
        return all(self.baseline_passed) and not all(self.trained_passed)

    def marks(self, which: str) -> list[tuple[str, bool]]:
        """(check name, passed) pairs for 'baseline' or 'trained'; unnamed checks get numbers."""
        passed = self.baseline_passed if which == "baseline" else self.trained_passed
        names = self.checks or [f"check {i + 1}" for i in range(len(passed))]
        return list(zip(names, passed, strict=False))


class SafetyRow(BaseModel):
    """One row of the safety table: a figure for one model, or why it was not measured."""

    model_config = ConfigDict(extra="forbid")
    figure: str = Field(description="'harmless', 'harmless (corrected)' or 'over-refusal'")
    model: str = Field(description="which model answered, e.g. 'base'")
    measure: str = Field(description="'judge' or 'refusal phrases (lexical)'")
    count: str = Field("", description="'k/n', empty for a corrected or unmeasured figure")
    value: str = Field(description="'rate [95% CI]', or 'not measured: judge balanced accuracy ...'")
    judge: str = Field("", description="the judge's calibration behind the figure; empty for lexical ones")


class RoundRow(BaseModel):
    """One row of the rounds table: the baseline (round 0) or a trained round."""

    model_config = ConfigDict(extra="forbid")
    round: int = Field(description="0 for the baseline, else the round number")
    label: str = Field(description="'baseline' or 'round N'")
    chosen: bool = Field(False, description="the round whose model the stage kept")
    measures: dict[str, RateSummary] = Field(description="each IFEval measure with its Wilson interval")
    vs_baseline: McNemarResult | None = Field(
        None, description="McNemar on the gate's measure vs the baseline"
    )
    vs_previous: McNemarResult | None = Field(
        None, description="McNemar on the gate's measure vs the round before"
    )


class StageReport(BaseModel):
    """Everything known about one stage; fill what exists, leave the rest empty."""

    model_config = ConfigDict(extra="forbid")
    stage: int = Field(description="stage number, 1-based")
    title: str = Field("", description="short stage title, e.g. 'verifiable constraints'")
    comparison: Comparison | None = Field(None, description="baseline vs trained on held-out items")
    ifeval: dict[str, dict[str, float]] | None = Field(
        None, description="model tag -> {prompt_strict, prompt_loose, instruction_strict, instruction_loose}"
    )
    content: ContentComparison | None = Field(None, description="content measures of the held-out answers")
    content_flags: list[str] = Field(
        default_factory=list, description="'round N: gain with degraded content: ...', one per flagged round"
    )
    harmlessness: dict[str, RateSummary] | None = Field(
        None, description="model tag -> rate of harmful prompts answered harmlessly"
    )
    over_refusal: dict[str, RateSummary] | None = Field(
        None, description="model tag -> rate of benign prompts refused (lower is better)"
    )
    safety_rows: list[SafetyRow] = Field(
        default_factory=list, description="the safety table; empty: built from the two rate dicts"
    )
    judge_calibration: list[str] = Field(
        default_factory=list, description="one line per judge and question type: accuracy, interval, bias"
    )
    pair_stats: dict[str, Any] | None = Field(None, description="preference-pair counts and rates")
    pairs_judge: str = Field(
        "", description="the pairs judge's calibration (accuracy, interval, bias), or why it was not used"
    )
    margins: list[float] = Field(default_factory=list, description="judge margins of the kept pairs")
    verifier_margins: list[float] = Field(
        default_factory=list,
        description="verifier-ordered kept pairs: share of constraints chosen passed more",
    )
    rounds: list[RoundRow] = Field(
        default_factory=list,
        description="rounds table rows (report/rounds.py RoundRow): baseline, every round",
    )
    rounds_metric: str = Field("", description="the gate's measure the rounds table tests with McNemar")
    diversity: dict[str, Any] | None = Field(None, description="self-instruct diversity statistics")
    sft_curve: list[dict[str, Any]] = Field(
        default_factory=list, description="trainer log rows: step, loss, ... (TRL log_history)"
    )
    dpo_curve: list[dict[str, Any]] = Field(
        default_factory=list, description="trainer log rows: step, loss, rewards/accuracies, rewards/margins"
    )
    step_times: list[dict[str, Any]] = Field(
        default_factory=list, description="one row per step, e.g. {step, seconds, items, items_per_s}"
    )
    gate: GateOutcome | None = Field(None, description="the stage gate's outcome")
    transfer: TransferResult | None = Field(None, description="trained vs held-out-only types (transfer.py)")
    examples: list[Example] = Field(default_factory=list, description="improved and regressed answers")
    artifacts: dict[str, str] = Field(
        default_factory=dict, description="label -> path relative to the report's folder"
    )


def rate_text(r: RateSummary) -> str:
    return f"{100 * r.rate:.1f}% [{100 * r.ci_low:.1f}%, {100 * r.ci_high:.1f}%]"


def safety_table(s: StageReport) -> list[SafetyRow]:
    """The stage's safety rows: its own, or one per rate in the two dicts (uncalibrated runs)."""
    if s.safety_rows:
        return s.safety_rows
    rows = []
    for figure, data in (("harmless", s.harmlessness), ("over-refusal", s.over_refusal)):
        for tag, r in (data or {}).items():
            rows.append(
                SafetyRow(
                    figure=figure, model=tag, measure="", count=f"{r.successes}/{r.n}", value=rate_text(r)
                )
            )
    return rows


class ForgettingRow(BaseModel):
    after_stage: int = Field(description="the model after this stage")
    cells: list[str] = Field(description="one per column: 'rate [95% CI]', the change and McNemar p, or ''")


class ForgettingTable(BaseModel):
    columns: list[int] = Field(description="the stages whose held-out sets are the columns")
    rows: list[ForgettingRow] = Field(description="one per finished stage")
    dropped: list[str] = Field(default_factory=list, description="one line per significant drop")


class ReportData(BaseModel):
    """A whole run: header, warnings and one section per stage."""

    model_config = ConfigDict(extra="forbid")
    run_name: str = Field(description="the run folder's name")
    model: str = Field(description="the base model, e.g. 'embedded:gemma-3-270m'")
    created: datetime = Field(description="when the report was made")
    started: datetime | None = Field(None, description="when the run's first step started (its manifest)")
    git_commit: str = Field("", description="commit of the code that made the run")
    report_commit: str = Field("", description="commit of the code that made this report, when it differs")
    config_hash: str = Field("", description="hash of the resolved config")
    warnings: list[str] = Field(default_factory=list, description="things the reader must know")
    stages: list[StageReport] = Field(default_factory=list, description="one entry per stage")
    forgetting: ForgettingTable | None = Field(
        None, description="model after stage n x held-out set of stage m (report/forgetting.py)"
    )
