"""One stage's steps around the run directory: the baseline (held-out set, the input model's
evaluation) and one round (data, pairs, training, merge, the trained model's evaluation). At most one
model is loaded at a time; pipeline.py runs the rounds and the gate.
"""

from __future__ import annotations

import time
from pathlib import Path

from .records import EvalItem
from .stage_calibration import require_judge
from .stage_context import StageContext
from .stage_data import make_critique, make_heldout, make_instructions, make_pairs, make_responses
from .stage_model import make_eval, make_safety, merge_round, train_round
from .store import Step, read_jsonl
from .tasks.ifeval import read_rows, to_instructions


def external_sets(ctx: StageContext) -> dict[str, Path]:
    """Extra IFEval-format files named in the recipe (eval.ifeval_files), as Instruction records."""
    out = {}
    for path in ctx.cfg.eval.ifeval_files:
        rows = read_rows(path)
        st = ctx.step(f"ifeval_{path.stem}", {"file": str(path)}, {"file": path})
        if st.state() != "done":
            st.finish(to_instructions(rows, stage=ctx.cfg.stage), {"prompts": len(rows)})
        out[path.stem] = st.records_path
    return out


def evaluate_external(ctx: StageContext, model: Path, tag: str, prefix: str) -> dict[str, dict]:
    """The four IFEval accuracies of `model` on each external file (same frame and decoding)."""
    result = {}
    for name, held in external_sets(ctx).items():
        st = make_eval(ctx, f"{prefix}ifeval_{name}_{tag}", model, tag, held)
        result[name] = st.manifest()["accuracies"]
    return result


def baseline(ctx: StageContext) -> tuple[Path, Step, Step | None]:
    """The stage's held-out set and its input model's evaluation on it (same frame, precision, greedy)."""
    require_judge(ctx)  # a judge-only stage stops here, before any work, when its judge failed calibration
    held_path = make_heldout(ctx)
    base_eval = make_eval(ctx, "eval_base", ctx.base, "base", held_path)
    base_safety = make_safety(ctx, "safety_base", ctx.base, "base")
    ctx.timed("eval_base", base_eval)
    ctx.timed("safety_base", base_safety)
    ctx.external_base = evaluate_external(ctx, ctx.base, "base", "")
    return held_path, base_eval, base_safety


def run_round(ctx: StageContext, held_path: Path) -> dict:
    """One round: instructions, answers, critique, pairs, SFT, DPO, merge, held-out evaluation."""
    t0 = time.time()
    ins = make_instructions(ctx, held_path)
    resp = make_responses(ctx, ins)
    crit = make_critique(ctx, ins, resp)
    pr = make_pairs(ctx, ins, resp, crit)
    sft_st, dpo_st = train_round(ctx, pr)
    merged = merge_round(ctx, sft_st, dpo_st, pr)
    trained_eval = make_eval(ctx, ctx.r("eval"), merged, "trained", held_path)
    trained_safety = make_safety(ctx, ctx.r("safety"), merged, "trained")
    external = evaluate_external(ctx, merged, "trained", f"round{ctx.round}/")
    ctx.engines.release()
    for name, st in [
        ("instructions", ins),
        ("responses", resp),
        ("critique", crit),
        ("pairs", pr),
        ("sft", sft_st),
        ("dpo", dpo_st),
        ("eval_trained", trained_eval),
        ("safety_trained", trained_safety),
    ]:
        ctx.timed(f"round{ctx.round}/{name}", st)
    return {
        "round": ctx.round,
        "generator": str(ctx.generator),
        "trained_eval": str(trained_eval.records_path),
        "model": str(merged),
        "safety": str(trained_safety.folder) if trained_safety else None,
        "external": {"base": ctx.external_base, "trained": external},
        "seconds": round(time.time() - t0, 1),
    }


def load_eval(path: str) -> list[EvalItem]:
    return read_jsonl(Path(path), EvalItem)
