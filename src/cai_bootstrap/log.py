"""One logger and one progress-bar helper for the whole package."""

from __future__ import annotations

import logging
from collections.abc import Iterator
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


def setup(quiet: bool = False, verbose: bool = False) -> None:
    """Configure the package logger once; --quiet hides progress bars and info lines."""
    global _quiet
    _quiet = quiet
    level = logging.WARNING if quiet else (logging.DEBUG if verbose else logging.INFO)
    log.handlers.clear()
    log.addHandler(RichHandler(console=console, show_path=False, show_time=False, markup=False))
    log.setLevel(level)
    log.propagate = False


@contextmanager
def progress(description: str, total: int) -> Iterator[callable]:
    """Yield an `advance(n)` callable that drives a bar with counts, rate and ETA."""
    if _quiet or total == 0:
        yield lambda n=1: None
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
