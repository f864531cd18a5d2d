"""Stage 4 makes the judge: its items are balanced by verdict and kind; its model's judging skill is
a balanced accuracy with an interval; it judges stages 5 and 6 only when its calibration passes
(scripted judges: a perfect one and one that always says yes / A)."""

import json
import random
from pathlib import Path
from types import SimpleNamespace

from cai_bootstrap import judge_handoff
from cai_bootstrap.config import Recipe
from cai_bootstrap.records import EvalItem
from cai_bootstrap.results import RoundResult, StageResult
from cai_bootstrap.stage_context import StageContext
from cai_bootstrap.stats import wilson
from cai_bootstrap.steps.calibrate import Calibration, Question, _summary
from cai_bootstrap.store import write_jsonl
from cai_bootstrap.tasks import curriculum as cur
from cai_bootstrap.tasks.curriculum.stage4 import label_of


def _verdicts(items):
    return [(i.task_kind, label_of(i)) for i in items]


def test_stage4_items_are_balanced_by_verdict_and_kind():
    for split in ("train", "heldout"):
        items = cur.build(4, split, 40, random.Random(split))
        counts = {v: _verdicts(items).count(v) for v in set(_verdicts(items))}
        assert set(counts) == {("judge_choice", "A"), ("judge_choice", "B"), ("judge_yes_no", "yes"),
                               ("judge_yes_no", "no")}  # fmt: skip
        assert len(set(counts.values())) == 1, counts
        assert len({i.prompt for i in items}) == len(items)  # no repeats


def _answers(held, judge):
    """EvalItems of a scripted judge: 'perfect' gives every verdict, 'yes' always says yes / A."""
    ok = {"perfect": lambda v: True, "yes": lambda v: v in ("A", "yes")}[judge]
    return [
        EvalItem(id=f"t:{i.id}", model_tag="t", instruction_id=i.id, prompt=i.prompt, response="x",
                 constraint_ids=[i.constraints[0].id], passed_strict=[ok(label_of(i))],
                 passed_loose=[ok(label_of(i))], all_strict=ok(label_of(i)), all_loose=ok(label_of(i)))
        for i in held
    ]  # fmt: skip


def test_judging_skill_is_balanced_accuracy_with_an_interval():
    held = cur.build(4, "heldout", 40, random.Random(0))
    perfect = judge_handoff.skill(held, _answers(held, "perfect"))
    assert perfect.balanced_accuracy == 1.0 and perfect.n == len(held)
    assert (perfect.ci_low, perfect.ci_high) == wilson(len(held), len(held))  # equal counts: BA = accuracy
    yes = judge_handoff.skill(held, _answers(held, "yes"))
    assert yes.balanced_accuracy == 0.5 and yes.ci_low < 0.5 < yes.ci_high  # chance, whatever it leans to
    assert yes.recall["yes"].rate == 1.0 and yes.recall["no"].rate == 0.0


def _calibration(judge: str) -> Calibration:
    labels = [True, False] * 20
    called = labels if judge == "perfect" else [True] * 40
    types = {q: _summary(q, called, labels, 0.0, None, 0.7) for q in Question}
    return Calibration(judge=judge, types=types)


def _stage4_run(tmp_path: Path, judge: str, monkeypatch) -> StageContext:
    recipe = Recipe.model_validate({"stages": [{"stage": 4}, {"stage": 5}, {"stage": 6}]})
    ctx = StageContext(recipe, recipe.stages[0], tmp_path, None, SimpleNamespace(release=lambda: None),
                       False, tmp_path / "stage3" / "round1" / "model")  # fmt: skip
    held = cur.build(4, "heldout", 40, random.Random(0))
    write_jsonl(tmp_path / "stage4" / "heldout" / "records.jsonl", held)
    write_jsonl(tmp_path / "base.jsonl", _answers(held, "yes"))
    write_jsonl(tmp_path / "trained.jsonl", _answers(held, judge))
    model = tmp_path / "stage4" / "round1" / "model"
    seen = []

    def scripted(c):
        seen.append(c.judge)  # the stage-4 model is the one calibrated, on every question type
        assert c.cfg.judge.enabled and c.cfg.eval.safety.enabled and c.cfg.judge.reward_model is None
        return _calibration(judge)

    monkeypatch.setattr(judge_handoff, "calibration", scripted)
    h = judge_handoff.assess(ctx, model, tmp_path / "base.jsonl", tmp_path / "trained.jsonl")
    assert seen == [model]
    res = StageResult(stage=4, base_model="m", heldout="h", base_eval="b", chosen_round=1, stop_reason="x",
                      rounds=[RoundResult(round=1, generator="g", model="stage4/round1/model", trained_eval="t")],
                      handoff=h)  # fmt: skip
    (tmp_path / "stage4" / "stage.json").write_text(res.model_dump_json())
    return h


