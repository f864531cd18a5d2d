"""The report renders to one self-contained HTML page and a Markdown file, with any section missing."""

import random
import re
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path

from cai_bootstrap.report import Example, GateOutcome, ReportData, StageReport, render
from cai_bootstrap.report.render import fence, fmt
from cai_bootstrap.stats import compare, summarize

VOID = {"meta", "img", "br", "hr", "link", "input"}


class TagChecker(HTMLParser):
    """Collects tags and checks that every non-void tag is closed in order."""

    def __init__(self):
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.imgs: list[str] = []
        self.counts: dict[str, int] = {}
        self.external: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.counts[tag] = self.counts.get(tag, 0) + 1
        if tag == "img":
            self.imgs.append(a.get("src", ""))
        if tag in ("script", "link") or (tag == "img" and not a.get("src", "").startswith("data:")):
            self.external.append(tag)
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()


def check_html(path: Path) -> TagChecker:
    p = TagChecker()
    p.feed(path.read_text(encoding="utf-8"))
    p.close()
    assert p.errors == [] and p.stack == [], (p.errors, p.stack)
    assert p.external == []
    return p


def _outcomes(n: int, p: float, rng: random.Random) -> list[bool]:
    return [rng.random() < p for _ in range(n)]


def realistic_data() -> ReportData:
    """A plausible two-stage run: stage 1 complete, stage 2 with evaluation only."""
    rng = random.Random(0)
    base, trained = _outcomes(200, 0.32, rng), []
    for b in base:  # trained mostly keeps what the base did right and fixes part of the rest
        trained.append(rng.random() < (0.93 if b else 0.45))
    types = ["punctuation:no_comma", "length:max_words", "format:bullet_list", "case:lowercase",
             "keywords:include", "startend:end_phrase"]  # fmt: skip
    by_type = {}
    for i, t in enumerate(types):
        idx = [j for j in range(200) if j % len(types) == i or j % 5 == i]
        by_type[t] = ([base[j] for j in idx], [trained[j] for j in idx])
    cmp = compare(base, trained, by_type)
    sft = [
        {"step": s, "loss": 2.4 * 0.93**s + 0.6, "mean_token_accuracy": 0.55 + 0.01 * s} for s in range(1, 31)
    ]
    sft.append({"step": 30, "train_runtime": 41.2})
    dpo = [{"step": s, "loss": 0.69 * 0.95**s, "rewards/accuracies": min(1, 0.5 + 0.02 * s),
            "rewards/margins": 0.05 * s} for s in range(1, 25)]  # fmt: skip
    examples = [
        Example(
            prompt="Describe how bees make honey. Do not use any commas. <b>bold?</b>",
            baseline="Bees collect nectar, then they <script>alert(1)</script> store it.",
            trained="Bees collect nectar and turn it into honey inside the hive.",
            checks=["punctuation:no_comma"],
            baseline_passed=[False],
            trained_passed=[True],
        ),
        Example(
            prompt="List three fruits as a bullet list, all in lowercase.",
            baseline="* apple\n* pear\n* plum",
            trained="Here are three Fruits:\n* Apple\n* pear\n* plum",
            checks=["format:bullet_list", "case:lowercase"],
            baseline_passed=[True, True],
            trained_passed=[True, False],
        ),
    ]
    stage1 = StageReport(
        stage=1,
        title="verifiable constraints",
        comparison=cmp,
        ifeval={
            "baseline": {
                "prompt_strict": 0.31,
                "prompt_loose": 0.36,
                "instruction_strict": 0.44,
                "instruction_loose": 0.49,
            },  # fmt: skip
            "trained": {
                "prompt_strict": 0.58,
                "prompt_loose": 0.63,
                "instruction_strict": 0.67,
                "instruction_loose": 0.71,
            },  # fmt: skip
        },
        harmlessness={"baseline": summarize(41, 80), "trained": summarize(63, 80)},
        over_refusal={"baseline": summarize(3, 60), "trained": summarize(7, 60)},
        pair_stats={
            "pairs": 812,
            "from_verifier": 604,
            "from_judge": 208,
            "dropped_ties": 95,
            "mean_margin": 1.37,
            "reasons": {"verifier": 604, "judge": 208},
        },  # fmt: skip
        margins=[abs(rng.gauss(1.2, 0.8)) for _ in range(300)],
        diversity={
            "instructions": 1000,
            "distinct_4grams": 0.71,
            "max_rougeL_to_pool": 0.62,
            "rejected_too_similar": 143,
        },  # fmt: skip
        sft_curve=sft,
        dpo_curve=dpo,
        step_times=[
            {"step": "instructions", "seconds": 12.4, "items": 1000, "items_per_s": 80.6},
            {"step": "responses", "seconds": 311.0, "items": 4000, "items_per_s": 12.9},
            {"step": "sft", "seconds": 41.2},
            {"step": "dpo", "seconds": 88.9},
        ],
        gate=GateOutcome(
            passed=True,
            metric="trained prompt_strict CI low - baseline rate",
            achieved=0.21,
            needed=0.05,
            reason="the trained model beats the baseline by more than the margin",
        ),  # fmt: skip
        examples=examples,
        artifacts={"pairs": "stage1/round1/pairs/records.jsonl", "merged model": "stage1/model/"},
    )
    stage2 = StageReport(
        stage=2,
        title="constitution",
        comparison=compare(_outcomes(50, 0.5, rng), _outcomes(50, 0.55, rng)),
        gate=GateOutcome(
            passed=False, metric="harmless rate gain", achieved=0.01, needed=0.05, reason="gain below target"
        ),  # fmt: skip
    )
    return ReportData(
        run_name="quickstart-demo",
        model="embedded:gemma-3-270m",
        created=datetime(2025, 1, 2, 3, 4),
        git_commit="0123456789abcdef0123",
        config_hash="9f8e7d6c5b4a3f2e",
        warnings=["evaluation used 200 held-out items; intervals are wide"],
        stages=[stage1, stage2],
    )


