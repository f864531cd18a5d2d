"""The forgetting matrix: a later model's answers on an earlier stage's held-out set, paired with the
answers of the model that finished that stage; a significant drop is flagged and, when the recipe
asks, stops the run with exit 3's error."""

from pathlib import Path
from types import SimpleNamespace

import pytest

from cai_bootstrap import forgetting
from cai_bootstrap.config import StageSettings
from cai_bootstrap.errors import GateFailed
from cai_bootstrap.records import EvalItem
from cai_bootstrap.report import forgetting as report_forgetting
from cai_bootstrap.results import RoundResult, StageResult
from cai_bootstrap.store import write_jsonl


def _items(tag: str, passes: list[bool]) -> list[EvalItem]:
    return [
        EvalItem(id=f"{tag}:{i}", model_tag=tag, instruction_id=str(i), prompt="p", response="r",
                 constraint_ids=["cai:no_digits"], passed_strict=[ok], passed_loose=[ok],
                 all_strict=ok, all_loose=ok)
        for i, ok in enumerate(passes)
    ]  # fmt: skip


def _cell(tmp_path: Path, earlier: list[bool], later: list[bool], alpha=0.01):
    write_jsonl(tmp_path / "stage1_eval.jsonl", _items("trained", earlier))
    (tmp_path / "f").mkdir(exist_ok=True)
    write_jsonl(tmp_path / "f" / "records.jsonl", _items("after_stage2", later))
    res = StageResult(
        stage=1, base_model="m", heldout="h", base_eval="b", chosen_round=1, stop_reason="x",
        rounds=[RoundResult(round=1, generator="g", model="m", trained_eval="stage1_eval.jsonl")],
    )  # fmt: skip
    cfg2 = StageSettings(stage=2)
    cfg2.gate.forgetting_alpha = alpha
    ctx = SimpleNamespace(run_dir=tmp_path, cfg=cfg2)
    return forgetting._cell(ctx, StageSettings(stage=1), res, tmp_path / "f")


def test_a_significant_drop_is_flagged_and_stops_only_when_asked(tmp_path):
    cell = _cell(tmp_path, [True] * 30, [False] * 25 + [True] * 5)
    assert (cell.after_stage, cell.heldout_stage) == (2, 1)
    c = cell.comparison
    assert (c.base.successes, c.trained.successes, c.mcnemar.b, c.mcnemar.c) == (30, 5, 25, 0)
    assert cell.dropped and c.mcnemar.p_value < 1e-5
    forgetting.enforce(2, StageSettings().gate, [cell])  # recorded, not enforced by default
    gate = StageSettings(gate={"stop_on_forgetting": True}).gate
    with pytest.raises(
        GateFailed, match=r"Stage 2 FAILED: it forgot stage 1 \(prompt_strict 100.0% -> 16.7%"
    ):
        forgetting.enforce(2, gate, [cell])


def test_noise_and_gains_are_not_drops(tmp_path):
    small = _cell(tmp_path, [True] * 10, [False] * 2 + [True] * 8)  # 2 lost of 10: p = 0.5
    assert not small.dropped and small.comparison.mcnemar.b == 2
    gain = _cell(tmp_path, [False] * 30, [True] * 30)
    assert not gain.dropped
    forgetting.enforce(2, StageSettings(gate={"stop_on_forgetting": True}).gate, [small, gain])


def test_the_forgetting_step_is_declared_like_the_heldout_evaluation():
    spec = forgetting.spec(1)
    assert spec.name == "forgetting_stage1" and spec.reads == ("heldout_stage1",)
    assert spec.models == {"evaluated": "generator"} and spec.settings == ("eval",) and not spec.in_round
    assert spec.folder(Path("/r/stage3"), 0) == Path("/r/stage3/forgetting_stage1")


def test_no_matrix_without_a_later_stage(tmp_path):
    assert report_forgetting.table(tmp_path) is None