def test_a_calibrated_stage4_model_judges_stages_5_and_6(tmp_path, monkeypatch):
    h = _stage4_run(tmp_path, "perfect", monkeypatch)
    assert h.accepted and h.skill.balanced_accuracy == 1.0 and h.base_skill.balanced_accuracy == 0.5
    model = tmp_path / "stage4" / "round1" / "model"
    assert [judge_handoff.judge_for(tmp_path, s) for s in (4, 5, 6)] == [None, model, model]
    recipe = Recipe.model_validate({"model": {"judge": "embedded:gemma-3-270m"}, "stages": [{"stage": 6}]})
    ctx = StageContext(recipe, recipe.stages[0], tmp_path, None, None, False, Path("/base"),
                       handoff_judge=judge_handoff.judge_for(tmp_path, 6))  # fmt: skip
    assert ctx.judge == model  # ahead of the fixed model.judge
    assert "stage 4's model stage4/round1/model" in judge_handoff.describe(ctx)


def test_a_stage4_model_below_the_bar_hands_nothing_off(tmp_path, monkeypatch):
    h = _stage4_run(tmp_path, "yes", monkeypatch)
    assert not h.accepted and "not the judge" in h.reason
    assert any("NOT used" in line for line in h.calibration)
    assert judge_handoff.judge_for(tmp_path, 5) is None and judge_handoff.judge_for(tmp_path, 6) is None
    recipe = Recipe.model_validate({"stages": [{"stage": 5}]})
    ctx = StageContext(recipe, recipe.stages[0], tmp_path, None, None, False, Path("/base"))
    assert ctx.judge == Path("/base")  # as before: the stage's input model
    line = judge_handoff.describe(ctx)
    assert line.startswith("judge: the stage's input model (stage 4's model is not the judge")


def test_no_handoff_without_a_later_stage(tmp_path):
    recipe = Recipe.model_validate({"stages": [{"stage": 4}]})
    ctx = StageContext(recipe, recipe.stages[0], tmp_path, None, None, False, Path("/base"))
    held = cur.build(4, "heldout", 8, random.Random(0))
    write_jsonl(tmp_path / "stage4" / "heldout" / "records.jsonl", held)
    write_jsonl(tmp_path / "e.jsonl", _answers(held, "perfect"))
    h = judge_handoff.assess(ctx, tmp_path / "m", tmp_path / "e.jsonl", tmp_path / "e.jsonl")
    assert not h.accepted and "no stage 5 or 6" in h.reason and h.skill.balanced_accuracy == 1.0
    assert json.loads(h.model_dump_json())["calibration"] == []


def test_stage4_reads_every_earlier_verified_answer(tmp_path):
    """Training items from the earlier rounds' responses (with the verifiers' verdicts); held-out ones
    from the earlier baseline and trained evaluations of the held-out sets, never the other way."""
    from cai_bootstrap.records import Response
    from cai_bootstrap.stage_data import earlier_answers

    s1 = tmp_path / "stage1"
    held = [
        i.model_copy(update={"id": f"h{n}"})
        for n, i in enumerate(cur.build(2, "heldout", 2, random.Random(0)))
    ]
    train = [
        i.model_copy(update={"id": f"t{n}"}) for n, i in enumerate(cur.build(2, "train", 2, random.Random(0)))
    ]
    write_jsonl(s1 / "heldout" / "records.jsonl", held)
    write_jsonl(s1 / "round1" / "instructions" / "records.jsonl", train)
    for folder, tag in ((s1 / "eval_base", "base"), (s1 / "round1" / "eval", "trained")):
        items = [
            EvalItem(id=f"{tag}:{i.id}", model_tag=tag, instruction_id=i.id, prompt=i.prompt, response=tag,
                     constraint_ids=[c.id for c in i.constraints], passed_strict=[True] * len(i.constraints),
                     passed_loose=[True] * len(i.constraints), all_strict=True, all_loose=True)
            for i in held
        ]  # fmt: skip
        write_jsonl(folder / "records.jsonl", items)
    responses = [
        Response(id=f"r{i.id}", instruction_id=i.id, sample=0, text="ans", all_passed=True) for i in train
    ]
    write_jsonl(s1 / "round1" / "responses" / "records.jsonl", responses)
    recipe = Recipe.model_validate({"stages": [{"stage": 1}, {"stage": 4}]})
    ctx = StageContext(recipe, recipe.stages[1], tmp_path, None, None, False, Path("/base"))
    got = earlier_answers(ctx, "heldout")
    assert sorted((i.id, a) for i, a, _ in got) == sorted(
        (i.id, t) for i in held for t in ("base", "trained")
    )
    assert [(i.id, a, ok) for i, a, ok in earlier_answers(ctx, "train")] == [
        (i.id, "ans", True) for i in train
    ]
