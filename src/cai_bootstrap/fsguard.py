"""Guards on the file system that every writer and deleter shares.

- A user-given output path must be a regular file or nothing: `atomic_write_text` renames over the
  path, so a device node (`/dev/full`), a symlink (its target's name) or a folder would be destroyed.
- Deleting inside a run folder never goes through a symlink: `shutil.rmtree` on a folder reached
  through a linked parent deletes the files the link points at, outside the run folder.
- A full or read-only disk while a checkpoint, adapter or merged model is written ends in one line
  that says what to free; the sealed checkpoints and vouched-for steps stay, so a resume continues.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
from pathlib import Path

from .errors import StepFailed, UserError

RUN_MARKER = "config.resolved.yaml"  # the file every run folder holds (preflight.RUN_MARKER)
DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)


def check_output_file(path: Path, what: str) -> None:
    """Refuse (UserError) an output path that exists and is not a regular file, or lies under a file."""
    path = Path(path)
    try:
        mode = os.lstat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        mode = None
    if mode is not None and stat.S_ISLNK(mode):
        raise UserError(
            f"{what} {path} is a symlink: writing would replace it", "give the real file's path or a new name"
        )
    if mode is not None and stat.S_ISDIR(mode):
        raise UserError(f"{what} {path} is a folder", "give a file name, e.g. results/run1.json")
    if mode is not None and not stat.S_ISREG(mode):
        raise UserError(
            f"{what} {path} is not a regular file (a device, pipe or socket): writing would replace it",
            "give a path to a regular file or a new name",
        )
    existing = path.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(
            f"{what} {path} would be inside {existing}, which is a file", f"give {what} another path"
        )


def _run_root(path: Path) -> Path | None:
    for folder in path.parents:
        if (folder / RUN_MARKER).is_file():
            return folder
    return None


def refuse_links(path: Path) -> None:
    """UserError when `path`, or a folder between it and its run folder, is a symlink (without a run
    folder above it, only `path` itself is checked): writing or deleting there would act outside."""
    path = Path(os.path.abspath(path))
    root = _run_root(path)
    chain = [path]
    if root is not None:
        chain += [p for p in path.parents if p != root and root in p.parents]
    for p in chain:
        if p.is_symlink():
            raise UserError(
                f"refusing to delete or redo {path}: {p} is a symlink (to {os.readlink(p)}), and following it"
                " would act outside the run folder",
                f"replace the link {p} with a real folder (copy its files in), then rerun",
            )


def remove_tree(path: Path) -> None:
    """Delete a file or folder inside a run folder, refusing a path that is or lies under a symlink."""
    path = Path(path)
    if not os.path.lexists(path):
        return
    refuse_links(path)
    # rmtree itself unlinks symlinks found inside `path` (it never descends into them).
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink()


def _disk_cause(exc: BaseException) -> str | None:
    """The OS's words when `exc` is a full or read-only disk, else None. torch's stream writer and
    safetensors report a failed write as their own exception type with the OS error only in its text,
    so their messages are matched too."""
    if isinstance(exc, OSError) and exc.errno in DISK_ERRNOS:
        return exc.strerror or os.strerror(exc.errno)
    text = str(exc)
    for words in ("No space left on device", "StorageFull", "file write failed", "Read-only file system"):
        if words in text:
            return "No space left on device" if words != "Read-only file system" else words
    return None


RESUME_FIX = (
    "free disk space (or make the folder writable), then rerun with --resume: finished steps and"
    " sealed checkpoints are kept"
)


@contextlib.contextmanager
def disk_errors(what: str, where: Path, cleanup: Path | None = None, fix: str = RESUME_FIX):
    """Turn a full or read-only disk inside the block into one StepFailed line naming `what`;
    `cleanup` (a half-written folder of ours) is removed first, to give the space back."""
    try:
        yield
    except Exception as e:
        cause = _disk_cause(e)
        if cause is None:
            raise
        if cleanup is not None and not os.path.islink(cleanup):
            shutil.rmtree(cleanup, ignore_errors=True)
        raise StepFailed(f"could not write {what} in {where}: {cause}", fix) from e
