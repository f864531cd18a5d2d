"""The context one stage's steps share: the run's recipe, the stage's settings and folder, the models
(stage input, current round's generator, judge), step state handling, and per-kind timeouts."""

from __future__ import annotations

import signal
from dataclasses import dataclass, field
from pathlib import Path

from .config import Recipe, StageSettings
from .constitution import Constitution
from .engines.holder import Engines, model_identity
from .errors import StepFailed, UserError
from .log import log
from .store import Step
from .training.config import NOT_IN_SIGNATURE


def sig(settings) -> dict:
    data = settings.model_dump(mode="json")
    return {k: v for k, v in data.items() if k not in NOT_IN_SIGNATURE}


@dataclass
class StageContext:
    """One stage of one run. `base` is the stage's input model (baseline, and judge unless the recipe
    fixes one); `generator` is the current round's input model (round r starts from round r-1's)."""

    recipe: Recipe
    cfg: StageSettings
    folder: Path
    base: Path
    constitution: Constitution
    engines: Engines
    force: bool
    generator: Path | None = None
    round: int = 1
    times: list[dict] = field(default_factory=list)
    external_base: dict[str, dict] = field(default_factory=dict)  # base accuracies on eval.ifeval_files

    @property
    def seed(self) -> int:
        return self.recipe.run.seed

    @property
    def judge(self) -> Path:
        """The judging model: fixed by the recipe (model.judge) or the stage's input model."""
        from . import models

        return models.resolve(self.recipe.model.judge) if self.recipe.model.judge else self.base

    def step(self, name: str, config: dict, inputs: dict[str, Path]) -> Step:
        st = Step(self.folder / name, config, inputs)
        state = st.state()
        if state == "stale":
            if not self.force:
                raise UserError(
                    f"step {st.folder} is stale: its config or inputs changed since it was made",
                    "rerun with --force to redo it (and what depends on it), or restore the old recipe",
                )
            log.warning("redoing stale step %s", st.folder)
            st.reset()
        if state == "done":
            log.info("skip %s (done, signature matches)", st.folder.relative_to(self.folder.parent))
        return st

    def r(self, name: str) -> str:
        return f"round{self.round}/{name}"

    def timed(self, name: str, st: Step | None) -> None:
        if st is not None and (m := st.manifest()):
            self.times.append(
                {"step": name, "seconds": round(m.get("seconds", 0.0), 1), "counts": m.get("counts", {})}
            )

    def gen_identity(self) -> dict:
        return {
            "model": model_identity(self.generator),
            "dtype": self.recipe.model.dtype,
            **self.engines.signature(self.generator),
        }


class StepTimeout:
    """Fail a step that runs past its configured limit (run.timeouts) with one clear line.

    SIGALRM interrupts the main thread wherever it is; the step's shards stay, so a re-run resumes.
    """

    def __init__(self, name: str, seconds: float | None):
        self.name, self.seconds = name, seconds

    def _fire(self, *_):
        raise StepFailed(
            f"step '{self.name}' exceeded its timeout of {self.seconds:.0f} s",
            f"raise run.timeouts.{self.name} in the recipe, or make the step smaller; a re-run resumes it",
        )

    def __enter__(self):
        if self.seconds:
            signal.signal(signal.SIGALRM, self._fire)
            signal.setitimer(signal.ITIMER_REAL, self.seconds)
        return self

    def __exit__(self, *exc):
        if self.seconds:
            signal.setitimer(signal.ITIMER_REAL, 0)


def timeout(ctx: StageContext, kind: str) -> StepTimeout:
    return StepTimeout(kind, getattr(ctx.recipe.run.timeouts, kind))
