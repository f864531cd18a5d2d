"""stage.json vouched for like any step's output: `stageN/stage.manifest.json`, written after it.

The seal holds stage.json's sha256 and size and a digest of every finished step of the stage (its
signature and the sha256 of its vouched-for files). `stage_problem` says why a stage.json cannot be
trusted: no seal (an older cai-bootstrap, or a file copied in), bytes changed since, or made from
other step results than those in the folder now (another run's stage.json, or steps redone since).
The report then shows no numbers for that stage, and a run starting after it refuses to begin.
"""

from __future__ import annotations

import json
from pathlib import Path

from .store import atomic_write_text, canonical_hash, sha256_file

SUMMARY = "stage.json"
SEAL = "stage.manifest.json"


def _steps(stage_dir: Path) -> dict[str, str]:
    out = {}
    for path in sorted(stage_dir.rglob("manifest.json")):
        try:
            m = json.loads(path.read_text())
            files = {k: v["sha256"] for k, v in m["files"].items()}
            digest = canonical_hash({"signature": m["signature"], "files": files})
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            digest = "unreadable"
        out[str(path.parent.relative_to(stage_dir))] = digest
    return out


def seal_stage(stage_dir: Path) -> None:
    """Vouch for the stage.json just written (call after writing it: the seal is written last)."""
    summary = stage_dir / SUMMARY
    record = {
        "file": {"sha256": sha256_file(summary), "size": summary.stat().st_size},
        "steps": _steps(stage_dir),
    }
    atomic_write_text(stage_dir / SEAL, json.dumps(record, indent=2))


def stage_problem(stage_dir: Path) -> str:
    """Why stage_dir's stage.json is not vouched for ("" when it is)."""
    summary, seal = stage_dir / SUMMARY, stage_dir / SEAL
    try:
        record = json.loads(seal.read_text())
        vouched, steps = record["file"], record["steps"]
    except FileNotFoundError:
        return f"{SUMMARY} is not vouched for (no {SEAL}: written by an older cai-bootstrap, or copied in)"
    except (OSError, ValueError, KeyError, TypeError):
        return f"{SEAL} is unreadable or cut off"
    if summary.stat().st_size != vouched.get("size") or sha256_file(summary) != vouched.get("sha256"):
        return f"{SUMMARY} does not match its {SEAL} (changed or copied in since it was written)"
    if steps != _steps(stage_dir):
        return (
            f"{SUMMARY} was made from other step results than those in {stage_dir.name} now"
            " (another run's, or steps redone since)"
        )
    return ""
