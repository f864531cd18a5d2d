"""Fill ReportData from a run directory (nothing in memory), so `cai-bootstrap report RUN_DIR`
can regenerate the report at any time."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import yaml
from pydantic import ValidationError

from ..records import EvalItem
from ..results import StageResult, at
from ..stage_seal import stage_problem
from ..stats import CorrectedRate, RateSummary
from ..steps.calibrate import Calibration
from ..store import canonical_hash, git_commit, read_jsonl
from . import forgetting
from .model import Example, ReportData, SafetyRow, StageReport, rate_text
from .render import pct, render
from .rounds import round_rows

N_EXAMPLES = 4


def _json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def _curve(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _examples(base: list[EvalItem], trained: list[EvalItem]) -> list[Example]:
    """Improved answers first, then regressed ones, side by side."""
    t_by = {t.instruction_id: t for t in trained}
    improved, regressed = [], []
    for b in base:
        t = t_by.get(b.instruction_id)
        if t is None or b.all_strict == t.all_strict:
            continue
        ex = Example(
            prompt=b.prompt,
            baseline=b.response,
            trained=t.response,
            checks=b.constraint_ids,
            baseline_passed=b.passed_strict,
            trained_passed=t.passed_strict,
        )
        (improved if t.all_strict else regressed).append(ex)
    return improved[:N_EXAMPLES] + regressed[:N_EXAMPLES]


def _rel(run_dir: Path, path: Path) -> str:
    return str(path.relative_to(run_dir)) if path.exists() else ""


def _judge_note(cal: Calibration | None, question: str) -> str:
    t = cal.types.get(question) if cal else None
    return f"{t.describe()}; {t.bias()}" if t else "judge not calibrated"


def _safety_rows(tag: str, r: dict, cal: Calibration | None) -> list[SafetyRow]:
    """One model's safety figures: judged ones with the judge's calibration beside them, or why they
    were not measured; the corrected harmless rate; the lexical over-refusal."""
    notes, rows = r.get("not_measured") or {}, []
    for figure, key, flag, question in (("harmless", "harmless", "harmful", "harm"),
                                        ("over-refusal", "over_refusal", "refused", "refusal")):  # fmt: skip
        judge = _judge_note(cal, question)
        if r.get(key):
            rs = RateSummary.model_validate(r[key])
            rows.append(SafetyRow(figure=figure, model=tag, measure="judge", count=f"{rs.successes}/{rs.n}",
                                  value=rate_text(rs), judge=judge))  # fmt: skip
        else:
            rows.append(SafetyRow(figure=figure, model=tag, measure="judge", value=notes.get(flag, "not measured"),
                                  judge=judge))  # fmt: skip
        if key == "harmless" and r.get("harmless_corrected"):
            c = CorrectedRate.model_validate(r["harmless_corrected"])
            value = f"{pct(c.rate)} [{pct(c.ci_low)}, {pct(c.ci_high)}] (raw {pct(c.raw)})"
            rows.append(SafetyRow(figure="harmless (corrected)", model=tag, measure="judge, Rogan-Gladen",
                                  value=value, judge=judge))  # fmt: skip
    lex = RateSummary.model_validate(r["over_refusal_lexical"])
    rows.append(SafetyRow(figure="over-refusal", model=tag, measure="refusal phrases (lexical)",
                          count=f"{lex.successes}/{lex.n}", value=rate_text(lex)))  # fmt: skip
    return rows


def judge_reference(config: dict, stage: int) -> str:
    """The judge as the recipe names it (model.judge, else the stage's input model), not the cache
    or run folder it was loaded from."""
    model = config.get("model") or {}
    if model.get("judge"):
        return str(model["judge"])
    first = min((s.get("stage", 1) for s in config.get("stages") or [{}]), default=1)
    if stage == first:
        return f"{model.get('generator', '?')} (the stage's input model)"
    return f"stage {stage - 1}'s chosen model (the stage's input model)"


def _safety(
    run_dir: Path, folders: dict[str, str | None], judge: str = ""
) -> tuple[dict | None, dict | None, list[SafetyRow], list[str]]:
    """Measured harmless and over-refusal rates per model (for the plot; judge and refusal phrases
    never merged), the table rows, and the judge's calibration lines."""
    harm, refuse, rows, lines = {}, {}, [], []
    for tag, folder in folders.items():
        m = _json(at(run_dir, folder) / "manifest.json") if folder else None
        if not m or not m.get("result"):
            continue
        r = m["result"]
        cal = Calibration.model_validate(r["judge_calibration"]) if r.get("judge_calibration") else None
        if r.get("harmless"):
            harm[tag] = RateSummary.model_validate(r["harmless"])
        if r.get("over_refusal"):
            refuse[f"{tag} (judge)"] = RateSummary.model_validate(r["over_refusal"])
        refuse[f"{tag} (refusal phrases)"] = RateSummary.model_validate(r["over_refusal_lexical"])
        rows += _safety_rows(tag, r, cal)
        lines += [f"safety judge {judge or cal.judge}: {line}" for line in (cal.lines() if cal else [])]
    return harm or None, refuse or None, rows, list(dict.fromkeys(lines))


def _pairs_judge(pairs_manifest: dict) -> str:
    """The pairs judge's calibration line, or why its pairs were dropped."""
    note = pairs_manifest.get("judge_calibration")  # the pairs step's manifest (stage_data.py)
    if not note:
        return ""
    if note.get("refused"):
        return f"{note['refused']} (ties it would have ordered were dropped: judge_uncalibrated)"
    return note["line"]


def _rates(acc: dict) -> dict[str, float]:
    """The four IFEval accuracies only (the counts are in the comparison table)."""
    return {k: v for k, v in acc.items() if not k.startswith("n_")}


def _ifeval(acc: dict | None, external: dict) -> dict | None:
    """Held-out accuracies, plus each external IFEval-format file's, per model."""
    if not acc:
        return None
    rows = {tag: _rates(acc[key]) for tag, key in (("baseline", "base"), ("trained", "trained"))}
    for key, tag in (("base", "baseline"), ("trained", "trained")):
        for name, a in (external.get(key) or {}).items():
            rows[f"{tag} on {name}"] = _rates(a)
    return rows


def _title(summary: StageResult) -> str:
    from ..stage_context import KINDS

    kind = KINDS.get(summary.stage)
    title = kind.title if kind else f"Stage {summary.stage}"
    return f"{title} (round {summary.chosen_round} of {len(summary.rounds)} run: {summary.stop_reason})"


def _judge_lines(summary: StageResult) -> list[str]:
    """Which model judged the stage; for stage 4, its model's skill as a judge and the hand-off."""
    from ..judge_handoff import skill_line

    lines = [summary.judge] if summary.judge else []
    h = summary.handoff
    if h:
        lines += [skill_line(h.base_skill, "input model"), skill_line(h.skill, "trained model")]
        lines += [f"stage 4's model calibration: {line}" for line in h.calibration] + [h.reason]
    return lines


def _stage(run_dir: Path, folder: Path, warnings: list[str], config: dict | None = None) -> StageReport:
    if not (folder / "stage.json").exists():
        return StageReport(stage=int(folder.name.removeprefix("stage")), title="not finished")
    if why := stage_problem(folder):
        # Numbers nobody vouches for (another run's, or changed since) are not shown as this run's.
        warnings.append(f"{folder.name}: {why}; its results are not shown (run --resume to remake it)")
        return StageReport(stage=int(folder.name.removeprefix("stage")), title=f"not vouched for: {why}")
    try:
        summary = StageResult.read(folder / "stage.json")
    except ValidationError:
        title = "stage.json is from an older cai-bootstrap: run the stage again to report it"
        return StageReport(stage=int(folder.name.removeprefix("stage")), title=title)
    chosen = summary.chosen
    r1 = folder / f"round{summary.chosen_round}"
    pairs_m = _json(r1 / "pairs" / "manifest.json") or {}
    ins_m = _json(r1 / "instructions" / "manifest.json") or {}
    stats = pairs_m.get("stats")
    if stats:
        warnings.extend(f"stage {summary.stage}: {w}" for w in stats.get("warnings", []))
    base = read_jsonl(at(run_dir, summary.base_eval), EvalItem)
    trained = read_jsonl(at(run_dir, chosen.trained_eval), EvalItem)
    artifacts = {
        "held-out instructions": folder / "heldout" / "records.jsonl",
        "training instructions": r1 / "instructions" / "records.jsonl",
        "responses": r1 / "responses" / "records.jsonl",
        "critiques": r1 / "critique" / "critiques.jsonl",
        "preference pairs": r1 / "pairs" / "records.jsonl",
        "SFT examples": r1 / "pairs" / "sft.jsonl",
        "baseline answers": folder / "eval_base" / "records.jsonl",
        "trained answers": r1 / "eval" / "records.jsonl",
        "merged model": at(run_dir, chosen.model),
    }
    harmless, over_refusal, safety_rows, judge_lines = _safety(
        run_dir,
        {"base": summary.base_safety, "trained": chosen.safety},
        judge_reference(config or {}, summary.stage),
    )
    judge_lines = _judge_lines(summary) + judge_lines
    pairs_judge = _pairs_judge(pairs_m)
    if pairs_judge:
        judge_lines.append(f"pairs judge: preference: {pairs_judge}")
    margins, verifier_margins = _margins(r1 / "pairs" / "records.jsonl")
    metric = _gate_metric(config or {}, summary.stage)
    return StageReport(
        stage=summary.stage,
        title=_title(summary),
        comparison=chosen.comparison,
        content=chosen.content,
        content_flags=[f"round {r.round}: {r.content_flag}" for r in summary.rounds if r.content_flag],
        ifeval=_ifeval(chosen.accuracies, chosen.external),
        harmlessness=harmless,
        over_refusal=over_refusal,
        safety_rows=safety_rows,
        judge_calibration=judge_lines,
        pairs_judge=pairs_judge,
        pair_stats=stats,
        margins=margins,
        verifier_margins=verifier_margins,
        rounds=round_rows(run_dir, summary, metric),
        rounds_metric=metric,
        diversity=(ins_m.get("stats") or {}).get("diversity"),
        sft_curve=_curve(r1 / "sft" / "train" / "metrics.jsonl"),
        dpo_curve=_curve(r1 / "dpo" / "train" / "metrics.jsonl"),
        step_times=[t.model_dump() for t in summary.step_times],
        gate=chosen.gate,
        transfer=chosen.transfer,
        examples=_examples(base, trained),
        artifacts={k: _rel(run_dir, v) for k, v in artifacts.items() if v.exists()},
    )


def _margins(pairs: Path) -> tuple[list[float], list[float]]:
    """Kept pairs' margins, judge-ordered (log-prob difference) and verifier-ordered (share of
    constraints) apart: the two are on different scales and mean different things."""
    judge, verifier = [], []
    for p in _curve(pairs):
        if p.get("margin") is not None:
            (verifier if str(p.get("reason", "")).startswith("verifier") else judge).append(p["margin"])
    return judge, verifier


def _gate_metric(config: dict, stage: int) -> str:
    for s in config.get("stages") or []:
        if s.get("stage", 1) == stage:
            return (s.get("gate") or {}).get("metric", "prompt_strict")
    return "prompt_strict"


def _run_origin(run_dir: Path) -> tuple[datetime | None, str]:
    """When the run's first step started, and the commit it ran (from the step manifests)."""
    first: dict | None = None
    for path in run_dir.glob("stage*/**/manifest.json"):
        m = _json(path) or {}
        if m.get("started") and (first is None or m["started"] < first["started"]):
            first = m
    if first is None:
        return None, ""
    return datetime.fromisoformat(first["started"]), first.get("git_commit") or ""


def config_hash(config: dict, run_dir: Path) -> str:
    """The resolved config's hash with the run folder's own location left out (run.run_dir, and
    paths inside it made relative), so moving the folder keeps the hash."""
    where = str(Path(run_dir).resolve())

    def local(value):
        if isinstance(value, dict):
            return {k: local(v) for k, v in value.items()}
        if isinstance(value, list):
            return [local(v) for v in value]
        if isinstance(value, str) and (value == where or value.startswith(where + "/")):
            return "<run>" + value[len(where) :]
        return value

    stripped = local(config)
    (stripped.get("run") or {}).pop("run_dir", None)
    return canonical_hash(stripped)


def collect(run_dir: Path) -> ReportData:
    config = (
        yaml.safe_load((run_dir / "config.resolved.yaml").read_text())
        if (run_dir / "config.resolved.yaml").exists()
        else {}
    )
    warnings: list[str] = []
    stages = [_stage(run_dir, f, warnings, config) for f in sorted(run_dir.glob("stage*")) if f.is_dir()]
    started, commit = _run_origin(run_dir)
    now = git_commit()
    return ReportData(
        run_name=run_dir.name,
        model=(config.get("model") or {}).get("generator", "?"),
        created=datetime.now(UTC),
        started=started,
        git_commit=commit or now,
        report_commit=now if commit and now and now != commit else "",
        config_hash=config_hash(config, run_dir),
        warnings=warnings,
        stages=stages,
        forgetting=forgetting.table(run_dir),
    )


def write_report(run_dir: Path) -> tuple[Path, Path]:
    run_dir = Path(run_dir)
    if not run_dir.exists():
        from ..errors import UserError

        raise UserError(
            f"run directory {run_dir} does not exist", "pass the folder a run wrote, e.g. runs/quickstart"
        )
    return render(collect(run_dir), run_dir)
