"""What one stage's steps share (the recipe, the stage's settings, the models, the run folder) and
what differs between stage kinds 1-6, as data."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .config import Recipe, StageSettings
from .constitution import Constitution
from .engines.holder import Engines
from .steps.instructions import SOURCES
from .tasks.curriculum import STAGE_TITLES


@dataclass(frozen=True)
class StageKind:
    """What a stage number means for the orchestration. Where its instructions come from (composer,
    self-instruct, curriculum families, earlier answers, red-team requests) is steps/instructions.py's
    SOURCES table."""

    title: str
    reads_earlier: bool = False  # builds on earlier stages' verified answers (stages 4-5)


KINDS: dict[int, StageKind] = {
    n: StageKind(
        "Explicit instructions with verifiable constraints" if n == 1 else STAGE_TITLES[n],
        reads_earlier=SOURCES[n].reads_earlier,
    )
    for n in SOURCES
}


@dataclass(frozen=True)
class StageContext:
    """One stage of one run, for one round (round 0: the stage's baseline steps). `base` is the stage's
    input model (baseline, and judge unless the recipe fixes one); `generator` the round's input model
    (round r starts from round r-1's). `remade` (shared by every round's copy) collects the step
    folders made in this invocation: a step whose input was just remade may be redone without --force."""

    recipe: Recipe
    cfg: StageSettings
    run_dir: Path
    constitution: Constitution
    engines: Engines
    force: bool
    base: Path
    generator: Path | None = None
    round: int = 0
    remade: set = field(default_factory=set)
    handoff_judge: Path | None = None  # stage 4's model, when it passed calibration (judge_handoff.py)

    @property
    def stage_dir(self) -> Path:
        return self.run_dir / f"stage{self.cfg.stage}"

    @property
    def kind(self) -> StageKind:
        return KINDS[self.cfg.stage]

    @property
    def seed(self) -> int:
        return self.recipe.run.seed

    @property
    def judge(self) -> Path:
        """The judging model: stage 4's model once it passed calibration (stages 5-6), else fixed by
        the recipe (model.judge), else the stage's input model."""
        from . import models

        if self.handoff_judge is not None:
            return self.handoff_judge
        return models.resolve(self.recipe.model.judge) if self.recipe.model.judge else self.base

    def model(self, source: str, folders: dict[str, Path]) -> Path:
        """A model role's folder: 'base', 'generator', 'judge' or an earlier step's (merged) folder."""
        if source in ("base", "generator", "judge"):
            return getattr(self, source)
        return folders[source]
