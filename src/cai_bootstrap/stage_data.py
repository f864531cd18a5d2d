"""A stage's data steps, each declared once beside its glue: the held-out set, instructions, answers,
critique and revision, preference pairs. `runner.run_step` skips, resumes or redoes them."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

from . import health
from .engines.holder import engine_signature
from .records import EvalItem, Instruction, Response
from .runner import Done, StepSpec
from .stage_calibration import pair_judge
from .stage_context import StageContext
from .steps import content_guards, critique, pairs, responses
from .steps import instructions as instructions_step
from .steps.critique import CritiqueRecord
from .steps.judge import make_judge_fn
from .steps.pair_stats import pair_stats
from .store import atomic_write_text, read_jsonl, sha256_file, write_jsonl
from .tasks.content_checks import relevance_scorer
from .training.conversational import write_conversational

FRAME = "frame.py"  # the frame itself (tasks/frame.py only re-exports it)
# Template text no answer may copy (content_guards.py), with the constraint wordings in tasks/data.
GUARD_TEMPLATES = tuple(f"templates/{t}" for t in content_guards.TEMPLATES)
TASK_DATA = ("tasks/data", "tasks/curriculum/data", "data/redteam_topics.yaml")


def earlier_files(ctx: StageContext) -> list[Path]:
    """The earlier stages' files that stages 4-5 build on: training answers from their rounds'
    responses, held-out ones from their baseline and trained evaluations (held-out stays held-out;
    the trained models pass more often, so more held-out instructions have a passing answer)."""
    if not ctx.kind.reads_earlier:
        return []
    runs = ctx.run_dir
    paths = sorted(runs.glob("stage*/round*/responses/records.jsonl")) + sorted(
        [*runs.glob("stage*/eval_base/records.jsonl"), *runs.glob("stage*/round*/eval/records.jsonl")]
    )
    return [p for p in paths if int(p.relative_to(runs).parts[0].removeprefix("stage")) < ctx.cfg.stage]


def earlier_answers(ctx: StageContext, split: str) -> list[tuple[Instruction, str, bool]]:
    """(instruction, answer, passed) from `earlier_files`, for the held-out or the training split."""
    out = []
    for path in earlier_files(ctx):
        if (path.parent.name in ("eval_base", "eval")) != (split == "heldout"):
            continue
        if split == "heldout":
            stage_dir = ctx.run_dir / path.relative_to(ctx.run_dir).parts[0]
            ins = {i.id: i for i in read_jsonl(stage_dir / "heldout" / "records.jsonl", Instruction)}
            out += [(ins[e.instruction_id], e.response, e.all_strict) for e in read_jsonl(path, EvalItem)]
        else:
            ins = {
                i.id: i
                for i in read_jsonl(path.parent.parent / "instructions" / "records.jsonl", Instruction)
            }
            out += [(ins[r.instruction_id], r.text, r.all_passed) for r in read_jsonl(path, Response)]
    return out


def _earlier_hashes(ctx: StageContext) -> dict[str, str]:
    return {str(p.relative_to(ctx.run_dir)): sha256_file(p) for p in earlier_files(ctx)}


def written_items(inputs: dict) -> list | None:
    """What the model wrote for stages 2-3 (stage_written.py), when the step reads it."""
    from .tasks.curriculum.written import WrittenItem

    path = inputs["written"] / "records.jsonl" if "written" in inputs else None
    return read_jsonl(path, WrittenItem) if path and path.exists() else None  # none: step disabled


def _heldout(ctx: StageContext, st, inputs, models) -> Done:
    held = instructions_step.heldout(
        ctx.cfg.instructions, ctx.seed, ctx.cfg.stage, earlier_answers(ctx, "heldout"), written_items(inputs)
    )
    return Done(held, {"heldout": len(held)})


HELDOUT = StepSpec(
    "heldout",
    _heldout,
    settings=("instructions",),
    ignores={
        "instructions.n_train": "the training set's size",
        "instructions.leakage_threshold": "checked on the training set, against this one",
        "instructions.self_instruct": "self-instruct makes training tasks only",
    },
    resources=TASK_DATA,
    extra=lambda ctx: {"seed": ctx.seed, "stage": ctx.cfg.stage, "earlier": _earlier_hashes(ctx)},
    in_round=False,
)


def _instructions(ctx: StageContext, st, inputs, models) -> Done:
    held = read_jsonl(inputs["heldout"] / "records.jsonl", Instruction)
    engine = ctx.engines.get(models["generator"])
    out = instructions_step.run(
        ctx.cfg.instructions,
        ctx.seed,
        ctx.cfg.stage,
        ctx.round,
        engine,
        held,
        earlier_answers(ctx, "train"),
        written_items(inputs),
    )
    write_jsonl(st.folder / "self_instruct_tasks.jsonl", out.self_tasks)
    atomic_write_text(
        st.folder / "self_instruct_rejected.jsonl", "".join(r.model_dump_json() + "\n" for r in out.rejected)
    )
    counts = {"train": len(out.instructions), "self_instruct_tasks": len(out.self_tasks)}
    return Done(out.instructions, counts, {"stats": out.stats})


def _generation(ctx: StageContext) -> dict:
    return {
        "seed": ctx.seed,
        "stage": ctx.cfg.stage,
        "round": ctx.round,
        "dtype": ctx.recipe.model.dtype,
        **_engine(ctx, ctx.generator),
    }


def _engine(ctx: StageContext, model: Path | None) -> dict:
    """Another engine (openai, vllm) samples differently; empty for hf (engines/holder.py)."""
    return engine_signature(ctx.recipe.model, model) if model is not None else {}


INSTRUCTIONS = StepSpec(
    "instructions",
    _instructions,
    settings=("instructions",),
    ignores={
        "instructions.n_heldout": "read through the held-out set itself, an input",
        "instructions.n_heldout_types": "read through the held-out set itself, an input",
    },
    reads=("heldout",),
    models={"generator": "generator"},
    resources=(
        FRAME,
        *TASK_DATA,
        "templates/selfinstruct_propose.j2",
        "templates/selfinstruct_critic.j2",
    ),
    outputs=("records.jsonl", "self_instruct_tasks.jsonl", "self_instruct_rejected.jsonl"),
    timeout="generation",
    extra=lambda ctx: {**_generation(ctx), "earlier": _earlier_hashes(ctx)},
)


def _responses(ctx: StageContext, st, inputs, models) -> Done:
    ins = read_jsonl(inputs["instructions"] / "records.jsonl", Instruction)
    pool = ctx.engines.actor_pool(models["generator"])  # model.ray.workers > 0: Ray actors answer
    engine = None if pool else ctx.engines.get(models["generator"])
    recs = responses.run(ctx.cfg.responses, ins, engine, st, ctx.seed + 7919 * ctx.round, pool)
    return Done(recs, responses.pass_rates(ins, recs))


RESPONSES = StepSpec(
    "responses",
    _responses,
    settings=("responses",),
    reads=("instructions",),
    models={"generator": "generator"},
    resources=(FRAME,),
    timeout="generation",
    extra=_generation,
)


def _critique(ctx: StageContext, st, inputs, models) -> Done:
    ins = read_jsonl(inputs["instructions"] / "records.jsonl", Instruction)
    resp = read_jsonl(inputs["responses"] / "records.jsonl", Response)
    out = None
    if ctx.cfg.critique.enabled:
        engine = ctx.engines.get(models["generator"])
        gcfg = ctx.cfg.pairs.guards  # relevance by the same model that writes the revisions
        g = content_guards.make_guard(gcfg, ctx.constitution, relevance_scorer(engine))
        guard = (lambda items: content_guards.revision_problems(g, items)) if g else None
        out = critique.run(ctx.cfg.critique, ins, resp, ctx.constitution, engine, guard=guard)
    write_jsonl(st.folder / "critiques.jsonl", out.critiques if out else [])
    # Revisions may legitimately be zero (nothing needed revising): records.jsonl may be empty.
    write_jsonl(st.records_path, out.revisions if out else [])
    counts = {"critiques": len(out.critiques) if out else 0, "revisions": len(out.revisions) if out else 0}
    return Done(None, counts, {"principle_usage": dict(out.principle_usage) if out else {}})


def _constitution(ctx: StageContext) -> dict:
    return {
        "constitution": ctx.constitution.digest(),
        "dtype": ctx.recipe.model.dtype,
        **_engine(ctx, ctx.generator),
    }


def _judging(ctx: StageContext) -> dict:
    return {
        "constitution": ctx.constitution.digest(),
        "dtype": ctx.recipe.model.dtype,
        **(_engine(ctx, ctx.judge) if ctx.cfg.judge.enabled else {}),
    }


CRITIQUE = StepSpec(
    "critique",
    _critique,
    settings=("critique", "pairs.guards"),
    ignores={"pairs.guards.min_sft_relevance": "revisions are checked against their originals"},
    reads=("instructions", "responses"),
    models={"generator": "generator"},
    resources=(FRAME, *GUARD_TEMPLATES, "tasks/data", "tasks/content_checks.py"),
    outputs=("records.jsonl", "critiques.jsonl"),
    timeout="generation",
    extra=_constitution,
)


def _pairs(ctx: StageContext, st, inputs, models) -> Done:
    ins = read_jsonl(inputs["instructions"] / "records.jsonl", Instruction)
    crit = inputs["critique"]
    cands = read_jsonl(inputs["responses"] / "records.jsonl", Response) + read_jsonl(
        crit / "records.jsonl", Response
    )
    # A judge that failed calibration (stage_calibration.py) orders no pair: its ties are dropped with
    # the reason. Its verdict depends on the judge model, the judge settings and the labelled sets, all
    # in this step's signature.
    verdict = pair_judge(ctx)
    refused = (verdict or {}).get("refused")
    engine = ctx.engines.get(models["judge"]) if ctx.cfg.judge.enabled and not refused else None
    judge_fn = None if refused else make_judge_fn(ctx.cfg.judge, engine, ctx.constitution)
    critiques = read_jsonl(crit / "critiques.jsonl", CritiqueRecord)
    pcfg = ctx.cfg.pairs
    guard = _guard(ctx, models)
    out = pairs.run(pcfg, ins, cands, judge_fn, critiques, judge_refused=refused, guard=guard)
    chosen = out.pairs if pcfg.sft_from_chosen else ()
    sft_cands, refused_sft = pairs.sft_candidates(guard, ins, cands, pcfg.drop_truncated)
    sft = pairs.sft_examples(ins, sft_cands, chosen, pcfg.drop_truncated, pcfg.sft_per_instruction)
    out.dropped += refused_sft
    out.stats = pair_stats(out.pairs, out.dropped, critiques)
    # Health gate: enough pairs for DPO and examples for SFT (health.py); the thresholds gate, they do
    # not change any output, so both are signature_exempt: loosening one after it fired reruns this step only.
    health.check_training_data(
        len(out.pairs),
        len(sft),
        pcfg.min_pairs,
        ctx.cfg.sft.min_examples,
        ctx.cfg.dpo.enabled,
        ctx.cfg.sft.enabled,
        Counter(d.reason.value for d in out.dropped),
    )
    write_jsonl(st.folder / "dropped.jsonl", out.dropped)
    write_jsonl(st.folder / "sft.jsonl", sft)
    shutil.copy(crit / "critiques.jsonl", st.folder / "critiques.jsonl")
    write_jsonl(st.records_path, out.pairs)
    write_conversational(st.folder, ins, sft, out.pairs)  # TRL's conversational form beside them
    counts = {"pairs": len(out.pairs), "dropped": len(out.dropped), "sft_examples": len(sft)}
    return Done(None, counts, {"stats": out.stats.model_dump(mode="json"), "judge_calibration": verdict})


def _guard(ctx: StageContext, models: dict) -> content_guards.Guard | None:
    """The content guards of this stage; relevance is scored by the round's input model."""
    gcfg = ctx.cfg.pairs.guards

    def scorer(items):
        # Loaded when first called, after the judge has ordered the ties: the holder keeps one engine,
        # so loading the generator earlier would free the judge's model under it.
        return relevance_scorer(ctx.engines.get(models["generator"]))(items)

    return content_guards.make_guard(gcfg, ctx.constitution, scorer)


PAIRS = StepSpec(
    "pairs",
    _pairs,
    settings=("pairs", "judge"),
    reads=("instructions", "responses", "critique"),
    models={"judge": "judge", "generator": "generator"},
    resources=(
        FRAME,
        *GUARD_TEMPLATES,
        "tasks/data",
        "tasks/content_checks.py",
        "data/calibration_preference.yaml",
    ),
    outputs=("records.jsonl", "dropped.jsonl", "sft.jsonl", "critiques.jsonl", "*_messages.jsonl"),
    timeout="generation",
    extra=_judging,
)
