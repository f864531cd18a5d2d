"""Judge calibration: the labelled sets, scripted judges that pass or fail, safety figures that say
'not measured', and the Rogan-Gladen correction against hand-computed values."""

import math
import random
import re
from collections import Counter

import pytest
from scipy.stats import norm

from cai_bootstrap.constitution import load_constitution
from cai_bootstrap.errors import StepFailed
from cai_bootstrap.stats import rogan_gladen
from cai_bootstrap.steps import calibrate, safety_eval
from cai_bootstrap.steps.calibrate import Question, assert_calibration_apart, balanced, load_set
from cai_bootstrap.steps.judge import LABELS, JudgeSettings
from cai_bootstrap.steps.safety_eval import NO, YES, SafetyEvalSettings, SafetyKind
from cai_bootstrap.tasks.leakage import check_leakage

CONSTITUTION = load_constitution(None)
HARM_LABEL = {(it.request, it.response): it.harmful for it in load_set(Question.HARM)}
REFUSAL_LABEL = {(it.request, it.response): it.refusal for it in load_set(Question.REFUSAL)}
BETTER = {(it.instruction, it.better) for it in load_set(Question.PREFERENCE)}


def _between(prompt: str, start: str, end: str) -> str:
    return prompt[prompt.rindex(start) + len(start) : prompt.rindex(end)]


class ScriptedJudge:
    """A judge engine played by a rule. mode 'labels' answers as the labelled data says, 'random'
    answers at random, 'yes' always says ' Yes' (and ' A'), whatever the question."""

    def __init__(self, mode: str, seed: int = 0):
        self.mode, self.rng = mode, random.Random(seed)

    def _truth(self, prompt: str) -> bool:
        """Yes/No: does the concern apply? A/B: is A the better answer?"""
        if prompt.endswith("is Response"):
            instruction = _between(prompt, "\nInstruction: ", "\nQuestion about each response: ")
            return (instruction, _between(prompt, "\nResponse A: ", "\nResponse B: ")) in BETTER
        key = (
            _between(prompt, "\nRequest: ", "\nResponse: "),
            _between(prompt, "\nResponse: ", "\nConcern: "),
        )
        concern = _between(prompt, "\nConcern: ", "\nQuestion: ")
        truth = REFUSAL_LABEL[key] if concern == safety_eval.REFUSAL_CONCERN else HARM_LABEL.get(key, False)
        positive = "Does the response have this problem?" in prompt.rsplit("\nQuestion: ", 1)[1]
        return truth == positive

    def logprobs(self, prompts, continuations):
        out = []
        for prompt, cont in zip(prompts, continuations, strict=True):
            first = cont in (YES, LABELS[0])
            assert cont in (YES, NO, *LABELS)
            if self.mode == "yes":
                out.append(-0.1 if first else -3.0)
            elif self.mode == "random":
                out.append(-self.rng.random() * 4)
            else:
                out.append(-0.2 if first == self._truth(prompt) else -2.5)
        return out

    def generate(self, prompts, sampling):
        raise AssertionError("the judge only scores")


def _calibrate(mode: str, per_class: int | None = 12):
    judge = JudgeSettings(calibration_per_class=per_class)
    safety = SafetyEvalSettings(harm_categories=[])
    return calibrate.run(list(Question), judge, safety, ScriptedJudge(mode), CONSTITUTION, judge_name=mode)


# ---------------------------------------------------------------- the labelled sets
def test_sets_have_the_promised_sizes_and_balance():
    for q, n in ((Question.HARM, 150), (Question.REFUSAL, 150), (Question.PREFERENCE, 150)):
        items = load_set(q)
        assert len(items) >= n, q
        if q is not Question.PREFERENCE:
            labels = Counter(calibrate.label(it) for it in items)
            assert labels[True] == labels[False], q
    styles = Counter((it.style, it.harmful) for it in load_set(Question.HARM))
    assert {s for s, _ in styles} == {"detailed", "vague", "refusal", "redirect", "lecture"}
    assert all(h == (s in ("detailed", "vague")) for s, h in styles)
    kinds = Counter(it.kind for it in load_set(Question.PREFERENCE))
    assert set(kinds) == {"constraint", "correct", "on_task"} and min(kinds.values()) >= 50
    for it in load_set(Question.PREFERENCE):
        CONSTITUTION.get(it.principle)  # every pair names a real principle


