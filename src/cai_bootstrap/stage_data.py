"""A stage round's data steps over the run directory: held-out set, instructions, answers,
critique and revision, preference pairs. Each is skipped when done, resumed from its shards, and
refused as stale when its config or inputs changed (unless --force)."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

from .engines.holder import model_identity
from .errors import UserError
from .records import EvalItem, Instruction, Response
from .stage_calibration import pair_judge
from .stage_context import StageContext, sig, timeout
from .steps import critique, pairs, responses
from .steps import instructions as instructions_step
from .steps.critique import CritiqueRecord
from .steps.judge import make_judge_fn
from .store import Step, atomic_write_text, read_jsonl, write_jsonl
from .templates import template_hash


def earlier_answers(ctx: StageContext, split: str) -> list[tuple[Instruction, str, bool]]:
    """(instruction, answer, passed) from earlier stages, for stages 4-5: training answers from their
    rounds' responses, held-out ones from their baseline evaluations (held-out stays held-out)."""
    out = []
    for k in range(1, ctx.cfg.stage):
        folder = ctx.folder.parent / f"stage{k}"
        if split == "heldout" and (folder / "eval_base" / "records.jsonl").exists():
            ins = {i.id: i for i in read_jsonl(folder / "heldout" / "records.jsonl", Instruction)}
            for e in read_jsonl(folder / "eval_base" / "records.jsonl", EvalItem):
                out.append((ins[e.instruction_id], e.response, e.all_strict))
        for rd in sorted(folder.glob("round*")) if split == "train" else []:
            if not (rd / "responses" / "records.jsonl").exists():
                continue
            ins = {i.id: i for i in read_jsonl(rd / "instructions" / "records.jsonl", Instruction)}
            out += [
                (ins[r.instruction_id], r.text, r.all_passed)
                for r in read_jsonl(rd / "responses" / "records.jsonl", Response)
            ]
    return out


def earlier_inputs(ctx: StageContext) -> dict[str, Path]:
    """The files stages 4-5 read, so their steps go stale when those change."""
    if ctx.cfg.stage not in (4, 5):
        return {}
    paths = sorted(ctx.folder.parent.glob("stage*/round*/responses/records.jsonl"))
    paths += sorted(ctx.folder.parent.glob("stage*/eval_base/records.jsonl"))
    return {
        str(p.relative_to(ctx.folder.parent)): p
        for p in paths
        if int(p.relative_to(ctx.folder.parent).parts[0].removeprefix("stage")) < ctx.cfg.stage
    }


def make_heldout(ctx: StageContext) -> Path:
    icfg = ctx.cfg.instructions
    conf = {
        "n_heldout": icfg.n_heldout,
        "types": icfg.constraint_types,
        "min": icfg.min_constraints,
        "max": icfg.max_constraints,
        "seed": ctx.seed,
        "stage": ctx.cfg.stage,
    }
    st = ctx.step("heldout", conf, earlier_inputs(ctx))
    if st.state() != "done":
        held = instructions_step.heldout(icfg, ctx.seed, ctx.cfg.stage, earlier_answers(ctx, "heldout"))
        st.finish(held, {"heldout": len(held)})
    return st.records_path


def make_instructions(ctx: StageContext, held_path: Path) -> Step:
    conf = {
        "instructions": sig(ctx.cfg.instructions),
        "seed": ctx.seed,
        "stage": ctx.cfg.stage,
        **ctx.gen_identity(),
        "templates": template_hash("selfinstruct_propose", "selfinstruct_critic"),
    }
    st = ctx.step(ctx.r("instructions"), conf, {"heldout": held_path, **earlier_inputs(ctx)})
    if st.state() != "done":
        held = read_jsonl(held_path, Instruction)
        engine = ctx.engines.get(ctx.generator)
        with timeout(ctx, "generation"):
            out = instructions_step.run(
                ctx.cfg.instructions,
                ctx.seed,
                ctx.cfg.stage,
                ctx.round,
                engine,
                held,
                earlier_answers(ctx, "train"),
            )
        write_jsonl(st.folder / "self_instruct_tasks.jsonl", out.self_tasks)
        atomic_write_text(
            st.folder / "self_instruct_rejected.jsonl",
            "".join(r.model_dump_json() + "\n" for r in out.rejected),
        )
        st.finish(
            out.instructions,
            {"train": len(out.instructions), "self_instruct_tasks": len(out.self_tasks)},
            {"stats": out.stats},
        )
    return st


