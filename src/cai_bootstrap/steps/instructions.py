"""Instructions for a stage and round.

Stage 1: the held-out set from unseen tasks and wordings; the training set from seed tasks plus the
model's own self-instruct tasks, each with 1-3 verifiable constraints. Stages 2-5: the curriculum
builders (tasks/curriculum), stages 4-5 from earlier stages' verified answers. Stage 6: helpfulness
prompts plus red-team requests the model writes itself; it is evaluated on stage 1's held-out kind
(instruction following) plus the safety evaluation. Every training set passes a leakage check
against the held-out set.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from .. import health
from ..engines import Engine, Sampling
from ..log import log
from ..records import BaseTask, Instruction
from ..tasks import curriculum, selfinstruct, typegroups
from ..tasks.composer import compose, load_base_tasks
from ..tasks.diversity import diversity_stats
from ..tasks.leakage import assert_no_leakage, check_leakage

# Whole composed prompts share constraint wording, so prompt-vs-prompt uses a higher bar than
# task-vs-task (measured by the self-instruct helper on 3,000 x 3,000 synthetic prompts: 0.8 flags none).
PROMPT_LEAKAGE_THRESHOLD = 0.8

Earlier = list[tuple[Instruction, str, bool]]


@dataclass
class InstructionsOutput:
    instructions: list[Instruction]
    self_tasks: list[BaseTask] = field(default_factory=list)
    rejected: list = field(default_factory=list)
    stats: dict = field(default_factory=dict)


@dataclass(frozen=True)
class TaskSource:
    """Where a stage kind's instructions come from (the stage table; no integer branches below)."""

    composed_heldout: bool  # held-out: base tasks plus verifiable constraints (the composer)
    self_instruct: bool  # training: the model proposes tasks, the composer adds constraints
    reads_earlier: bool  # built on earlier stages' verified answers
    writes_redteam: bool  # training: the model writes its own red-team requests first


SOURCES: dict[int, TaskSource] = {
    1: TaskSource(composed_heldout=True, self_instruct=True, reads_earlier=False, writes_redteam=False),
    2: TaskSource(composed_heldout=False, self_instruct=False, reads_earlier=False, writes_redteam=False),
    3: TaskSource(composed_heldout=False, self_instruct=False, reads_earlier=False, writes_redteam=False),
    4: TaskSource(composed_heldout=False, self_instruct=False, reads_earlier=True, writes_redteam=False),
    5: TaskSource(composed_heldout=False, self_instruct=False, reads_earlier=True, writes_redteam=False),
    6: TaskSource(composed_heldout=True, self_instruct=False, reads_earlier=False, writes_redteam=True),
}


def _types(cfg) -> list[str]:
    return typegroups.training_types(cfg)


def _heldout_types_items(cfg, seed: int, stage: int) -> list[Instruction]:
    """Leave-types-out: items whose every constraint is a held-out-only type (none if unset)."""
    types = typegroups.heldout_only_types(cfg)
    if not types:
        return []
    rng = random.Random(f"heldout-types-{seed}-{stage}")
    tasks = load_base_tasks("heldout")
    lo, hi = cfg.min_constraints, cfg.max_constraints
    return compose(rng, tasks, cfg.n_heldout_types, "heldout", types, lo, hi, stage)


def heldout(
    cfg, seed: int, stage: int, earlier: Earlier | None = None, written: list | None = None
) -> list[Instruction]:
    """The stage's held-out set (never trained on; disjoint seeds and wordings)."""
    rng = random.Random(f"heldout-{seed}-{stage}")
    source = SOURCES[stage]
    if source.composed_heldout:
        return compose(
            rng,
            load_base_tasks("heldout"),
            cfg.n_heldout,
            "heldout",
            _types(cfg),
            cfg.min_constraints,
            cfg.max_constraints,
            stage,
        ) + _heldout_types_items(cfg, seed, stage)
    return curriculum.build(
        stage,
        "heldout",
        cfg.n_heldout,
        rng,
        earlier=earlier if source.reads_earlier else None,
        written=written,
    )


