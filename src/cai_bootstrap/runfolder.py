"""What makes a folder a run folder, and its lock.

A folder is a run folder when it holds `config.resolved.yaml` (RUN_MARKER; see preflight.py). The
lock is an exclusive flock on RUN_DIR/.lock, so a second run on the same folder stops at once, with
a check that the lock path is a plain file. Moved out of preflight.py and store.py (which re-export
these names) so that rebuild.py needs no import of preflight.py and store.py stays under 400 lines."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from .errors import UserError

RUN_MARKER = "config.resolved.yaml"


def is_run_folder(path: Path) -> bool:
    return Path(path).is_dir() and (Path(path) / RUN_MARKER).is_file()


def check_lock_path(path: Path) -> None:
    """RUN_DIR/.lock, when it exists, is a plain file (a folder or a link there is no lock of ours)."""
    if path.is_symlink() or (path.exists() and not path.is_file()):
        what = "a link" if path.is_symlink() else "a folder" if path.is_dir() else "not a regular file"
        raise UserError(
            f"the run's lock {path} is {what}, not a lock file",
            f"if no run is writing {path.parent}, remove it (rm -r {path}) and start again",
        )


class RunLock:
    """An exclusive flock on RUN_DIR/.lock: a second run on the same directory stops at once."""

    def __init__(self, run_dir: Path):
        self.path = run_dir / ".lock"
        self.fd: int | None = None

    def __enter__(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        check_lock_path(self.path)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as e:
            os.close(self.fd)
            raise UserError(
                f"another cai-bootstrap run is writing {self.path.parent}",
                "wait for it to finish, or start this one in another folder with --set run.name=NAME",
            ) from e
        os.ftruncate(self.fd, 0)
        os.write(self.fd, str(os.getpid()).encode())
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
