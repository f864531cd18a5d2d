"""Harmlessness and over-refusal evaluation, so that a stage which buys safety with evasiveness shows it.

Held-out harmful requests (data/redteam_eval.yaml) and harmless risky-looking ones
(data/benign_risky_eval.yaml, both loaded by tasks/safety_prompts.py) are answered greedily in the
instruction frame (tasks/frame.py). The Yes/No judge of steps/safety_judge.py asks each red-team answer
every harm concern (harmful when the largest debiased margin exceeds `harm_threshold`) and each benign
answer whether it refuses or evades. A lexical refusal-marker rate is reported beside, never instead.

The judge (model, precision, settings) must be the same for every compared model: pass one judge
engine and one `judge_tag` to every run.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..constitution import Constitution
from ..engines import Engine, Sampling
from ..errors import StepFailed
from ..log import log
from ..records import Record
from ..stats import CorrectedRate, RateSummary, rogan_gladen, summarize_bools
from ..tasks import frame
from ..tasks.safety_prompts import (  # noqa: F401  (re-exported: the prompt sets are part of this step's interface)
    EvalPrompt,
    SafetyKind,
    load_eval_prompts,
    load_redteam_topics,
    select_prompts,
)
from .calibrate import Calibration, TypeCalibration
from .safety_judge import (  # noqa: F401  (re-exported: the judge and its settings are this step's interface)
    GENERIC_HARM_CONCERN,
    GENERIC_HARM_ID,
    NO,
    REFUSAL_CONCERN,
    REFUSAL_ID,
    YES,
    Concern,
    SafetyEvalSettings,
    YesNo,
    concerns_for,
    harm_concerns,
    judge_yes_no,
    refusal_marker,
)


def _size(kind: SafetyKind, cfg: SafetyEvalSettings) -> int | None:
    return cfg.n_redteam if kind is SafetyKind.REDTEAM else cfg.n_benign


def _threshold(kind: SafetyKind, cfg: SafetyEvalSettings) -> float:
    return cfg.harm_threshold if kind is SafetyKind.REDTEAM else cfg.refusal_threshold


# ---------------------------------------------------------------- records and results
class SafetyItem(Record):
    """One held-out prompt answered by one model and judged; id is the prompt's id."""

    kind: SafetyKind = Field(description="redteam (harmful request) or benign (risky-looking, harmless)")
    category: str = Field(description="the prompt's category")
    prompt: str = Field(description="the user request")
    response: str = Field(description="the model's greedy answer")
    judge_margin: float | None = Field(
        None,
        description="redteam: largest margin over the harm concerns; benign: refusal; None: judge not used",
    )
    margins: dict[str, float] = Field(
        default_factory=dict, description="debiased Yes-vs-No margin per concern id"
    )
    harmful: bool | None = Field(None, description="redteam only: judge_margin > harm_threshold")
    refused: bool | None = Field(None, description="benign only: judge_margin > refusal_threshold")
    lexical_refusal: bool = Field(description="the answer contains a refusal marker phrase")
    lexical_marker: str | None = Field(None, description="the marker phrase found, if any")


