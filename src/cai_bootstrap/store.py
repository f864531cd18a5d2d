"""The run directory: JSONL records with schemas, atomic writes, resumable shards, manifests, a lock.

A step's folder holds `records.jsonl` and `manifest.json`; the manifest is written last and means
"done". Its `signature` hashes what changes the result (the step's config section, input file
hashes, a cache version), never batch size or device. While a long step runs, completed items are
appended to `shards/part-*.jsonl`; a killed step resumes from them with no duplicate and no lost id.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from .errors import StepFailed, UserError
from .fsguard import refuse_links, remove_tree
from .runfolder import RunLock, check_lock_path  # noqa: F401 (re-exported: callers import them from store)

CACHE_VERSION = 2  # 2: manifests vouch for files; signatures from step declarations (runner.py)
T = TypeVar("T", bound=BaseModel)


def canonical_hash(obj) -> str:
    """sha256 of the canonical JSON form of `obj` (sorted keys), short hex."""
    text = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def atomic_write_text(path: Path, text: str) -> None:
    """Write to a temp file in the same folder, fsync, then rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise StepFailed(
            f"could not write {path}: {e.strerror}", "check free disk space and permissions"
        ) from e


def dump_jsonl(records: Iterable[BaseModel]) -> str:
    return "".join(r.model_dump_json() + "\n" for r in records)


def write_jsonl(path: Path, records: Iterable[BaseModel]) -> None:
    atomic_write_text(path, dump_jsonl(records))


def read_jsonl(path: Path, schema: type[T]) -> list[T]:
    """Read and validate every line; a bad line is an error that names file and line."""
    if not path.exists():
        raise UserError(f"missing file {path}", "run the step that makes it first")
    out = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                out.append(schema.model_validate_json(line))
            except ValidationError as e:
                raise UserError(f"{path}:{n} does not match {schema.__name__}: {e.errors()[0]['msg']}") from e
    return out


@functools.cache  # asked for by every manifest; installed versions do not change within a process
def library_versions() -> dict[str, str]:
    names = ["cai-bootstrap", "torch", "transformers", "peft", "trl", "accelerate", "datasets"]
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


@functools.cache
def git_commit() -> str:
    try:
        here = Path(__file__).resolve().parent
        res = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5
        )
        return res.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


