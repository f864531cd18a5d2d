"""Stage-1 instructions: held-out set from unseen tasks and wordings; training set from seed tasks plus
the model's own self-instruct tasks, each with 1-3 verifiable constraints; a leakage check between them."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from ..engines import Engine
from ..records import BaseTask, Instruction
from ..tasks import selfinstruct
from ..tasks.composer import compose, constraint_types_default, load_base_tasks
from ..tasks.diversity import diversity_stats
from ..tasks.leakage import assert_no_leakage, check_leakage

# Whole composed prompts share constraint wording, so prompt-vs-prompt uses a higher bar than
# task-vs-task (measured by the self-instruct helper on 3,000 x 3,000 synthetic prompts: 0.8 flags none).
PROMPT_LEAKAGE_THRESHOLD = 0.8


@dataclass
class InstructionsOutput:
    instructions: list[Instruction]
    self_tasks: list[BaseTask]
    rejected: list = field(default_factory=list)
    stats: dict = field(default_factory=dict)


def _types(cfg) -> list[str]:
    return cfg.constraint_types or constraint_types_default()


def heldout(cfg, seed: int, stage: int) -> list[Instruction]:
    """The stage's held-out set: held-out base tasks (disjoint topic x kind) and held-out phrasings."""
    rng = random.Random(f"heldout-{seed}-{stage}")
    return compose(
        rng, load_base_tasks("heldout"), cfg.n_heldout, "heldout", _types(cfg),
        cfg.min_constraints, cfg.max_constraints, stage,
    )


def run(cfg, seed: int, stage: int, engine: Engine, held: list[Instruction]) -> InstructionsOutput:
    """Self-instruct new training tasks, compose training instructions, and refuse any leakage."""
    seeds = load_base_tasks("train")
    topics = sorted({t.topic for t in seeds})
    kinds = sorted({t.kind for t in seeds})
    held_tasks = [t.text for t in load_base_tasks("heldout")] + [h.task for h in held]
    si = selfinstruct.run(cfg.self_instruct, seeds, engine, topics, kinds, exclude=held_tasks)
    tasks = seeds + si.tasks
    rng = random.Random(f"train-{seed}-{stage}")
    train = compose(rng, tasks, cfg.n_train, "train", _types(cfg), cfg.min_constraints, cfg.max_constraints, stage)
    train_texts = [i.prompt for i in train] + [i.task for i in train]
    assert_no_leakage([h.task for h in held], train_texts, cfg.leakage_threshold)
    assert_no_leakage([h.prompt for h in held], [i.prompt for i in train], PROMPT_LEAKAGE_THRESHOLD)
    leak = check_leakage([h.task for h in held], train_texts, cfg.leakage_threshold)
    stats = {
        "diversity": diversity_stats(train, tasks),
        "self_instruct": si.stats,
        "leakage": leak.summary(),
        "n_train": len(train),
        "n_heldout": len(held),
    }
    return InstructionsOutput(train, si.tasks, si.rejected, stats)