def test_balanced_subsets_have_equal_classes_and_are_seeded():
    for q in Question:
        full = balanced(q, None, 0)
        assert sum(y for _, y in full) * 2 == len(full)
        sub = balanced(q, 10, 3)
        assert len(sub) == 20 and sum(y for _, y in sub) == 10
        assert [it.id for it, _ in sub] == [it.id for it, _ in balanced(q, 10, 3)]


def test_sets_pass_the_leakage_check_against_every_evaluation_set():
    assert all(r.n_leaked == 0 for r in assert_calibration_apart())
    # And the check would catch an evaluation prompt copied into a calibration set.
    prompt = safety_eval.load_eval_prompts(SafetyKind.REDTEAM)[0].prompt
    assert check_leakage([prompt], calibrate.requests(Question.HARM) + [prompt], 0.6).n_leaked == 1


# ---------------------------------------------------------------- scripted judges
def test_a_label_following_judge_passes_every_question():
    cal = _calibrate("labels")
    for q in Question:
        t = cal.types[q]
        assert t.balanced_accuracy == 1.0 and t.accepted and t.n == 24
        assert t.ci_low < 1.0 == t.ci_high
        assert cal.refusal(q) is None


def test_a_random_judge_is_refused():
    cal = _calibrate("random", per_class=None)
    for q in Question:
        t = cal.types[q]
        assert not t.accepted and t.ci_low < 0.5 < t.ci_high, (q, t.balanced_accuracy)
        assert cal.refusal(q) == f"not measured: {t.describe()}"
    assert re.fullmatch(
        r"not measured: judge balanced accuracy 0\.\d\d \[0\.\d\d, 0\.\d\d\] on 164 labelled answers",
        cal.refusal(Question.HARM),
    )


def test_an_always_yes_judge_is_caught_by_balanced_accuracy():
    cal = _calibrate("yes")
    for q in Question:
        t = cal.types[q]
        assert t.balanced_accuracy == 0.5 and not t.accepted
        assert t.first_label_rate == 1.0 and t.lean_nats == pytest.approx(2.9)


def _safety(cal):
    cfg = SafetyEvalSettings(n_redteam=4, n_benign=4, harm_categories=[])
    n = 8
    answers = ["I'm sorry, but I can't help with that."] * 2 + ["Sure, here it is."] * (n - 2)
    return safety_eval.judge(cfg, answers, ScriptedJudge("random"), CONSTITUTION, calibration=cal)


def test_a_refused_judge_prints_not_measured_and_keeps_the_lexical_figure():
    cal = _calibrate("random", per_class=None)
    result = _safety(cal)
    assert result.harmless is None and result.over_refusal is None and result.harmless_corrected is None
    assert result.not_measured["harmful"] == cal.refusal(Question.HARM)
    assert result.not_measured["refused"].startswith("not measured: judge balanced accuracy")
    assert result.redteam_refusal_lexical.successes == 2 and result.over_refusal_lexical.n == 4
    assert all(it.harmful is None and it.judge_margin is None for it in result.items)
    assert result.judge_calibration["judge"] == "random"


def test_an_accepted_judge_reports_raw_and_corrected_harmlessness():
    cal = _calibrate("labels")
    result = _safety(cal)
    assert result.harmless is not None and not result.not_measured
    c = result.harmless_corrected
    # A perfect judge: the correction changes nothing but the interval, which only widens.
    assert c.rate == pytest.approx(result.harmless.rate) and c.raw == pytest.approx(result.harmless.rate)
    assert c.ci_low <= result.harmless.ci_low and c.ci_high >= result.harmless.ci_high


# ---------------------------------------------------------------- Rogan-Gladen
def _wilson(k: int, n: int, level: float) -> tuple[float, float]:
    """Wilson's score interval written out, independent of stats.wilson."""
    z = norm.ppf(1 - (1 - level) / 2)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


def test_rogan_gladen_point_estimates_by_hand():
    # p = 30/100, Se = 45/50 = 0.9, Sp = 40/50 = 0.8: (0.3 + 0.8 - 1) / (0.9 + 0.8 - 1) = 0.1 / 0.7
    r = rogan_gladen(30, 100, 45, 50, 40, 50)
    assert r.rate == pytest.approx(1 / 7) and r.raw == 0.3
    assert (r.sensitivity, r.specificity) == (0.9, 0.8)
    # p = 60/100, Se = 0.8, Sp = 0.9: (0.6 + 0.9 - 1) / 0.7 = 5/7
    assert rogan_gladen(60, 100, 40, 50, 45, 50).rate == pytest.approx(5 / 7)
    # Fewer positives than the false-positive rate alone explains: clipped to 0.
    assert rogan_gladen(5, 100, 45, 50, 40, 50).rate == 0.0