def _stage1(cfg, seed: int, round_: int, engine: Engine, held: list[Instruction]) -> InstructionsOutput:
    seeds = load_base_tasks("train")
    topics = sorted({t.topic for t in seeds})
    kinds = sorted({t.kind for t in seeds})
    held_tasks = [t.text for t in load_base_tasks("heldout")] + [h.task for h in held]
    si_cfg = cfg.self_instruct.model_copy(update={"seed": cfg.self_instruct.seed + 1000 * (round_ - 1)})
    si = selfinstruct.run(si_cfg, seeds, engine, topics, kinds, exclude=held_tasks)
    if si_cfg.n_tasks > 0:
        health.check_self_instruct(si_cfg.enabled, len(si.tasks), si_cfg.min_accepted)
    # A model-written task may word a held-out-only constraint itself; it never trains.
    pieces = typegroups.fragments(typegroups.heldout_only_types(cfg))
    kept = [t for t in si.tasks if not typegroups.wording_hit(t.text, pieces)]
    tasks = seeds + kept
    rng = random.Random(f"train-{seed}-1-{round_}")
    k = _from_model_tasks(si_cfg, cfg.n_train, round_, len(kept))
    types, lo, hi = _types(cfg), cfg.min_constraints, cfg.max_constraints
    if k is None:
        train = compose(rng, tasks, cfg.n_train, "train", types, lo, hi, 1)
    else:
        train = compose(rng, kept, k, "train", types, lo, hi, 1) if k else []
        train += compose(rng, seeds, cfg.n_train - k, "train", types, lo, hi, 1)
    stats = {"diversity": diversity_stats(train, tasks), "self_instruct": si.stats}
    stats["self_instruct_dropped_heldout_wording"] = len(si.tasks) - len(kept)
    stats["diversity"]["self_instruct_target"] = None if k is None else si_cfg.train_share
    return InstructionsOutput(train, si.tasks, si.rejected, stats)


# A model-written task is composed into at most this many instructions (different constraints each), so
# that a round with few accepted tasks does not fill its training set with copies of them; about what
# the GPU recipe makes of a seed task (1000 instructions from 140 seed tasks: 7 each).
MAX_USES_PER_TASK = 6


def _from_model_tasks(si_cfg, n: int, round_: int, n_tasks: int) -> int | None:
    """How many of the n training instructions come from model-written tasks; None: one shared pool
    (before share_from_round, or train_share null). Fewer than the share asks when too few tasks were
    accepted: said in the log, and the achieved share is in the step's diversity stats."""
    if si_cfg.train_share is None or round_ < si_cfg.share_from_round or not si_cfg.enabled:
        return None
    want = round(si_cfg.train_share * n)
    k = min(want, n_tasks * MAX_USES_PER_TASK)
    if k < want:
        log.warning(
            "round %d: %d model-written tasks give %d of %d training instructions (train_share %.2f asks "
            "for %d): raise instructions.self_instruct.n_tasks",
            round_, n_tasks, k, n, si_cfg.train_share, want,
        )  # fmt: skip
    return k


def _redteam_requests(engine: Engine, seed: int, n: int) -> list[str]:
    """Stage 6: the model writes its own red-team requests, one per topic (topic-guided)."""
    topics = curriculum.redteam_topics()
    rng = random.Random(f"redteam-{seed}")
    rng.shuffle(topics)
    topics = topics[:n]
    sampling = Sampling(
        n=1, temperature=0.9, top_p=0.95, max_new_tokens=64, stop=curriculum.REDTEAM_STOP, seed=seed
    )
    outs = engine.generate([curriculum.redteam_prompt_request(t) for t in topics], sampling)
    parsed = [curriculum.parse_redteam(o[0]) for o in outs]
    requests = [p.request for p in parsed if p.request]
    log.info(
        "stage 6: the model wrote %d usable red-team requests from %d topics", len(requests), len(topics)
    )
    return requests


def run(
    cfg,
    seed: int,
    stage: int,
    round_: int,
    engine: Engine,
    held: list[Instruction],
    earlier: Earlier | None = None,
    written: list | None = None,
) -> InstructionsOutput:
    """Training instructions for one round of one stage; refuses any overlap with `held`."""
    source = SOURCES[stage]
    if source.self_instruct:
        out = _stage1(cfg, seed, round_, engine, held)
    else:
        rng = random.Random(f"train-{seed}-{stage}-{round_}")
        generated = _redteam_requests(engine, seed + round_, cfg.n_train) if source.writes_redteam else None
        train = curriculum.build(
            stage,
            "train",
            cfg.n_train,
            rng,
            earlier=earlier if source.reads_earlier else None,
            generated=generated,
            written=written,
        )
        out = InstructionsOutput(train, stats={"diversity": diversity_stats(train, None)})
    typegroups.assert_types_apart(out.instructions, typegroups.heldout_only_types(cfg))
    train_texts = [i.prompt for i in out.instructions] + [i.task for i in out.instructions]
    assert_no_leakage([h.task for h in held], train_texts, cfg.leakage_threshold)
    assert_no_leakage(
        [h.prompt for h in held], [i.prompt for i in out.instructions], PROMPT_LEAKAGE_THRESHOLD
    )
    out.stats.update(
        leakage=check_leakage([h.task for h in held], train_texts, cfg.leakage_threshold).summary(),
        n_train=len(out.instructions),
        n_heldout=len(held),
    )
    return out
