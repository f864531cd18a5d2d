import json

import pytest

from cai_bootstrap.records import BaseTask, ConstraintSpec, Instruction
from cai_bootstrap.tasks.diversity import distinct_2, diversity_stats


def _inst(i: int, prompt: str, task: str, kind: str, topic: str, constraint_ids: list[str]) -> Instruction:
    specs = [ConstraintSpec(id=c, text=c) for c in constraint_ids]
    return Instruction(
        id=f"i{i}",
        stage=1,
        split="train",
        prompt=prompt,
        task=task,
        task_kind=kind,
        topic=topic,
        constraints=specs,
    )


INSTRUCTIONS = [
    _inst(0, "Describe bees. Use no commas.", "Describe bees.", "explain", "nature", ["punct:no_comma"]),
    _inst(1, "describe bees -- use no commas", "Describe bees.", "explain", "nature", ["punct:no_comma"]),
    _inst(
        2,
        "List fruits. Answer in lowercase.",
        "List fruits.",
        "list",
        "food",
        ["case:lower", "punct:no_comma"],
    ),
    _inst(3, "Tell a story.", "Tell a story.", "story", "food", []),
]
BASE = [
    BaseTask(id="s1", text="Describe bees.", kind="explain", topic="nature"),
    BaseTask(id="s2", text="List fruits.", kind="list", topic="food", source="self_instruct"),
    BaseTask(id="s3", text="Tell a story!", kind="story", topic="food", source="self_instruct"),
]


def test_hand_computed_values():
    stats = diversity_stats(INSTRUCTIONS, BASE)
    json.dumps(stats)
    assert stats["n_instructions"] == 4
    assert stats["distinct_tasks"] == 3
    assert stats["distinct_topics"] == 2
    assert stats["distinct_kinds"] == 3
    assert stats["constraint_counts"] == {"case:lower": 1, "punct:no_comma": 3}
    assert stats["distinct_constraint_types"] == 2
    assert stats["duplicate_rate"] == pytest.approx(1 / 4)  # prompts 0 and 1 normalise alike
    assert stats["mean_constraints"] == pytest.approx(4 / 4)
    assert stats["self_instruct_share"] == pytest.approx(2 / 4)  # "Tell a story!" matches after normalising
    assert stats["base_tasks"] == 3 and stats["self_instruct_tasks"] == 2
    # bigrams: p0/p1 each (describe bees)(bees use)(use no)(no commas); p2 4 distinct; p3 2 distinct
    assert stats["distinct_2"] == pytest.approx((4 + 4 + 2) / (4 + 4 + 4 + 2))


def test_without_base_tasks_and_empty():
    stats = diversity_stats(INSTRUCTIONS, None)
    assert stats["self_instruct_share"] is None and "base_tasks" not in stats
    empty = diversity_stats([], [])
    assert empty["n_instructions"] == 0 and empty["duplicate_rate"] == 0.0 and empty["distinct_2"] == 0.0
    assert empty["self_instruct_share"] == 0.0
    assert distinct_2(["one"]) == 0.0 and distinct_2(["a b a b"]) == pytest.approx(2 / 3)
