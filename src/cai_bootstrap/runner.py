"""One way to run a step: a `StepSpec` declares what a step reads and writes; `run_step` computes its
signature, decides done / stale / damaged / resume from the files alone, enforces its timeout and
writes its manifest last. `step_state` is the one "is it done?" rule; `cai-bootstrap status` uses it too.

A step's signature hashes, and only hashes:
- the *whole* settings sections it names (every field, `enabled` included), minus fields a settings
  model declares exempt (`signature_exempt`, with the reason) or the step declares it ignores;
- `extra`: values from outside the stage settings it uses (seed, stage, round, dtype, constitution);
- the identity of every model it uses (`model_identity`: weights, never the path);
- the bytes of every packaged resource it reads (frame, Jinja templates, YAML data);
- the *results* of the earlier steps it reads: the sha256 of their vouched-for files, minus files
  that hold timings (`volatile`), so a redone step whose results are equal leaves dependants done.
"""

from __future__ import annotations

import functools
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .errors import CaiError, StepFailed, UserError
from .log import log, step_finished, step_started
from .signing import model_identity, signed  # noqa: F401  (re-exported: the step runner's signature rules)
from .store import CACHE_VERSION, STATES, State, Step, canonical_hash, sha256_file, step_state  # noqa: F401


def package_root() -> Path:
    """Folder of the installed package; packaged resources are read from here (tests point it elsewhere)."""
    return Path(__file__).resolve().parent


def resource_hash(rel: str) -> str:
    """sha256 of a packaged file, or of every file under a packaged folder (names and bytes)."""
    return _resource_hash(package_root(), rel)


@functools.cache  # packaged files do not change while a process runs; tests edit them and clear it
def _resource_hash(root: Path, rel: str) -> str:
    path = root / rel
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
        return canonical_hash({str(p.relative_to(path)): sha256_file(p) for p in files})
    if not path.is_file():
        raise StepFailed(f"packaged resource {rel} is missing", "reinstall cai-bootstrap")
    return sha256_file(path)


@dataclass(frozen=True)
class StepSpec:
    """A step, declared once next to its glue code. `run(ctx, st, inputs, models)` does the work and
    returns a `Done`; `inputs` maps each name in `reads` to that step's folder, `models` each role to
    a model folder. `models` sources: "base" (the stage's input model), "generator" (the round's),
    "judge", or the name of an earlier step whose folder is a model."""

    name: str
    run: Callable
    settings: tuple[str, ...] = ()
    ignores: dict[str, str] = field(default_factory=dict)  # "section.field" -> why this step ignores it
    reads: tuple[str, ...] = ()
    models: dict[str, str] = field(default_factory=dict)
    resources: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ("records.jsonl",)
    volatile: tuple[str, ...] = ()  # outputs holding timings: vouched for, not hashed into dependants
    timeout: str | None = None  # run.timeouts kind
    extra: Callable | None = None  # ctx -> dict of non-settings values the result depends on
    in_round: bool = True  # False: once per stage (baseline), folder stageN/<name>

    def folder(self, stage_dir: Path, round_: int) -> Path:
        return stage_dir / f"round{round_}" / self.name if self.in_round else stage_dir / self.name


@dataclass
class Done:
    """What a step's run hands back: records (None when it wrote records.jsonl itself), counts, and
    extra manifest fields."""

    records: list | None
    counts: dict
    extra: dict = field(default_factory=dict)


def result_digest(spec: StepSpec, manifest: dict) -> str:
    """What dependants hash of a finished step: its vouched-for files' sha256, timings left out."""
    files = {k: v["sha256"] for k, v in manifest["files"].items() if k not in spec.volatile}
    return canonical_hash(files)


def signature_parts(spec: StepSpec, ctx, inputs: dict[str, str], model_ids: dict[str, str]) -> dict:
    """The ingredients of a step's signature (kept in its manifest, so a change can be explained):
    `inputs` maps each step it reads to that step's result digest, `model_ids` each model role to
    its `model_identity`."""
    skip = frozenset(spec.ignores)
    return {
        "step": spec.name,
        "settings": {s: signed(_section(ctx.cfg, s), skip, f"{s}.") for s in spec.settings},
        "extra": spec.extra(ctx) if spec.extra else {},
        "models": dict(sorted(model_ids.items())),
        "resources": {r: resource_hash(r) for r in spec.resources},
        "inputs": inputs,
        "cache_version": CACHE_VERSION,
    }


