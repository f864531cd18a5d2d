"""One logger and one progress helper for the whole package.

On a terminal, log lines go through rich and progress is a transient bar. Without one (a log file,
CI, nohup) rich's bars would leave blank lines and wrap long lines at 80 columns, so log lines are
plain timestamped lines and progress is a line every PLAIN_EVERY_S seconds or every 10% of the work.
Steps announce their start and end (`step_started`, `step_finished`) so a redirected run shows
where it is.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.logging import RichHandler
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=True)
log = logging.getLogger("cai_bootstrap")
_quiet = False
PLAIN_EVERY_S = 30.0  # without a terminal: a progress line at least this often (and every 10%)


class _StderrHandler(logging.StreamHandler):
    """A plain handler writing to whatever sys.stderr is at the time (tests and callers swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def setup(quiet: bool = False, verbose: bool = False) -> None:
    """Configure the package logger once; --quiet hides progress and info lines."""
    global _quiet
    _quiet = quiet
    level = logging.WARNING if quiet else (logging.DEBUG if verbose else logging.INFO)
    log.handlers.clear()
    if console.is_terminal:
        log.addHandler(RichHandler(console=console, show_path=False, show_time=False, markup=False))
    else:
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
        log.addHandler(handler)
        # The libraries' tqdm bars (weights loading, datasets maps, the trainer) would write
        # carriage-return bars into the file; set before they are imported, the user's choice winning.
        for name in ("HF_HUB_DISABLE_PROGRESS_BARS", "HF_DATASETS_DISABLE_PROGRESS_BARS", "TQDM_DISABLE"):
            os.environ.setdefault(name, "1")
    log.setLevel(level)
    log.propagate = False


@contextmanager
def progress(description: str, total: int) -> Iterator[Callable]:
    """Yield an `advance(n)` callable: a bar with counts, rate and ETA on a terminal, else log lines."""
    if _quiet or total == 0:
        yield lambda n=1: None
        return
    if plain():
        yield _plain_progress(description, total)
        return
    cols = [
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    ]
    with Progress(*cols, console=console, transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n=1: bar.advance(task, n)


class Cadence:
    """When to write another progress line: when another tenth of the work is done, or
    PLAIN_EVERY_S have passed since the last line (and always at the end)."""

    def __init__(self, total: int):
        self.total, self.tenth = total, 0
        self.start = self.last = time.monotonic()

    def due(self, done: int) -> bool:
        now = time.monotonic()
        tenth = done * 10 // max(self.total, 1)
        if tenth <= self.tenth and now - self.last < PLAIN_EVERY_S:
            return False
        self.tenth, self.last = tenth, now
        return True


def _plain_progress(description: str, total: int) -> Callable:
    """An `advance(n)` that logs 'what: done/total (pct), elapsed, time left' at the `Cadence`.
    Engines advance from worker threads, hence the lock."""
    cadence, lock = Cadence(total), threading.Lock()
    done = 0

    def advance(n: int = 1) -> None:
        nonlocal done
        with lock:
            done = min(done + n, total)
            if not cadence.due(done):
                return
            elapsed = time.monotonic() - cadence.start
            left = elapsed / done * (total - done) if done else float("nan")
            log.info(
                "%s: %d/%d (%.0f%%), %.0f s, about %.0f s left",
                description,
                done,
                total,
                100 * done / total,
                elapsed,
                left,
            )

    return advance


def plain() -> bool:
    """Whether progress is shown as log lines (stderr is not a terminal) rather than bars."""
    return not console.is_terminal


def _counts(counts: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items()) or "no counts"


def step_started(where: str, state: str) -> None:
    """One line as a step begins: its folder and the state it was in (a `store.STATES` name)."""
    why = {"not started": "new", "failed": "resuming a failed run", "running": "resuming an interrupted run"}
    log.info("start %s (%s)", where, why.get(state, f"redoing: {state}"))


def step_finished(where: str, manifest: dict) -> None:
    """One line as a step ends: its counts and seconds; an evaluation's accuracies on a second."""
    log.info("end %s: %s; %.1f s", where, _counts(manifest.get("counts", {})), manifest.get("seconds", 0))
    acc = manifest.get("accuracies")
    if acc:
        from .stats import wilson  # scipy: only once an evaluation has finished

        parts = []
        for level, n_key in (("prompt", "n_prompts"), ("instruction", "n_instructions")):
            rate, n = acc[f"{level}_strict"], acc.get(n_key, 0)
            low, high = wilson(round(rate * n), n)
            parts.append(f"{level}-level strict {rate:.1%} [95% CI {low:.1%}, {high:.1%}] of {n}")
        log.info("%s: %s", where, "; ".join(parts))