def test_rogan_gladen_interval_is_the_corner_range_of_bonferroni_wilson_intervals():
    r = rogan_gladen(30, 100, 45, 50, 40, 50)
    level = 1 - 0.05 / 3
    (pl, ph), (sel, seh), (spl, sph) = _wilson(30, 100, level), _wilson(45, 50, level), _wilson(40, 50, level)
    # Lowest: fewest positives, highest Se, lowest Sp; highest: the opposite (clipped at 0).
    low = max(0.0, (pl + spl - 1) / (seh + spl - 1))
    high = (ph + sph - 1) / (sel + sph - 1)
    assert r.ci_low == pytest.approx(low, abs=1e-9) and r.ci_high == pytest.approx(high, abs=1e-9)
    assert r.ci_low < r.rate < r.ci_high


def test_rogan_gladen_refuses_a_chance_classifier_and_widens_for_a_weak_one():
    with pytest.raises(StepFailed, match="no better than chance"):
        rogan_gladen(30, 100, 25, 50, 25, 50)
    weak = rogan_gladen(30, 100, 30, 50, 30, 50)  # Se + Sp - 1 = 0.2, lower ends reach chance
    assert (weak.ci_low, weak.ci_high) == (0.0, 1.0)


# ---------------------------------------------------------------- stage 6 and the command line
def test_stage_6_stops_with_one_line_when_its_judge_fails(monkeypatch):
    from types import SimpleNamespace

    from cai_bootstrap import stage_calibration
    from cai_bootstrap.config import StageSettings
    from cai_bootstrap.errors import UserError

    failed = _calibrate("random", per_class=None)
    monkeypatch.setattr(stage_calibration, "calibration", lambda ctx: failed)
    ctx = SimpleNamespace(cfg=StageSettings(stage=6), judge="/models/base")
    with pytest.raises(UserError) as e:
        stage_calibration.require_judge(ctx)
    line = e.value.one_line()
    assert "\n" not in line and "stage 6 orders its pairs by a judge" in line
    assert "judge balanced accuracy" in line and "model.judge" in line
    # A judge that passes, or a stage with verifiable constraints, goes on.
    monkeypatch.setattr(stage_calibration, "calibration", lambda ctx: _calibrate("labels"))
    stage_calibration.require_judge(ctx)
    monkeypatch.setattr(stage_calibration, "calibration", lambda ctx: failed)
    stage_calibration.require_judge(SimpleNamespace(cfg=StageSettings(stage=1), judge="/models/base"))


def test_calibrate_command_prints_the_table(tmp_path, tiny_model_dir):
    import json

    from typer.testing import CliRunner

    from cai_bootstrap.cli import app

    out = tmp_path / "cal.json"
    args = ["calibrate", "--judge", str(tiny_model_dir), "--quiet", "--out", str(out)]
    args += ["--set", "model.dtype=float32", "--set", "stages.0.judge.calibration_per_class=3"]
    args += ["--set", "model.canary.max_nll=null"]  # random weights: exempt from the canary's NLL bound
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "balanced accuracy" in result.output and "harm:" in result.output
    saved = json.loads(out.read_text())
    assert set(saved["types"]) == {"harm", "refusal", "preference"}
    assert all(t["n"] == 6 for t in saved["types"].values())


def test_pairs_drop_the_ties_a_refused_judge_would_have_ordered():
    from cai_bootstrap.records import Instruction, Response
    from cai_bootstrap.steps import pairs

    ins = Instruction(id="i", stage=1, split="train", prompt="Say hi.", task="t", task_kind="k", topic="t")
    answers = [
        Response(id=f"r{k}", instruction_id="i", sample=k, text=text)
        for k, text in enumerate(["Hello there, friend.", "Good morning to you all.", "Hi!"])
    ]
    why = "not measured: judge balanced accuracy 0.50 [0.42, 0.58] on 156 labelled pairs"
    out = pairs.run(pairs.PairSettings(), [ins], answers, None, judge_refused=why)
    assert not out.pairs and len(out.dropped) == 3
    assert {(d.reason, d.detail) for d in out.dropped} == {(pairs.DropReason.JUDGE_UNCALIBRATED, why)}
    assert out.stats.dropped_by_reason == {"judge_uncalibrated": 3}
