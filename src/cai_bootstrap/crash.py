"""An unexpected exception (a bug, a library's surprise) as one line and a log file.

Users see one line naming what failed and the file that holds the traceback; the traceback itself
is kept for whoever debugs it. A step's traceback goes into the run folder (`logs/`), a command's
outside a run into the system's temporary folder.
"""

from __future__ import annotations

import os
import tempfile
import traceback
from datetime import UTC, datetime
from pathlib import Path

# The run folder of the command in progress, once known (cli.run sets it): its logs/ get tracebacks.
run_dir: Path | None = None


def write_traceback(exc: BaseException, where: str) -> Path:
    """Write `exc`'s traceback to a new log file and return its path (never raises)."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    text = f"{where}\n\n" + "".join(traceback.format_exception(exc))
    folders = [run_dir / "logs"] if run_dir is not None else []
    for folder in [*folders, Path(tempfile.gettempdir()) / "cai-bootstrap-logs"]:
        path = folder / f"crash-{stamp}-{os.getpid()}.log"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            return path
        except OSError:
            continue  # a full or read-only run folder: the temporary folder still takes it
    return Path("(no writable folder for the traceback)")


def one_line(exc: BaseException) -> str:
    """`TypeName: first line of the message`, at most 200 characters."""
    msg = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {msg[:200]}" if msg else type(exc).__name__
