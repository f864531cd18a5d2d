"""The whole run in a tracker (`run.report_to`: tensorboard, wandb, trackio), one stage at a time.

    tracker = Tracker(["tensorboard"], run_dir, "quickstart")
    tracker.log_stage(stage_result)   # after each stage, from the files the stage wrote

What each stage sends, x = the round (0 for the stage's baseline steps) unless said otherwise:
    stage1/steps/<step>/seconds and /<count>     every step's counts and wall time
    stage1/pairs_funnel/<nn>_<filter>            pairs remaining after each filter
    stage1/heldout/<base|trained>/<metric>       held-out rates (and each IFEval-format file's)
    stage1/round1/<sft|dpo>/<metric>             training curves, x = optimizer step (metrics.jsonl)
Everything is read back from stage.json, manifests and metrics.jsonl, so the tracker shows what the
report shows; it is sent when a stage ends, not live (TRL's own `sft/dpo.report_to` is live).
TensorBoard writes under RUN_DIR/tracking/tensorboard and needs no network.
"""

from __future__ import annotations

import json
from importlib.util import find_spec
from pathlib import Path

from .errors import UserError
from .results import RoundResult, StageResult, at

# Tracker name -> the module it needs (and the pip package that has it).
PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb", "trackio": "trackio"}
METRICS = ("prompt_strict", "prompt_loose", "instruction_strict", "instruction_loose")


def check_available(names: list[str], where: str) -> None:
    """Each named tracker's package is installed: refused before any step, not at the first log."""
    for name in names:
        if name in ("none", "all"):
            continue
        module = PACKAGES.get(name, name)
        if find_spec(module) is None:
            raise UserError(
                f"{where} names '{name}', whose package '{module}' is not installed", f"pip install {module}"
            )


class Tracker:
    """Scalars to every configured tracker; nothing at all when `names` is empty."""

    def __init__(self, names: list[str], run_dir: Path, run_name: str):
        self.run_dir = Path(run_dir)
        self.sinks = []
        for name in names:
            if name == "tensorboard":
                from torch.utils.tensorboard import SummaryWriter

                self.sinks.append(_TensorBoard(SummaryWriter(str(self.run_dir / "tracking" / "tensorboard"))))
            elif name == "wandb":
                import wandb

                self.sinks.append(_Logger(wandb.init(project=run_name, dir=str(self.run_dir / "tracking"))))
            elif name == "trackio":
                import trackio

                self.sinks.append(_Logger(trackio.init(project=run_name)))

    def scalars(self, group: str, values: dict[str, float], x: int) -> None:
        values = {f"{group}/{k}": float(v) for k, v in values.items() if isinstance(v, int | float)}
        for sink in self.sinks:
            sink.log(values, x, group)

    def log_stage(self, summary: StageResult) -> None:
        if not self.sinks:
            return
        s = f"stage{summary.stage}"
        for t in summary.step_times:
            rnd, _, name = t.step.rpartition("/")
            x = int(rnd.removeprefix("round")) if rnd.startswith("round") else 0
            self.scalars(f"{s}/steps/{name}", {"seconds": t.seconds, **t.counts}, x)
        for r in summary.rounds:
            self._round(s, r)
        for sink in self.sinks:
            sink.flush()

    def _round(self, s: str, r: RoundResult) -> None:
        folder = at(self.run_dir, r.model).parent
        for tag, acc in r.accuracies.items():
            self.scalars(f"{s}/heldout/{tag}", {m: acc[m] for m in METRICS if m in acc}, r.round)
        for tag, files in r.external.items():
            for name, acc in files.items():
                self.scalars(f"{s}/{name}/{tag}", {m: acc[m] for m in METRICS if m in acc}, r.round)
        manifest = folder / "pairs" / "manifest.json"
        if manifest.is_file():
            funnel = (json.loads(manifest.read_text()).get("stats") or {}).get("funnel", [])
            values = {f"{i:02d}_{f['filter']}": f["remaining"] for i, f in enumerate(funnel)}
            self.scalars(f"{s}/pairs_funnel", values, r.round)
        for kind in ("sft", "dpo"):
            metrics = folder / kind / "train" / "metrics.jsonl"
            for line in metrics.read_text().splitlines() if metrics.is_file() else []:
                row = json.loads(line)
                self.scalars(
                    f"{s}/round{r.round}/{kind}", {k: v for k, v in row.items() if k != "step"}, row["step"]
                )


class _TensorBoard:
    def __init__(self, writer):
        self.writer = writer

    def log(self, values: dict[str, float], x: int, group: str) -> None:
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, global_step=x)

    def flush(self) -> None:
        self.writer.flush()


class _Logger:
    """wandb and trackio share `run.log(dict)`; their step must only grow, so the x value travels as a
    column of its own (`<group>/x`) instead of as the step."""

    def __init__(self, run):
        self.run = run

    def log(self, values: dict[str, float], x: int, group: str) -> None:
        if values:
            self.run.log({**values, f"{group}/x": x})

    def flush(self) -> None:
        pass