def _section(cfg, dotted: str):
    for part in dotted.split("."):
        cfg = getattr(cfg, part)
    return cfg


class StepTimeout:
    """Fail a step that runs past its configured limit (run.timeouts) with one clear line.

    SIGALRM interrupts the main thread wherever it is; the step's shards stay, so a re-run resumes.
    """

    def __init__(self, name: str, seconds: float | None):
        self.name, self.seconds = name, seconds

    def _fire(self, *_):
        raise StepFailed(
            f"step '{self.name}' exceeded its timeout of {self.seconds:.0f} s",
            f"raise run.timeouts.{self.name} in the recipe, or make the step smaller; a re-run resumes it",
        )

    def __enter__(self):
        if self.seconds:
            signal.signal(signal.SIGALRM, self._fire)
            signal.setitimer(signal.ITIMER_REAL, self.seconds)
        return self

    def __exit__(self, *exc):
        if self.seconds:
            signal.setitimer(signal.ITIMER_REAL, 0)


def _prepare(spec: StepSpec, st: Step, state: State, ctx, redone_input: bool) -> None:
    """Make the folder ready: refuse a stale step unless --force or an input was just remade;
    discard a damaged one or a partial one begun under another signature."""
    rel = st.folder.relative_to(ctx.run_dir)
    if state.name == "stale":
        if not (ctx.force or redone_input):
            raise UserError(
                f"step {rel} is stale: its config or inputs changed since it was made",
                "rerun with --force to redo it (and what depends on it), or restore the old recipe",
            )
        log.warning("redoing stale step %s", rel)
        st.reset()
    elif state.name == "damaged":
        log.warning("redoing damaged step %s: %s", rel, state.why)
        st.reset()
    elif state.name in ("failed", "running") and st.started_signature() != st.signature:
        log.warning("discarding %s: begun under other settings or inputs", rel)
        st.reset()


def run_step(spec: StepSpec, ctx, inputs: dict[str, Path], models: dict[str, Path], digests: dict) -> dict:
    """Skip, resume or (re)do one step; returns its manifest. `digests` maps each earlier step's name
    to its result digest; `ctx.remade` collects the folders remade in this invocation."""
    ids = {role: model_identity(p) for role, p in models.items()}
    parts = signature_parts(spec, ctx, {k: digests[k] for k in spec.reads}, ids)
    st = Step(spec.folder(ctx.stage_dir, ctx.round), signature=canonical_hash(parts))
    state = step_state(st.folder, st.signature)
    if state.name == "done":
        log.info("skip %s (done, signature matches)", st.folder.relative_to(ctx.run_dir))
        return state.manifest
    # A step whose input or model was remade in this invocation (damaged, deleted or forced) is
    # expected to be stale: it is redone without --force.
    used = [*(inputs[r] for r in spec.reads), *models.values()]
    _prepare(spec, st, state, ctx, any(p in ctx.remade for p in used))
    rel = st.folder.relative_to(ctx.run_dir)
    step_started(rel, state.name)
    st.begin()
    seconds = getattr(ctx.recipe.run.timeouts, spec.timeout) if spec.timeout else None
    with StepTimeout(spec.timeout or spec.name, seconds):
        try:
            done = spec.run(ctx, st, inputs, models)
        except CaiError:
            raise
        except Exception as e:  # a bug or a library's surprise: one line, the traceback in a file
            from .crash import one_line, write_traceback

            log_file = write_traceback(e, f"step {rel}")
            raise StepFailed(
                f"step {rel} failed unexpectedly ({one_line(e)})",
                f"the traceback is in {log_file}; a re-run resumes the step",
            ) from e
    ctx.remade.add(st.folder)
    manifest = st.finish(done.records, done.counts, {"parts": parts, **done.extra}, outputs=spec.outputs)
    step_finished(rel, manifest)
    return manifest
