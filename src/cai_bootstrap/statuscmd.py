"""`cai-bootstrap status RUN_DIR`: every step folder's state, from its files alone.

done: manifest present and its inputs unchanged; stale: an input changed since the step finished;
running: shards present and the run lock is held; failed: shards present, nobody running.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

from .errors import UserError
from .store import sha256_file


def _locked(run_dir: Path) -> bool:
    lock = run_dir / ".lock"
    if not lock.exists():
        return False
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def _state(folder: Path, running: bool) -> tuple[str, dict, float | str]:
    manifest = folder / "manifest.json"
    if manifest.exists():
        m = json.loads(manifest.read_text())
        changed = [
            k
            for k, v in m.get("inputs", {}).items()
            if not Path(v["path"]).exists() or sha256_file(Path(v["path"])) != v["sha256"]
        ]
        return ("stale" if changed else "done"), m.get("counts", {}), m.get("seconds", "")
    return ("running" if running else "failed"), {}, ""


def step_rows(run_dir: Path) -> list[dict]:
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise UserError(
            f"run directory {run_dir} does not exist", "pass the folder a run wrote, e.g. runs/quickstart"
        )
    running = _locked(run_dir)
    folders = sorted(
        {p.parent for p in run_dir.rglob("manifest.json")} | {p.parent for p in run_dir.rglob("shards")}
    )
    rows = []
    for folder in folders:
        state, counts, seconds = _state(folder, running)
        rows.append(
            {"step": str(folder.relative_to(run_dir)), "state": state, "counts": counts, "seconds": seconds}
        )
    return rows
