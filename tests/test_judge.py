import math
import re

import pytest

from cai_bootstrap.constitution import load_constitution
from cai_bootstrap.errors import UserError
from cai_bootstrap.records import Instruction, Response
from cai_bootstrap.steps.judge import (
    LABELS,
    JudgeSettings,
    RewardModel,
    judge_pairs,
    make_judge_fn,
)
from tiny import tiny_canary

QUALITY = {"good answer": 2.0, "fair answer": 0.5, "bad answer": -1.0}


class ScriptedJudgeEngine:
    """logp(label) = quality of the answer shown under that label + `bias` if the label is A.

    The bias plays a judge that always leans to whatever sits in position A.
    """

    def __init__(self, bias: float = 0.0):
        self.bias = bias
        self.calls = 0

    def logprobs(self, prompts, continuations):
        self.calls += 1
        out = []
        for prompt, cont in zip(prompts, continuations, strict=True):
            assert prompt.endswith("is Response") and cont in LABELS
            shown = {
                " A": re.findall(r"^Response A: (.*)$", prompt, re.MULTILINE)[-1],
                " B": re.findall(r"^Response B: (.*)$", prompt, re.MULTILINE)[-1],
            }
            out.append(QUALITY[shown[cont]] + (self.bias if cont == " A" else 0.0))
        return out

    def generate(self, prompts, sampling):
        raise AssertionError("the judge only scores")


def _instruction() -> Instruction:
    return Instruction(
        id="i", stage=1, split="train", prompt="Say something.", task="t", task_kind="k", topic="t"
    )


PRINCIPLE = load_constitution(None).get("answer-the-actual-question")


def test_swapping_candidates_flips_the_sign():
    engine = ScriptedJudgeEngine()
    xy = judge_pairs(engine, [(_instruction(), PRINCIPLE, "good answer", "bad answer")])[0]
    yx = judge_pairs(engine, [(_instruction(), PRINCIPLE, "bad answer", "good answer")])[0]
    assert xy.raw_forward == pytest.approx(3.0) and xy.raw_swapped == pytest.approx(-3.0)
    assert yx.raw_forward == pytest.approx(-xy.raw_forward)
    assert xy.margin == pytest.approx(3.0) and yx.margin == pytest.approx(-3.0)


@pytest.mark.parametrize("bias", [0.0, 1.0, -2.5, 10.0])
def test_averaging_cancels_a_constant_position_bias(bias):
    engine = ScriptedJudgeEngine(bias=bias)
    r = judge_pairs(engine, [(_instruction(), PRINCIPLE, "fair answer", "good answer")])[0]
    # Each raw preference carries the bias; the margin does not.
    assert r.raw_forward == pytest.approx(-1.5 + bias)
    assert r.raw_swapped == pytest.approx(1.5 + bias)
    assert r.margin == pytest.approx(-1.5)


def test_batched_judging_uses_one_scoring_call_in_order():
    engine = ScriptedJudgeEngine(bias=0.7)
    items = [
        (_instruction(), PRINCIPLE, "good answer", "bad answer"),
        (_instruction(), PRINCIPLE, "bad answer", "fair answer"),
        (_instruction(), PRINCIPLE, "fair answer", "fair answer"),
    ]
    results = judge_pairs(engine, items)
    assert engine.calls == 1
    assert [r.margin for r in results] == pytest.approx([3.0, -1.5, 0.0])


def test_make_judge_fn_self_judge_and_principle_choice():
    c = load_constitution(None)
    engine = ScriptedJudgeEngine(bias=2.0)
    x = Response(id="x", instruction_id="i", sample=0, text="good answer")
    y = Response(
        id="y",
        instruction_id="i",
        sample=0,
        text="bad answer",
        origin="revision",
        parent_id="x",
        principle_id="no-padding",
    )
    fn = make_judge_fn(JudgeSettings(), engine, c)
    [pref] = fn([(_instruction(), x, y)])
    assert pref.source == "judge" and pref.margin == pytest.approx(3.0)
    assert pref.note == "no-padding"  # a revision is judged under the principle it was revised for
    fixed = make_judge_fn(JudgeSettings(principle="no-fabrication"), engine, c)
    assert fixed([(_instruction(), x, y)])[0].note == "no-fabrication"
    assert make_judge_fn(JudgeSettings(enabled=False), engine, c) is None
    with pytest.raises(UserError, match="unknown principle id"):
        make_judge_fn(JudgeSettings(principle="nope"), engine, c)


def test_reward_model_that_does_not_exist_stops_the_run(tmp_path):
    missing = tmp_path / "no-such-reward-model"
    with pytest.raises(UserError) as info:
        make_judge_fn(JudgeSettings(reward_model=str(missing)), None, load_constitution(None))
    assert info.value.cause.startswith(f"reward model {missing} could not be loaded: ")
    assert info.value.cause.endswith("no such path")
    assert info.value.fix == "check the path or set judge.reward_model to null"


def test_reward_model_folder_without_a_model_fails_with_the_loader_message(tmp_path):
    (tmp_path / "empty-rm").mkdir()
    with pytest.raises(UserError, match=r"^reward model .*empty-rm could not be loaded: \S") as info:
        RewardModel(str(tmp_path / "empty-rm"))
    assert info.value.fix == "check the path or set judge.reward_model to null"


def test_reward_model_scores_a_tiny_classifier(tiny_model_dir):
    # A causal-LM checkpoint loads as a sequence classifier with a fresh 1-label score head.
    rm = RewardModel(str(tiny_model_dir))
    scores = rm.score(["Say hi.", "Say hi."], ["hello there", "good day to you all"], batch_size=2)
    single = rm.score(["Say hi."], ["good day to you all"])
    assert len(scores) == 2 and all(math.isfinite(s) for s in scores)
    assert scores[1] == pytest.approx(single[0], abs=1e-4)  # padding does not change a score


def test_self_judge_on_the_tiny_model_is_antisymmetric(tiny_model_dir):
    from cai_bootstrap.engines.hf import HFEngine

    engine = HFEngine.from_path(tiny_model_dir, canary=tiny_canary())
    xy = judge_pairs(engine, [(_instruction(), PRINCIPLE, "The sea is wide.", "apple, pear, plum.")])[0]
    yx = judge_pairs(engine, [(_instruction(), PRINCIPLE, "apple, pear, plum.", "The sea is wide.")])[0]
    assert math.isfinite(xy.margin)
    assert xy.margin == pytest.approx(-yx.margin, abs=1e-4)
