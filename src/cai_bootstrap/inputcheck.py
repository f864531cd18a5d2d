"""Checks every value of a validated recipe must pass, whatever settings model declares it.

The settings models live next to their code (training/config.py, steps/*.py, engines/*.py) and
each bounds its own fields; a few rules hold for *every* field, and are checked here once by
walking the whole recipe rather than repeated in twenty models (where the next new field would
forget them):
- a number is finite: `temperature: .inf`, `learning_rate: .nan` or `epochs: .inf` pass pydantic's
  `gt=0` and then sample from noise or hang a loop;
- a seed is in 0..2**32-1, the range numpy and torch's CUDA generators accept;
- a timeout is at most MAX_TIMEOUT_S (SIGALRM's timer overflows long before 1e12 s);
- text and paths hold no NUL byte, and a path has no component over 255 bytes (ext4, xfs, APFS)
  and no `~user` that names no user: these otherwise fail as OSError or RuntimeError mid-run.
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

from pydantic import BaseModel

from .errors import UserError

MAX_SEED = 2**32 - 1
MAX_TIMEOUT_S = 30 * 24 * 3600.0  # 30 days: longer than any step we know of, far below timer limits
MAX_COMPONENT_BYTES = 255  # NAME_MAX on Linux file systems and macOS
MAX_PATH_BYTES = 4000  # PATH_MAX is 4096; leave room for the files a run writes below it


class BadValue(ValueError):
    """`loc` is the key path (as pydantic writes it) of the value that breaks a rule."""

    def __init__(self, loc: tuple, value, rule: str):
        self.loc, self.value, self.rule = loc, value, rule
        super().__init__(rule)


def path_problem(path: str | os.PathLike) -> str:
    """Why `path` cannot name a file here ('' when it can): NUL, too long, an unknown ~user."""
    text = os.fspath(path)
    if "\x00" in text:
        return "holds a NUL byte"
    if text.startswith("~"):
        try:
            text = os.fspath(Path(text).expanduser())
        except RuntimeError:
            return f"starts with {text.split('/')[0]}, which names no user's home folder"
    if len(os.fsencode(text)) > MAX_PATH_BYTES:
        return f"is {len(os.fsencode(text))} bytes long (at most {MAX_PATH_BYTES})"
    long = next((c for c in Path(text).parts if len(os.fsencode(c)) > MAX_COMPONENT_BYTES), None)
    if long is not None:
        return (
            f"has a name of {len(os.fsencode(long))} bytes (at most {MAX_COMPONENT_BYTES} per folder or file)"
        )
    return ""


def _leaf_rule(name: str, value, in_timeouts: bool) -> str:
    if isinstance(value, bool):
        return ""
    if isinstance(value, float) and not math.isfinite(value):
        return "must be a finite number"
    if isinstance(value, int | float) and (name == "seed" or name.endswith("_seed")):
        if not 0 <= value <= MAX_SEED:
            return f"a seed must be between 0 and {MAX_SEED}"
    if isinstance(value, int | float) and (in_timeouts or name == "timeout") and value > MAX_TIMEOUT_S:
        return f"a timeout must be at most {MAX_TIMEOUT_S:.0f} s (30 days), or null for none"
    if isinstance(value, Path):
        return path_problem(value)
    if isinstance(value, str) and "\x00" in value:
        return "holds a NUL byte"
    return ""


def _walk(value, loc: tuple, in_timeouts: bool) -> None:
    if isinstance(value, BaseModel):
        for field in type(value).model_fields:
            _walk(getattr(value, field), (*loc, field), in_timeouts or field == "timeouts")
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _walk(item, (*loc, i), in_timeouts)
    elif isinstance(value, dict):
        for key, item in value.items():
            _walk(item, (*loc, key), in_timeouts)
    else:
        name = next((str(p) for p in reversed(loc) if not isinstance(p, int)), "")
        if rule := _leaf_rule(name, value, in_timeouts):
            raise BadValue(loc, value, rule)


def check_values(settings: BaseModel) -> None:
    """Raise BadValue for the first value (in field order) that breaks one of the rules above."""
    _walk(settings, (), False)


# ---- paths given on the command line or in the environment ----


def check_path_arg(path: Path | None, what: str) -> None:
    """A path option that cannot name a file at all (NUL byte, over-long name, unknown ~user)."""
    if path is not None and (why := path_problem(path)):
        raise UserError(f"{what} {str(path)[:80]!r} {why}", f"give a shorter, plain path for {what}")


def probe_writable(folder: Path) -> str:
    """'' when a file can be created in `folder` (or the nearest folder above it that exists)."""
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is a file"
    try:
        Path(tempfile.mkdtemp(prefix=".cai-write-check-", dir=existing)).rmdir()
    except OSError as e:
        return f"{existing}: {e.strerror}"
    return ""


def check_cache_dir() -> None:
    """$CAI_BOOTSTRAP_CACHE, when set, names a folder we can write (models are converted into it)."""
    raw = os.environ.get("CAI_BOOTSTRAP_CACHE")
    if raw is None:
        return
    fix = "set CAI_BOOTSTRAP_CACHE to a folder you can write, or unset it"
    why = "is empty" if not raw.strip() else path_problem(raw)
    if why:
        raise UserError(f"CAI_BOOTSTRAP_CACHE={raw[:80]} {why}", fix)
    folder = Path(raw).expanduser()
    if folder.exists() and not folder.is_dir():
        raise UserError(f"CAI_BOOTSTRAP_CACHE={raw} is a file, not a folder", fix)
    if why := probe_writable(folder):
        raise UserError(f"CAI_BOOTSTRAP_CACHE={raw} cannot be written ({why})", fix)


def check_finite_kwargs(kwargs, where: str) -> None:
    """JSON's Infinity and NaN parse as floats; a checker given one fails converting it to a count."""
    for i, args in enumerate(kwargs):
        for name, value in (args or {}).items():
            if isinstance(value, float) and not math.isfinite(value):
                raise UserError(
                    f"{where}: kwargs[{i}].{name} = {value} is not a finite number",
                    "give a whole number (IFEval counts words, sentences, paragraphs)",
                )
