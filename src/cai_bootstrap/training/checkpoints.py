"""Checkpoints that can be trusted after a kill, and the markers that say a run started or finished.

transformers writes a checkpoint folder file by file (adapter, optimizer, scheduler, RNG states,
trainer_state.json) with no marker, so a kill can leave any prefix of it. After every save we add
`sealed.json` listing each file's size and sha256; a folder counts only when the seal, the files
(bytes, not just sizes: one flipped byte would be carried into the final adapter) and
trainer_state.json agree. The resume point is the sealed checkpoint with the highest global_step
read from trainer_state.json, never the newest by modification time (STYLE.md #8).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from ..fsguard import remove_tree
from ..log import log
from ..store import atomic_write_text, sha256_file

SEAL = "sealed.json"
STATE = "trainer_state.json"
_NAME = re.compile(r"^checkpoint-(\d+)$")


def _files(folder: Path) -> dict[str, dict]:
    return {
        str(p.relative_to(folder)): {"size": p.stat().st_size, "sha256": sha256_file(p)}
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != SEAL
    }


def seal(folder: Path) -> None:
    """Record the finished checkpoint's files; written last, atomically."""
    step = json.loads((folder / STATE).read_text())["global_step"]
    atomic_write_text(folder / SEAL, json.dumps({"global_step": step, "files": _files(folder)}, indent=1))


def checkpoint_problem(folder: Path, verify: bool = True) -> str:
    """Why `folder` is not a complete checkpoint ("" when it is). `verify=False` checks sizes only
    (pruning, which keeps or deletes by step, need not hash every checkpoint at every save)."""
    m = _NAME.match(folder.name)
    if not m or not folder.is_dir():
        return "not a checkpoint folder"
    try:
        sealed = json.loads((folder / SEAL).read_text())
        step = json.loads((folder / STATE).read_text())["global_step"]
    except (OSError, ValueError, KeyError):
        return "not sealed (cut off by a kill) or its trainer_state.json is unreadable"
    if step != sealed.get("global_step") or step != int(m.group(1)):
        return "its seal, trainer_state.json and name disagree on the step"
    for name, rec in sealed.get("files", {}).items():
        path = folder / name
        if not isinstance(rec, dict) or "sha256" not in rec:
            return "sealed by an older cai-bootstrap (no sha256)"
        if not path.is_file() or path.stat().st_size != rec["size"]:
            return f"{name} is missing or cut off"
        if verify and sha256_file(path) != rec["sha256"]:
            return f"{name} does not match its seal (sha256)"
    return ""


def checkpoint_step(folder: Path, verify: bool = True) -> int | None:
    """global_step of a complete checkpoint, or None when anything is missing, cut off, changed or
    inconsistent."""
    if checkpoint_problem(folder, verify):
        return None
    return json.loads((folder / STATE).read_text())["global_step"]


def checkpoints(ckpt_dir: Path, verify: bool = True) -> dict[int, Path]:
    """Complete checkpoints by step."""
    if not ckpt_dir.is_dir():
        return {}
    found = {}
    for folder in ckpt_dir.iterdir():
        step = checkpoint_step(folder, verify)
        if step is not None:
            found[step] = folder
    return dict(sorted(found.items()))


def last_complete(ckpt_dir: Path) -> Path | None:
    found = checkpoints(ckpt_dir)
    return found[max(found)] if found else None


def drop_incomplete(ckpt_dir: Path) -> list[Path]:
    """Remove checkpoint folders a kill left half-written or whose bytes changed since they were
    sealed (saying why), so a resumed run never mixes or trusts their files."""
    removed = []
    if ckpt_dir.is_dir():
        for folder in sorted(ckpt_dir.iterdir()):
            if _NAME.match(folder.name) and (why := checkpoint_problem(folder)):
                log.warning("discarded %s: %s; training resumes from an intact checkpoint", folder.name, why)
                remove_tree(folder)
                removed.append(folder)
    return removed


def prune(ckpt_dir: Path, keep: int, protect: Path | None = None) -> None:
    """Keep the `keep` highest-step complete checkpoints and `protect` (the best one); delete the rest."""
    found = checkpoints(ckpt_dir, verify=False)
    keep_steps = set(sorted(found)[-keep:])
    for step, folder in found.items():
        if step in keep_steps or (protect is not None and folder.resolve() == Path(protect).resolve()):
            continue
        remove_tree(folder)


def truncate_metrics(path: Path, last_step: int) -> None:
    """Drop metric lines logged after `last_step` (by a run that was killed before its next checkpoint)."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line).get("step", 0) <= last_step:
                kept.append(line)
        except ValueError:  # a line cut off by the kill
            continue
    atomic_write_text(path, "".join(line + "\n" for line in kept))
