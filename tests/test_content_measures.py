"""Content measures of held-out answers, base vs trained, and the "gain with degraded content" flag,
on scripted held-out records (issue 26)."""

from __future__ import annotations

from datetime import datetime

import pytest

from cai_bootstrap.records import ConstraintSpec, EvalItem, Instruction
from cai_bootstrap.report.content import content_rows
from cai_bootstrap.report.model import ReportData, StageReport
from cai_bootstrap.report.render import render
from cai_bootstrap.stats import compare
from cai_bootstrap.steps import content_measures as cm

N = 30
TASKS = [f"Describe the history of town number {k} in a few sentences." for k in range(N)]


def _held() -> list[Instruction]:
    return [
        Instruction(
            id=f"h{k}",
            stage=1,
            split="heldout",
            prompt=f"{t} Use no commas.",
            task=t,
            task_kind="describe",
            topic="towns",
        )  # fmt: skip
        for k, t in enumerate(TASKS)
    ]


def _items(tag: str, answers: list[str]) -> list[EvalItem]:
    return [
        EvalItem(
            id=f"{tag}:h{k}",
            model_tag=tag,
            instruction_id=f"h{k}",
            prompt=TASKS[k],
            response=a,
            constraint_ids=[],
            passed_strict=[],
            passed_loose=[],
            all_strict=True,
            all_loose=True,
        )  # fmt: skip
        for k, a in enumerate(answers)
    ]


GOOD = [
    f"Town {k} grew around a river mill and later became a market centre for nearby farms." for k in range(N)
]
# Trained: two thirds restate the request or say one word, the rest stay good.
DEGRADED = [
    f"{TASKS[k]} Use no commas." if k % 3 == 0 else "Town." if k % 3 == 1 else GOOD[k] for k in range(N)
]


def _relevance(table):
    return lambda items: [table(a) for _, a in items]


def _records(tag, answers, rel=None):
    return cm.measure(cm.ContentSettings(), _held(), _items(tag, answers), rel)


def test_each_answer_is_measured():
    recs = _records("trained", DEGRADED)
    assert [(r.echo, r.short, r.repetition) for r in recs[:3]] == [
        (True, False, False),
        (False, True, False),
        (False, False, False),
    ]
    assert recs[1].words == 1 and recs[2].words == len(GOOD[2].split()) and recs[0].relevance is None
    looping = _records("trained", ["the mill the mill the mill the mill the mill the mill"] * N)
    assert all(r.repetition for r in looping)


def test_answer_checked_questions_are_left_out():
    held = _held()
    held[0] = held[0].model_copy(
        update={"constraints": [ConstraintSpec(id="cai:yes_no", kwargs={"answer": "yes"}, text="x")]}
    )
    recs = cm.measure(cm.ContentSettings(), held, _items("base", GOOD), None)
    assert len(recs) == N - 1 and "h0" not in {r.instruction_id for r in recs}


def test_degraded_content_is_significant_and_flagged():
    rel = _relevance(lambda a: 1.0 if a in GOOD else -0.2)
    base, trained = _records("base", GOOD, rel), _records("trained", DEGRADED, rel)
    content = cm.compare_content(base, trained, alpha=0.05)
    assert content.n == N
    assert content.rates["echo"].base.successes == 0 and content.rates["echo"].trained.successes == 10
    assert content.rates["echo"].mcnemar.c == 10 and content.rates["echo"].degraded
    assert content.rates["short"].degraded and not content.rates["repetition"].degraded
    assert content.values["words"].degraded and content.values["relevance"].degraded
    assert content.values["words"].base_median == len(GOOD[0].split())
    assert content.degraded == ["echo", "short", "words", "relevance"]
    rose = compare([False] * N, [True] * N)
    assert cm.flag(rose, content) == f"{cm.FLAG}: echo, short, words, relevance"
    fell = compare([True] * N, [False] * N)
    assert cm.flag(fell, content) is None  # no gain: nothing to flag


def test_no_change_is_not_flagged():
    base, trained = _records("base", GOOD), _records("trained", GOOD)
    content = cm.compare_content(base, trained, alpha=0.05)
    assert content.degraded == [] and content.values["words"].p_value == 1.0
    assert "relevance" not in content.values  # not scored
    assert cm.flag(compare([False] * N, [True] * N), content) is None


def test_a_few_changes_are_not_significant():
    few = list(GOOD)
    few[0] = f"{TASKS[0]} Use no commas."
    content = cm.compare_content(_records("base", GOOD), _records("trained", few), alpha=0.05)
    assert content.rates["echo"].trained.successes == 1 and not content.rates["echo"].degraded


def test_wilcoxon_matches_scipy():
    from scipy.stats import wilcoxon

    b, t = [5.0, 7.0, 9.0, 11.0, 4.0, 8.0], [3.0, 6.0, 9.5, 2.0, 1.0, 8.0]
    assert cm.wilcoxon_p(b, t) == pytest.approx(wilcoxon(t, b).pvalue)


def test_report_shows_the_content_section_and_flag(tmp_path):
    rel = _relevance(lambda a: 1.0 if a in GOOD else -0.2)
    content = cm.compare_content(_records("base", GOOD, rel), _records("trained", DEGRADED, rel), 0.05)
    flag = cm.flag(compare([False] * N, [True] * N), content)
    stage = StageReport(stage=1, title="t", content=content, content_flags=[f"round 1: {flag}"])
    md, html = render(
        ReportData(run_name="r", model="m", created=datetime(2025, 1, 1), stages=[stage]), tmp_path
    )
    text = md.read_text()
    assert "### Content of the answers: baseline vs trained" in text
    assert "**round 1: gain with degraded content: echo, short, words, relevance**" in text
    assert (
        "| echo rate (restates the request) | 0.0% [0.0, 11.4] (0/30) | 33.3% [19.2, 51.2] (10/30) |" in text
    )
    assert "gain with degraded content" in html.read_text()
    rows = content_rows(content)
    assert [r.worse for r in rows] == [True, False, True, True, True]