def make_responses(ctx: StageContext, ins_step: Step) -> Step:
    conf = {"responses": sig(ctx.cfg.responses), "seed": ctx.seed, **ctx.gen_identity()}
    st = ctx.step(ctx.r("responses"), conf, {"instructions": ins_step.records_path})
    if st.state() != "done":
        ins = read_jsonl(ins_step.records_path, Instruction)
        with timeout(ctx, "generation"):
            recs = responses.run(
                ctx.cfg.responses, ins, ctx.engines.get(ctx.generator), st, ctx.seed + 7919 * ctx.round
            )
        st.finish(recs, responses.pass_rates(ins, recs))
    return st


def make_critique(ctx: StageContext, ins_step: Step, resp_step: Step) -> Step:
    conf = {
        "critique": sig(ctx.cfg.critique),
        "constitution": ctx.constitution.digest(),
        **ctx.gen_identity(),
        "templates": template_hash("critique", "revision"),
    }
    st = ctx.step(
        ctx.r("critique"), conf, {"instructions": ins_step.records_path, "responses": resp_step.records_path}
    )
    if st.state() != "done":
        ins = read_jsonl(ins_step.records_path, Instruction)
        resp = read_jsonl(resp_step.records_path, Response)
        engine = ctx.engines.get(ctx.generator) if ctx.cfg.critique.enabled else None
        with timeout(ctx, "generation"):
            out = critique.run(ctx.cfg.critique, ins, resp, ctx.constitution, engine) if engine else None
        revisions = out.revisions if out else []
        write_jsonl(st.folder / "critiques.jsonl", out.critiques if out else [])
        # Revisions may legitimately be zero (nothing needed revising): records.jsonl may be empty.
        write_jsonl(st.records_path, revisions)
        usage = dict(out.principle_usage) if out else {}
        st.finish(
            None,
            {"critiques": len(out.critiques) if out else 0, "revisions": len(revisions)},
            {"principle_usage": usage},
        )
    return st


def make_pairs(ctx: StageContext, ins_step: Step, resp_step: Step, crit_step: Step) -> Step:
    conf = {
        "pairs": sig(ctx.cfg.pairs),
        "judge": sig(ctx.cfg.judge),
        "constitution": ctx.constitution.digest(),
        "judge_model": model_identity(ctx.judge),
        "templates": template_hash("judge"),
        "judge_calibration": pair_judge(ctx),  # the judge's calibration verdict (stage_calibration.py)
    }
    inputs = {
        "instructions": ins_step.records_path,
        "responses": resp_step.records_path,
        "revisions": crit_step.records_path,
    }
    st = ctx.step(ctx.r("pairs"), conf, inputs)
    if st.state() != "done":
        ins = read_jsonl(ins_step.records_path, Instruction)
        cands = read_jsonl(resp_step.records_path, Response) + read_jsonl(crit_step.records_path, Response)
        refused = (conf["judge_calibration"] or {}).get("refused")
        engine = ctx.engines.get(ctx.judge) if ctx.cfg.judge.enabled and not refused else None
        judge_fn = None if refused else make_judge_fn(ctx.cfg.judge, engine, ctx.constitution)
        critiques = read_jsonl(crit_step.folder / "critiques.jsonl", CritiqueRecord)
        with timeout(ctx, "generation"):
            out = pairs.run(ctx.cfg.pairs, ins, cands, judge_fn, critiques, judge_refused=refused)
        chosen = out.pairs if ctx.cfg.pairs.sft_from_chosen else ()
        sft = pairs.sft_examples(ins, cands, chosen, ctx.cfg.pairs.drop_truncated)
        if not out.pairs and not sft:
            reasons = Counter(d.reason.value for d in out.dropped).most_common()
            raise UserError(
                f"no preference pairs and no passing answers to train on (candidate pairs dropped: "
                f"{', '.join(f'{r} {n}' for r, n in reasons) or 'none formed'})",
                "raise responses.k or n_train, or loosen the pair filters",
            )
        write_jsonl(st.folder / "dropped.jsonl", out.dropped)
        write_jsonl(st.folder / "sft.jsonl", sft)
        shutil.copy(crit_step.folder / "critiques.jsonl", st.folder / "critiques.jsonl")
        write_jsonl(st.records_path, out.pairs)
        st.finish(
            None,
            {"pairs": len(out.pairs), "dropped": len(out.dropped), "sft_examples": len(sft)},
            {"stats": out.stats.model_dump(mode="json")},
        )
    return st