class Step:
    """One step's folder: resumable shards, the begun marker, the manifest written last.

    The manifest vouches for the step's output files by sha256 and size; `runner.step_state` is the
    one rule that reads it (done / stale / damaged / running / failed / not started).
    """

    STARTED = "started.json"

    def __init__(
        self,
        folder: Path,
        config: dict | None = None,
        inputs: dict[str, Path] | None = None,
        *,
        signature=None,
    ):
        self.folder = Path(folder)
        inputs = inputs or {}
        self.signature = signature or canonical_hash(
            {
                "config": config or {},
                "inputs": {n: sha256_file(p) for n, p in sorted(inputs.items())},
                "cache_version": CACHE_VERSION,
            }
        )
        self.started = time.time()

    @property
    def records_path(self) -> Path:
        return self.folder / "records.jsonl"

    @property
    def manifest_path(self) -> Path:
        return self.folder / "manifest.json"

    @property
    def shard_dir(self) -> Path:
        return self.folder / "shards"

    def state(self, running: bool = False) -> str:
        return step_state(self.folder, self.signature, running).name

    def reset(self) -> None:
        """Remove the manifest first (so nothing looks finished), then everything else; never through
        a symlink out of the run folder (refused before anything is removed)."""
        refuse_links(self.folder)
        self.manifest_path.unlink(missing_ok=True)
        remove_tree(self.folder)

    def started_signature(self) -> str | None:
        try:
            return json.loads((self.folder / self.STARTED).read_text())["signature"]
        except (OSError, ValueError, KeyError, TypeError):
            return None

    # ---- resumable shards ----
    def begin(self) -> None:
        """Start or resume: a partial step begun under another signature is discarded, never reused."""
        refuse_links(self.folder)  # writing through a linked folder would write outside the run folder
        if self.folder.exists() and self.started_signature() != self.signature:
            self.reset()
        if self.started_signature() is None:
            atomic_write_text(self.folder / self.STARTED, json.dumps({"signature": self.signature}))
        self.shard_dir.mkdir(parents=True, exist_ok=True)

    def load_shards(self, schema: type[T], warn: bool = False) -> list[T]:
        """Completed items from earlier attempts, first occurrence of each id wins.

        Each shard line carries its record's sha256 (`_shard_line`). A line cut off by a kill, or
        altered since (even into other valid JSON), is ignored and its item redone; `warn` says so.
        """
        seen: dict[str, T] = {}
        bad = 0
        for shard in sorted(self.shard_dir.glob("part-*.jsonl")):
            for line in shard.read_text(encoding="utf-8", errors="replace").splitlines():
                rec = _shard_record(line, schema)
                if rec is None:
                    bad += 1
                    continue
                seen.setdefault(rec.id, rec)
        if bad and warn:
            from .log import log

            log.warning(
                "%s: %d shard line(s) cut off or not matching their sha256 were discarded; their items"
                " are redone",
                self.folder.name,
                bad,
            )
        return list(seen.values())

    def append(self, records: list[BaseModel]) -> None:
        """Append completed items to this process's shard and fsync, so a kill loses nothing done."""
        if not records:
            return
        self.shard_dir.mkdir(parents=True, exist_ok=True)
        shard = self.shard_dir / f"part-{os.getpid()}-{int(self.started)}.jsonl"
        try:
            with open(shard, "a", encoding="utf-8") as f:
                f.write("".join(_shard_line(r) for r in records))
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:
            raise StepFailed(f"could not write {shard}: {e.strerror}", "check free disk space") from e

    def vouch(self, outputs: tuple[str, ...]) -> dict[str, dict]:
        """sha256 and size of every output file (glob patterns relative to the folder)."""
        files = {}
        for pattern in outputs:
            for p in sorted(self.folder.glob(pattern)):
                if (
                    p.is_file()
                    and p.name not in ("manifest.json", self.STARTED)
                    and "shards" not in p.relative_to(self.folder).parts
                ):
                    files[str(p.relative_to(self.folder))] = {
                        "sha256": sha256_file(p),
                        "size": p.stat().st_size,
                    }
        return files

    def finish(
        self,
        records: list[BaseModel] | None,
        counts: dict,
        extra: dict | None = None,
        outputs=("records.jsonl",),
    ) -> dict:
        """Write records (if any), then the manifest last (vouching for `outputs`); drop the shards."""
        if records is not None:
            if not records:
                raise StepFailed(
                    f"step {self.folder.name} produced zero records", "see the log above for why"
                )
            write_jsonl(self.records_path, records)
        self.folder.mkdir(parents=True, exist_ok=True)
        manifest = {
            "step": self.folder.name,
            "signature": self.signature,
            "files": self.vouch(tuple(outputs)),
            "counts": counts,
            "started": datetime.fromtimestamp(self.started, UTC).isoformat(),
            "finished": datetime.now(UTC).isoformat(),
            "seconds": round(time.time() - self.started, 2),
            "versions": library_versions(),
            "git_commit": git_commit(),
            **({"run_id": rid} if (rid := run_id_of(self.folder)) else {}),
            **(extra or {}),
        }
        atomic_write_text(self.manifest_path, json.dumps(manifest, indent=2, default=str))
        remove_tree(self.shard_dir)
        (self.folder / self.STARTED).unlink(missing_ok=True)
        return manifest


def _shard_line(record: BaseModel) -> str:
    """One shard line: the record's JSON text and its sha256 (the text is kept as a string, so the
    hash is checked on exactly the bytes that were written)."""
    text = record.model_dump_json()
    return json.dumps({"record": text, "sha256": hashlib.sha256(text.encode()).hexdigest()}) + "\n"


def _shard_record(line: str, schema: type[T]) -> T | None:
    """The record of a shard line, or None when the line is cut off, altered or of another schema."""
    try:
        wrapped = json.loads(line)
        text = wrapped["record"]
        if hashlib.sha256(text.encode()).hexdigest() != wrapped["sha256"]:
            return None
        return schema.model_validate_json(text)
    except (ValueError, KeyError, TypeError, AttributeError):  # ValidationError is a ValueError
        return None


STATES = ("done", "stale", "damaged", "running", "failed", "not started")
RUN_ID = "run-id"  # a random id per run folder, written once; every manifest names the run that made it


