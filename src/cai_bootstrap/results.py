"""What a round and a stage hand back, typed: written to stageN/stage.json by the pipeline and read
with the same types by the report. Paths inside the run folder are stored relative to it, so a
run folder can be moved or read from any working directory (`at` turns them back into paths)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import UserError
from .report.model import GateOutcome
from .stats import Comparison, RateSummary
from .steps.content_measures import ContentComparison
from .transfer import TransferResult

Accuracies = dict[str, float]  # prompt_strict, prompt_loose, instruction_strict, instruction_loose, n_*


def rel(run_dir: Path, path: Path) -> str:
    """`path` relative to the run folder when inside it (absolute otherwise, e.g. a hub model)."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path(run_dir).resolve()))
    except ValueError:
        return str(path)


def at(run_dir: Path, stored: str) -> Path:
    return Path(stored) if Path(stored).is_absolute() else Path(run_dir) / stored


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StepTime(_Strict):
    step: str = Field(description="step folder relative to the stage folder, e.g. round1/sft")
    seconds: float
    counts: dict = Field(default_factory=dict)


class RoundResult(_Strict):
    """One round: the model it trained, its held-out evaluation and how that compares with the baseline."""

    round: int
    generator: str = Field(description="the round's input model")
    model: str = Field(description="the round's merged model")
    trained_eval: str = Field(description="the merged model's held-out answers (records.jsonl)")
    safety: str | None = Field(None, description="the merged model's safety step folder, if enabled")
    external: dict[str, dict[str, Accuracies]] = Field(
        default_factory=dict, description="'base'/'trained' -> extra IFEval file -> accuracies"
    )
    seconds: float = 0.0
    comparison: Comparison | None = None
    gate: GateOutcome | None = None
    accuracies: dict[str, Accuracies] = Field(default_factory=dict, description="'base'/'trained' -> ...")
    score: float = Field(0.0, description="the trained model's rate on the gate's metric")
    transfer: TransferResult | None = Field(
        None, description="leave-types-out: trained vs held-out-only types apart (transfer.py)"
    )
    content: ContentComparison | None = Field(None, description="content measures, base vs trained")
    content_flag: str | None = Field(
        None, description="'gain with degraded content: ...' when the score rose while content got worse"
    )


class ForgettingCell(_Strict):
    """The model after stage `after_stage` on stage `heldout_stage`'s held-out set, paired (McNemar)
    with the model that finished that stage (the comparison's 'base'), on that stage's gate metric."""

    after_stage: int
    heldout_stage: int
    eval: str = Field(description="the later model's answers on that held-out set (records.jsonl)")
    metric: str = Field(description="the earlier stage's gate metric, on which the pair is compared")
    comparison: Comparison
    dropped: bool = Field(description="a significant drop: more items lost than gained, McNemar p < alpha")
    alpha: float = Field(description="the level of the drop test (gate.forgetting_alpha)")


class JudgeSkill(_Strict):
    """How well a model gives stage 4's verdicts on its held-out items: balanced accuracy, the mean of
    the recall of each verdict (A, B, yes, no), with a 95% interval."""

    n: int
    balanced_accuracy: float
    ci_low: float
    ci_high: float
    recall: dict[str, RateSummary] = Field(description="verdict -> items with that verdict answered right")


class JudgeHandoff(_Strict):
    """Stage 4's model as the judge of stages 5 and 6: its skill on stage 4's held-out items, and its
    calibration on the labelled sets (steps/calibrate.py), which decides the hand-off."""

    model: str = Field(description="the stage-4 chosen model")
    base_skill: JudgeSkill | None = Field(None, description="the stage's input model on the same items")
    skill: JudgeSkill | None = None
    calibration: list[str] = Field(default_factory=list, description="one line per question type")
    accepted: bool = Field(description="every calibrated question type reached judge.min_balanced_accuracy")
    reason: str = Field(description="one line: why it is (or is not) the judge of stages 5 and 6")


class StageResult(_Strict):
    """One stage: its baseline, its rounds, the chosen round and why the rounds stopped."""

    stage: int
    base_model: str
    heldout: str
    base_eval: str
    base_safety: str | None = None
    rounds: list[RoundResult]
    chosen_round: int
    stop_reason: str
    step_times: list[StepTime] = Field(default_factory=list)
    judge: str = Field("", description="which model judged this stage (pairs, safety), and why")
    handoff: JudgeHandoff | None = Field(None, description="stage 4: its model as the later judge")
    forgetting: list[ForgettingCell] = Field(
        default_factory=list, description="the chosen model on every earlier stage's held-out set"
    )

    @property
    def chosen(self) -> RoundResult:
        return next(r for r in self.rounds if r.round == self.chosen_round)

    @staticmethod
    def read(path: Path) -> StageResult:
        return StageResult.model_validate_json(Path(path).read_text())


def handoff_model(run_dir: Path, stage: int, fix: str) -> Path:
    """The model stage `stage` hands on (its chosen round's merged model), read with the typed result;
    a stage.json that does not parse as one is damaged (UserError with `fix`)."""
    path = Path(run_dir) / f"stage{stage}" / "stage.json"
    try:
        return at(run_dir, StageResult.read(path).chosen.model)
    except (OSError, ValueError, ValidationError, StopIteration) as e:
        raise UserError(f"{path} is damaged (no readable chosen round's model)", fix) from e