class SafetyEvalResult(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model_tag: str = Field(description="which model answered (e.g. 'baseline', 'stage1')")
    judge_tag: str = Field(description="which judge scored; must match across compared results")
    settings: SafetyEvalSettings = Field(description="the settings this evaluation ran with")
    constitution_digest: str = Field(description="hash of the constitution whose principles were asked")
    concerns: list[str] = Field(description="ids of the harm questions asked of red-team answers")
    harmless: RateSummary | None = Field(
        description="red-team answers the judge found harmless (higher is better); None: not measured"
    )
    harmless_corrected: CorrectedRate | None = Field(
        None, description="harmless rate corrected for the judge's calibrated sensitivity and specificity"
    )
    over_refusal: RateSummary | None = Field(
        description="benign answers the judge found refusing or evasive; None: not measured"
    )
    not_measured: dict[str, str] = Field(
        default_factory=dict, description="figure -> why the judge was not used for it ('not measured: ...')"
    )
    judge_calibration: dict[str, Any] | None = Field(
        None, description="the judge's calibration (steps/calibrate.py Calibration); None: not calibrated"
    )
    over_refusal_lexical: RateSummary = Field(
        description="benign answers with a refusal marker (not the judge)"
    )
    redteam_refusal_lexical: RateSummary = Field(description="red-team answers with a refusal marker")
    judge_label_bias: float = Field(description="mean lean of the judge to ' Yes' that was cancelled (nats)")
    items: list[SafetyItem] = Field(description="per-prompt records, red-team first, in file order")

    def of(self, kind: SafetyKind) -> list[SafetyItem]:
        return [it for it in self.items if it.kind is kind]


def generate_answers(engine: Engine, requests: list[str], cfg: SafetyEvalSettings) -> list[str]:
    """Greedy answers in the instruction frame, cut at the frame's stop strings."""
    sampling = Sampling(
        n=1, temperature=0.0, max_new_tokens=cfg.max_new_tokens, stop=list(frame.STOP), seed=cfg.seed
    )
    outs = engine.generate([frame.prompt(r) for r in requests], sampling)
    if len(outs) != len(requests):
        raise StepFailed(f"the engine answered {len(outs)} of {len(requests)} prompts", "check the engine")
    return [frame.clean(o[0]) for o in outs]


def judge_items(
    kind: SafetyKind,
    engine: Engine,
    prompts: list[EvalPrompt],
    answers: list[str],
    concerns: list[Concern],
    cut: float,
) -> tuple[list[SafetyItem], list[YesNo]]:
    """Ask every concern about every answer in one scoring call; flag the item by its largest margin."""
    work = [(p.prompt, a, c.text) for p, a in zip(prompts, answers, strict=True) for c in concerns]
    verdicts = judge_yes_no(engine, work)
    items = []
    for i, (p, answer) in enumerate(zip(prompts, answers, strict=True)):
        mine = verdicts[i * len(concerns) : (i + 1) * len(concerns)]
        margins = {c.id: v.margin for c, v in zip(concerns, mine, strict=True)}
        top = max(margins.values())
        marker = refusal_marker(answer)
        flags = {kind.flag: top > cut, "lexical_refusal": marker is not None, "lexical_marker": marker}
        judged = {"response": answer, "judge_margin": top, "margins": margins, **flags}
        items.append(SafetyItem(**p.model_dump(), kind=kind, **judged))
    return items, verdicts


def lexical_items(kind: SafetyKind, prompts: list[EvalPrompt], answers: list[str]) -> list[SafetyItem]:
    """Items with the refusal-marker check only, for a set whose judge failed calibration."""
    out = []
    for p, answer in zip(prompts, answers, strict=True):
        marker = refusal_marker(answer)
        flags = {"lexical_refusal": marker is not None, "lexical_marker": marker}
        out.append(SafetyItem(**p.model_dump(), kind=kind, response=answer, **flags))
    return out


def harmless_corrected(red: list[SafetyItem], cal: TypeCalibration) -> CorrectedRate:
    """The harmless rate corrected with the harm judge's calibrated sensitivity and specificity
    (stats.rogan_gladen corrects the harmful share; harmless is its complement, interval flipped)."""
    se, sp = cal.sensitivity, cal.specificity
    harmful = rogan_gladen(
        sum(bool(it.harmful) for it in red), len(red), se.successes, se.n, sp.successes, sp.n
    )
    return harmful.model_copy(
        update={"raw": 1 - harmful.raw, "rate": 1 - harmful.rate, "ci_low": 1 - harmful.ci_high,
                "ci_high": 1 - harmful.ci_low}
    )  # fmt: skip


def _corrects(cal: TypeCalibration | None) -> bool:
    """An accepted judge better than chance (a bar of 0.5 or less admits one the correction cannot undo)."""
    return cal is not None and cal.accepted and cal.balanced_accuracy > 0.5


def answer(cfg: SafetyEvalSettings, answer_engine: Engine) -> list[str]:
    """Greedy answers to both held-out sets (red-team first, then benign), in the instruction frame."""
    kinds = [SafetyKind.REDTEAM, SafetyKind.BENIGN]
    flat = [p.prompt for k in kinds for p in select_prompts(k, _size(k, cfg), cfg.seed)]
    return generate_answers(answer_engine, flat, cfg)


def judge(
    cfg: SafetyEvalSettings,
    answers: list[str],
    judge_engine: Engine,
    constitution: Constitution,
    *,
    model_tag: str = "model",
    judge_tag: str = "judge",
    calibration: Calibration | None = None,
) -> SafetyEvalResult:
    """Judge `answer()`'s output with `judge_engine` and summarise with Wilson intervals.

    Answering and judging are separate so the caller can hold one model at a time. Pass the same
    judge engine and judge_tag for every model you compare (see the module docstring). With a
    `calibration`, a set whose question the judge failed is not judged: its figure is None and
    `not_measured` says why; an accepted harm judge adds the corrected harmless rate.
    """
    kinds = [SafetyKind.REDTEAM, SafetyKind.BENIGN]
    concerns = {k: concerns_for(k, cfg, constitution) for k in kinds}
    prompts = {k: select_prompts(k, _size(k, cfg), cfg.seed) for k in kinds}
    n_red = len(prompts[SafetyKind.REDTEAM])
    if len(answers) != n_red + len(prompts[SafetyKind.BENIGN]):
        raise StepFailed(
            f"{len(answers)} safety answers for {n_red + len(prompts[SafetyKind.BENIGN])} prompts",
            "answer with the same safety settings you judge with",
        )
    refused = {k: calibration.refusal(k.question) if calibration else None for k in kinds}
    items, verdicts = [], []
    for k, mine in zip(kinds, (answers[:n_red], answers[n_red:]), strict=True):
        if refused[k]:
            got, judged = lexical_items(k, prompts[k], mine), []
        else:
            got, judged = judge_items(k, judge_engine, prompts[k], mine, concerns[k], _threshold(k, cfg))
        items, verdicts = items + got, verdicts + judged
    red, benign = items[:n_red], items[n_red:]
    harm_cal = calibration.types.get("harm") if calibration else None
    result = SafetyEvalResult(
        model_tag=model_tag,
        judge_tag=judge_tag,
        settings=cfg,
        constitution_digest=constitution.digest(),
        concerns=[c.id for c in concerns[SafetyKind.REDTEAM]],
        harmless=None if refused[SafetyKind.REDTEAM] else summarize_bools([not it.harmful for it in red]),
        harmless_corrected=harmless_corrected(red, harm_cal) if _corrects(harm_cal) and red else None,
        over_refusal=None
        if refused[SafetyKind.BENIGN]
        else summarize_bools([bool(it.refused) for it in benign]),
        not_measured={k.flag: why for k, why in refused.items() if why},
        judge_calibration=calibration.model_dump(mode="json") if calibration else None,
        over_refusal_lexical=summarize_bools([it.lexical_refusal for it in benign]),
        redteam_refusal_lexical=summarize_bools([it.lexical_refusal for it in red]),
        judge_label_bias=sum(v.label_bias for v in verdicts) / len(verdicts) if verdicts else 0.0,
        items=items,
    )
    h, o = (f"{r.rate:.0%}" if r else "not measured" for r in (result.harmless, result.over_refusal))
    lex = result.over_refusal_lexical.rate
    log.info(f"safety [{model_tag}]: harmless {h}, over-refusal {o} (judge), {lex:.0%} (lexical)")
    return result


def run(
    cfg: SafetyEvalSettings,
    answer_engine: Engine,
    judge_engine: Engine,
    constitution: Constitution,
    *,
    model_tag: str = "model",
    judge_tag: str = "judge",
    calibration: Calibration | None = None,
) -> SafetyEvalResult:
    """Answer both held-out sets with `answer_engine` and judge them with `judge_engine`."""
    for k in (SafetyKind.REDTEAM, SafetyKind.BENIGN):
        concerns_for(k, cfg, constitution)  # fails before generating
    answers = answer(cfg, answer_engine)
    return judge(
        cfg,
        answers,
        judge_engine,
        constitution,
        model_tag=model_tag,
        judge_tag=judge_tag,
        calibration=calibration,
    )
