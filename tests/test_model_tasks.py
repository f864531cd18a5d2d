"""From round 2 on, most stage-1 training instructions are composed from model-written tasks (issue 26):
the share is a setting, and the step's diversity stats say what was achieved."""

from __future__ import annotations

import pytest

from cai_bootstrap.config import InstructionSettings
from cai_bootstrap.records import BaseTask
from cai_bootstrap.steps import instructions
from cai_bootstrap.tasks import selfinstruct
from cai_bootstrap.tasks.selfinstruct import SelfInstructOutput

TOPICS = ["gardening", "cooking", "travel", "weather", "music", "sports", "history", "money"]


def _model_tasks(n: int) -> list[BaseTask]:
    return [
        BaseTask(
            id=f"si-{k}",
            text=f"Explain how a {TOPICS[k % 8]} club number {k} plans its first season.",
            kind="explain",
            topic=TOPICS[k % 8],
            source="self_instruct",
        )  # fmt: skip
        for k in range(n)
    ]


@pytest.fixture
def written(monkeypatch):
    """Self-instruct accepts `n` tasks (set by the test); the model itself is not needed here."""
    box = {"n": 16}
    monkeypatch.setattr(selfinstruct, "run", lambda *a, **k: SelfInstructOutput(tasks=_model_tasks(box["n"])))
    return box


def _share(round_: int, **si) -> dict:
    cfg = InstructionSettings(n_train=20, n_heldout=10, self_instruct={"min_accepted": 0, **si})
    held = instructions.heldout(cfg, 0, 1)
    out = instructions.run(cfg, 0, 1, round_, None, held)
    assert len(out.instructions) == 20
    return out.stats["diversity"]


def test_round_one_keeps_one_pool_and_round_two_is_mostly_model_written(written):
    first = _share(1)
    assert first["self_instruct_target"] is None and first["self_instruct_share"] < 0.6
    second = _share(2)
    assert second["self_instruct_target"] == 0.6 and second["self_instruct_share"] == pytest.approx(0.6)
    assert _share(2, train_share=0.9)["self_instruct_share"] == pytest.approx(0.9)
    assert _share(2, train_share=None)["self_instruct_target"] is None
    assert _share(3, share_from_round=4)["self_instruct_target"] is None


def test_too_few_model_tasks_give_what_they_can_and_say_so(written, caplog):
    written["n"] = 1  # at most MAX_USES_PER_TASK instructions from it
    stats = _share(2)
    assert stats["self_instruct_share"] == pytest.approx(instructions.MAX_USES_PER_TASK / 20)
    assert "raise instructions.self_instruct.n_tasks" in caplog.text
    written["n"] = 0
    assert _share(2)["self_instruct_share"] == 0.0