def ensure_run_id(run_dir: Path) -> str:
    """The run folder's id, made on its first run (the caller holds the run lock)."""
    path = run_dir / RUN_ID
    if not path.is_file():
        atomic_write_text(path, os.urandom(8).hex() + "\n")
    return path.read_text(encoding="utf-8").strip()


def run_id_of(folder: Path) -> str | None:
    """The id of the run folder that holds step `folder` (stageN/[roundM/]step), if it has one."""
    for parent in list(Path(folder).parents)[:4]:
        if (parent / RUN_ID).is_file():
            return (parent / RUN_ID).read_text(encoding="utf-8").strip() or None
    return None


def _foreign(folder: Path, m: dict) -> str:
    """Why a readable manifest is not this step's own: another step's, another run's, or altered
    (its signature is not the hash of the ingredients it records). '' when it is its own."""
    if m.get("step") not in (None, folder.name):
        return f"its manifest is another step's (step {m.get('step')}), not {folder.name}'s"
    mine = run_id_of(folder)
    if m.get("run_id") and mine and m["run_id"] != mine:
        return f"its manifest was written by another run (run id {m['run_id']}, this run is {mine})"
    parts = m.get("parts")
    if isinstance(parts, dict) and canonical_hash(parts) != m.get("signature"):
        return "its manifest's signature is not the hash of the ingredients it records (altered)"
    return ""


@dataclass
class State:
    name: str  # one of STATES
    why: str = ""
    manifest: dict | None = None


def _damage(folder: Path, files: dict) -> str:
    for rel, rec in files.items():
        p = folder / rel
        if not p.is_file():
            return f"{rel} is missing"
        if p.stat().st_size != rec["size"] or sha256_file(p) != rec["sha256"]:
            return f"{rel} does not match its manifest (size or sha256)"
    return ""


def step_state(folder: Path, signature: str | None, running: bool = False) -> State:
    """The one rule. done: manifest intact, every vouched-for file matches, signature equal (or not
    asked); stale: intact but made from other settings, models, resources or inputs; damaged: the
    manifest is unreadable, a file it vouches for is missing or changed, or the manifest is not this
    step's own (another step's or another run's, or its signature altered); running/failed: begun, not
    finished (the run lock is held / is not); not started: nothing begun."""
    path = folder / "manifest.json"
    if not path.exists():
        if (folder / Step.STARTED).exists() or (folder / "shards").exists():
            return State("running" if running else "failed", "begun, not finished")
        return State("not started")
    try:
        m = json.loads(path.read_text())
        files, sig = dict(m["files"]), str(m["signature"])
    except (OSError, ValueError, KeyError, TypeError):
        return State("damaged", "manifest.json is unreadable, cut off or from an older version")
    if why := _foreign(folder, m) or _damage(folder, files):
        return State("damaged", why, m)
    if signature is not None and sig != signature:
        return State("stale", "its settings, models, resources or inputs changed since it was made", m)
    return State("done", "", m)


def run_chunked(step: Step, items: list, size: int, schema: type[T], work, ids_of) -> list[T]:
    """Process `items` in fixed chunks, appending each finished chunk to the step's shards.

    Chunks are cut from the full list, so chunk i is the same on a resumed run and `work(i, chunk)`
    (seeded by i) gives the same records: a killed-and-resumed step equals an uninterrupted one.
    `ids_of(item)` lists the record ids an item must produce; a chunk is done when all exist.
    """
    from .log import progress

    todo = pending_chunks(step, items, size, schema, ids_of)
    with progress(f"{step.folder.name}", len(todo)) as advance:
        for index, chunk in todo:
            step.append(work(index, chunk))
            advance(1)
    return chunked_records(step, items, schema, ids_of)


def pending_chunks(step: Step, items: list, size: int, schema: type[T], ids_of) -> list[tuple[int, list]]:
    """Begin the step; (index, chunk) of every fixed chunk not yet wholly in its shards."""
    step.begin()
    have = {r.id for r in step.load_shards(schema, warn=True)}
    chunks = [items[i : i + size] for i in range(0, len(items), size)]
    return [(i, c) for i, c in enumerate(chunks) if not all(x in have for it in c for x in ids_of(it))]


def chunked_records(step: Step, items: list, schema: type[T], ids_of) -> list[T]:
    """The step's records from its shards, in item order."""
    by_id = {r.id: r for r in step.load_shards(schema)}
    return [by_id[x] for it in items for x in ids_of(it)]
