"""What interrupted writes leave in a run folder, found and removed.

Every write is a temporary file or folder renamed into place (store.atomic_write_text's
`.NAME.tmp-PID`, merge's `.model.partial-PID`, training's `adapter.partial`, preflight's
`.cai-write-check-*` probe), so a kill at any moment leaves at most such a temporary, never a
half-written result. Nothing reads them again, but they stay: a partial merged model is the size of
the model (15 GB at 7B). `run` removes them when it starts (under the run lock, so no other writer
is in the folder) and `status` counts them (`status --clean` removes them).

Symbolic links are never followed: a link is itself the leftover (or not), never what it points at.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
from pathlib import Path

PATTERNS = (".*.tmp-*", ".*.partial-*", "adapter.partial", ".cai-write-check-*")


def _is_leftover(name: str) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in PATTERNS)


def find(run_dir: Path) -> list[Path]:
    """Every leftover under `run_dir` (a leftover folder is listed once, not its contents)."""
    found = []
    for top, dirs, files in os.walk(run_dir, followlinks=False):
        for name in [d for d in dirs if _is_leftover(d)]:
            found.append(Path(top) / name)
            dirs.remove(name)  # its contents go with it
        found += [Path(top) / f for f in files if _is_leftover(f)]
    return sorted(found)


def size(path: Path) -> int:
    """Bytes held by a leftover file or folder (links counted as themselves)."""
    if path.is_symlink() or not path.is_dir():
        return path.lstat().st_size
    return sum((Path(t) / f).lstat().st_size for t, _, fs in os.walk(path) for f in fs)


def remove(paths: list[Path]) -> int:
    """Remove the given leftovers; returns the bytes freed. The caller holds the run lock."""
    freed = 0
    for p in paths:
        freed += size(p)
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)  # rmtree removes links inside as links, never their targets
        else:
            p.unlink(missing_ok=True)
    return freed


def summary(paths: list[Path]) -> str:
    total = sum(size(p) for p in paths)
    return f"{len(paths)} leftover(s) of interrupted writes ({total / 1e6:.1f} MB)"