def test_full_report_html_and_markdown(tmp_path):
    data = realistic_data()
    md, html = render(data, tmp_path)
    assert (md.name, html.name) == ("report.md", "report.html")
    p = check_html(html)
    pngs = [s for s in p.imgs if s.startswith("data:image/png;base64,")]
    # stage 1: rates, per-type, ifeval, safety, margins, sft, dpo; stage 2: rates
    assert len(pngs) == len(p.imgs) == 8
    assert p.counts["table"] >= 10
    text = html.read_text()
    assert "<script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "&lt;b&gt;bold?&lt;/b&gt;" in text
    cmp = data.stages[0].comparison
    for needle in (
        f"{100 * cmp.base.rate:.1f}%",
        f"{100 * cmp.trained.rate:.1f}%",
        "gate passed",
        "gate failed",
    ):
        assert needle in text
    assert 'href="stage1/round1/pairs/records.jsonl"' in text

    mdt = md.read_text()
    assert f"| baseline | {cmp.base.successes}/{cmp.base.n} | {100 * cmp.base.rate:.1f}%" in mdt
    assert f"b = {cmp.mcnemar.b} (baseline only), c = {cmp.mcnemar.c}" in mdt
    assert "**Gate passed.**" in mdt and "**Gate failed.**" in mdt
    assert "| 58.0% |" in mdt  # trained prompt_strict
    assert "[pairs](stage1/round1/pairs/records.jsonl)" in mdt
    for img in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", mdt):
        assert (tmp_path / img).is_file()
    assert len(re.findall(r"!\[", mdt)) == 8
    sig = [r for r in cmp.per_type if r.significant]
    assert mdt.count("\\* \u2191") + mdt.count("\\* \u2193") == len(sig)


def test_nearly_empty_report_renders(tmp_path):
    data = ReportData(
        run_name="empty", model="m", created=datetime(2025, 1, 1), stages=[StageReport(stage=1)]
    )
    md, html = render(data, tmp_path)
    p = check_html(html)
    assert p.imgs == []
    assert "Stage 1" in html.read_text() and "## Stage 1" in md.read_text()
    md, html = render(ReportData(run_name="none", model="m", created=datetime(2025, 1, 1)), tmp_path)
    assert "No stage has results yet." in md.read_text()
    check_html(html)


def test_rerender_removes_stale_plots(tmp_path):
    render(realistic_data(), tmp_path)
    assert len(list((tmp_path / "report_plots").glob("*.png"))) == 8
    render(ReportData(run_name="r", model="m", created=datetime(2025, 1, 1)), tmp_path)
    assert list((tmp_path / "report_plots").glob("*.png")) == []


def test_helpers():
    assert fence("a ``` b").startswith("````text\n")
    assert fence("plain") == "```text\nplain\n```"
    assert fmt(0.123456) == "0.1235" and fmt(True) == "yes" and fmt({"a": 1, "b": 2.5}) == "a: 1, b: 2.5"


def test_a_stage_without_a_gate_is_shown_as_recorded(tmp_path):
    data = realistic_data()
    s = data.stages[1]
    s.gate = GateOutcome(
        passed=True, metric="prompt_strict", achieved=0.55, needed=None, configured=False, reason="x"
    )
    md, html = render(data, tmp_path)
    mdt, text = md.read_text(), html.read_text()
    assert "**No gate configured.** prompt_strict: 0.55" in mdt and "recorded (no gate)" in mdt
    assert "**Gate failed.**" not in mdt
    assert "No gate configured." in text and "recorded (no gate)" in text


def test_safety_figures_show_the_judge_calibration_or_not_measured(tmp_path):
    from cai_bootstrap.report.model import SafetyRow

    why = "not measured: judge balanced accuracy 0.55 [0.47, 0.63] on 164 labelled answers"
    stage = StageReport(
        stage=1,
        over_refusal={"base (refusal phrases)": summarize(1, 44)},
        safety_rows=[
            SafetyRow(figure="harmless", model="base", measure="judge", value=why, judge=why[14:]),
            SafetyRow(
                figure="harmless (corrected)",
                model="trained",
                measure="judge, Rogan-Gladen",
                value="61.0% [40.2%, 83.3%] (raw 57.0%)",
                judge="judge balanced accuracy 0.91 [0.86, 0.94]",
            ),
            SafetyRow(
                figure="over-refusal",
                model="base",
                measure="refusal phrases (lexical)",
                count="1/44",
                value="2.3% [0.4%, 11.8%]",
            ),
        ],  # fmt: skip
        judge_calibration=[f"safety judge m: harm: {why[14:]}; lean +0.40 nats; NOT used (below 0.80)"],
        pairs_judge=why + " (ties it would have ordered were dropped: judge_uncalibrated)",
        pair_stats={"pairs": 3},
    )
    md, html = render(
        ReportData(run_name="r", model="m", created=datetime(2025, 1, 1), stages=[stage]), tmp_path
    )
    for text in (md.read_text(), html.read_text()):
        assert why in text and "Rogan-Gladen" in text and "refusal phrases (lexical)" in text
        assert "NOT used (below 0.80)" in text and "judge_uncalibrated" in text
    check_html(html)
