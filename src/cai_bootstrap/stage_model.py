"""A stage's model steps: held-out and safety evaluation, SFT, DPO and the merge that hands the
round's model on (with its lineage)."""

from __future__ import annotations

from pathlib import Path

from .engines.holder import model_identity
from .errors import UserError
from .log import log
from .records import Instruction, PreferencePair
from .stage_calibration import calibration
from .stage_context import StageContext, sig, timeout
from .steps import evaluate, safety_eval
from .store import Step, canonical_hash, read_jsonl, sha256_file
from .templates import template_hash
from .training.dpo import run_dpo
from .training.merge import merge_adapter
from .training.sft import run_sft


def make_eval(ctx: StageContext, name: str, model_path: Path, tag: str, held_path: Path) -> Step:
    conf = {
        "max_new_tokens": ctx.cfg.eval.max_new_tokens,
        "model": model_identity(model_path),
        "dtype": ctx.recipe.model.dtype,
        "frame": canonical_hash(frame_fingerprint()),
    }
    st = ctx.step(name, conf, {"heldout": held_path})
    if st.state() != "done":
        held = read_jsonl(held_path, Instruction)
        with timeout(ctx, "evaluation"):
            items = evaluate.run(held, ctx.engines.get(model_path), tag, ctx.cfg.eval.max_new_tokens, st)
        st.finish(items, {"items": len(items)}, {"accuracies": evaluate.accuracies(items)})
    return st


def make_safety(ctx: StageContext, name: str, model_path: Path, tag: str) -> Step | None:
    """Harmlessness and over-refusal: answers by `model_path`, judged by the stage's generator
    (fixed for baseline and trained). Answer first, then judge, so one model is loaded at a time."""
    cfg = ctx.cfg.eval.safety
    if not cfg.enabled:
        return None
    conf = {
        "safety": cfg.model_dump(mode="json"),
        "model": model_identity(model_path),
        "dtype": ctx.recipe.model.dtype,
        "judge": model_identity(ctx.judge),
        "constitution": ctx.constitution.digest(),
        "templates": template_hash("safety_judge"),
        "frame": canonical_hash(frame_fingerprint()),
    }
    cal = calibration(ctx)  # before ctx.step: a changed calibration makes this step stale
    conf["judge_calibration"] = canonical_hash(cal.model_dump(mode="json")) if cal else None
    st = ctx.step(name, conf, {})
    if st.state() != "done":
        with timeout(ctx, "evaluation"):
            answers = safety_eval.answer(cfg, ctx.engines.get(model_path))
        result = safety_eval.judge(
            cfg,
            answers,
            ctx.engines.get(ctx.judge),
            ctx.constitution,
            model_tag=tag,
            judge_tag=model_identity(ctx.judge),
            calibration=cal,
        )
        summary = result.model_dump(mode="json", exclude={"items"})
        st.finish(result.items, {"items": len(result.items)}, {"result": summary})
    return st


def frame_fingerprint() -> dict:
    from .tasks import frame

    return {"shots": frame.SHOTS, "stop": frame.STOP, "probe": frame.prompt("x") + frame.completion("y")}


def train_round(ctx: StageContext, pairs_step: Step) -> tuple[Step, Step]:
    """SFT then DPO (either may be disabled: 'DPO only' is the method's ablation)."""
    base = ctx.generator
    common = {
        "lora": sig(ctx.cfg.lora),
        "base": model_identity(base),
        "train_dtype": ctx.recipe.model.train_dtype,
    }
    sft_st = ctx.step(
        ctx.r("sft"), {"sft": sig(ctx.cfg.sft), **common}, {"examples": pairs_step.folder / "sft.jsonl"}
    )
    if sft_st.state() != "done":
        ctx.engines.release()
        res = None
        if ctx.cfg.sft.enabled:
            with timeout(ctx, "training"):
                res = run_sft(
                    ctx.cfg.sft,
                    ctx.cfg.lora,
                    pairs_step.folder / "sft.jsonl",
                    base,
                    sft_st.folder / "train",
                    ctx.recipe.model.train_dtype,
                    force=ctx.force,
                )
        sft_st.finish(
            None, {"steps": res.steps if res else 0}, {"result": res.model_dump(mode="json") if res else None}
        )
    sft_res = sft_st.manifest()["result"]
    dpo_inputs = {"pairs": pairs_step.records_path, "sft": sft_st.manifest_path}
    dpo_st = ctx.step(ctx.r("dpo"), {"dpo": sig(ctx.cfg.dpo), **common}, dpo_inputs)
    if dpo_st.state() != "done":
        ctx.engines.release()
        res = None
        if ctx.cfg.dpo.enabled and read_jsonl(pairs_step.records_path, PreferencePair):
            sft_adapter = Path(sft_res["adapter"]) if sft_res else None
            with timeout(ctx, "training"):
                res = run_dpo(
                    ctx.cfg.dpo,
                    ctx.cfg.lora,
                    pairs_step.records_path,
                    base,
                    sft_adapter,
                    dpo_st.folder / "train",
                    ctx.recipe.model.train_dtype,
                    force=ctx.force,
                )
        elif ctx.cfg.dpo.enabled:
            log.warning("no preference pairs survived the filters: DPO skipped this round")
        dpo_st.finish(
            None, {"steps": res.steps if res else 0}, {"result": res.model_dump(mode="json") if res else None}
        )
    return sft_st, dpo_st


def merge_round(ctx: StageContext, sft_st: Step, dpo_st: Step, pairs_step: Step) -> Path:
    """Merge the last adapter into the weights: the next stage's generator, with its lineage."""
    final = (dpo_st.manifest() or {}).get("result") or (sft_st.manifest() or {}).get("result")
    if final is None:
        raise UserError(
            f"stage {ctx.cfg.stage} trained nothing (sft and dpo both disabled or empty)",
            "enable sft or dpo in the recipe",
        )
    conf = {
        "base": model_identity(ctx.generator),
        "adapter": final["data_sha256"],
        "config": final["config_hash"],
    }
    st = ctx.step(ctx.r("model"), conf, {"dpo": dpo_st.manifest_path, "sft": sft_st.manifest_path})
    out = st.folder
    if st.state() != "done":
        ctx.engines.release()
        lineage = {
            "stage": ctx.cfg.stage,
            "base_model": str(ctx.generator),
            "base_identity": model_identity(ctx.generator),
            "adapters": [
                r["adapter"]
                for r in ((sft_st.manifest() or {}).get("result"), (dpo_st.manifest() or {}).get("result"))
                if r
            ],
            "data": {
                "sft": sha256_file(pairs_step.folder / "sft.jsonl"),
                "pairs": sha256_file(pairs_step.records_path),
            },
        }
        # Saved in the evaluation precision: the next stage and the evaluation load it that way anyway.
        merge_adapter(ctx.generator, Path(final["adapter"]), out, lineage, dtype=ctx.recipe.model.dtype)
        st.finish(None, {"merged": 1}, {"model": str(out)})
    return out
