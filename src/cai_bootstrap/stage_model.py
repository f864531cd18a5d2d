"""A stage's model steps, each declared once beside its glue: SFT, DPO, the merge that hands the
round's model on (with its lineage), held-out, safety and external IFEval evaluations."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from .engines.holder import engine_signature
from .errors import UserError
from .log import log
from .records import Instruction, PreferencePair
from .runner import Done, StepSpec, model_identity
from .stage_calibration import calibration
from .stage_context import StageContext
from .stage_data import FRAME
from .steps import evaluate, safety_eval
from .store import read_jsonl, sha256_file
from .tasks.ifeval import SCORER_VERSION, read_rows, to_instructions
from .training.dpo import run_dpo
from .training.merge import merge_adapter
from .training.sft import run_sft

ADAPTER = ("train/adapter/*", "train/complete.json")
# Wall time (complete.json) and the trainer's pickled arguments and model card: not the result.
TIMINGS = ("train/complete.json", "train/adapter/training_args.bin", "train/adapter/README.md")


def _adapter(folder: Path) -> Path | None:
    """A finished training step's adapter folder, None if it trained nothing (found from the step
    folder, not from the path recorded at training time: the run folder may have moved)."""
    return folder / "train" / "adapter" if (folder / "train" / "complete.json").exists() else None


def _train_counts(res) -> Done:
    result = res.model_dump(mode="json") if res else None
    return Done(None, {"steps": res.steps if res else 0}, {"result": result})


def _sft(ctx: StageContext, st, inputs, models) -> Done:
    res = None
    if ctx.cfg.sft.enabled:
        ctx.engines.release()
        examples = inputs["pairs"] / "sft.jsonl"
        res = run_sft(
            ctx.cfg.sft,
            ctx.cfg.lora,
            examples,
            models["base"],
            st.folder / "train",
            ctx.recipe.model.train_dtype,
        )
    return _train_counts(res)


def _train_extra(ctx: StageContext) -> dict:
    return {"train_dtype": ctx.recipe.model.train_dtype}


SFT = StepSpec(
    "sft",
    _sft,
    settings=("sft", "lora"),
    reads=("pairs",),
    models={"base": "generator"},
    outputs=ADAPTER,
    volatile=TIMINGS,
    timeout="training",
    extra=_train_extra,
)


def _dpo(ctx: StageContext, st, inputs, models) -> Done:
    res = None
    pairs_path = inputs["pairs"] / "records.jsonl"
    if ctx.cfg.dpo.enabled and read_jsonl(pairs_path, PreferencePair):
        ctx.engines.release()
        res = run_dpo(
            ctx.cfg.dpo,
            ctx.cfg.lora,
            pairs_path,
            models["base"],
            _adapter(inputs["sft"]),
            st.folder / "train",
            ctx.recipe.model.train_dtype,
        )
    elif ctx.cfg.dpo.enabled:
        log.warning("no preference pairs survived the filters: DPO skipped this round")
    return _train_counts(res)


DPO = dataclasses.replace(SFT, name="dpo", run=_dpo, settings=("dpo", "lora"), reads=("pairs", "sft"))


def _merge(ctx: StageContext, st, inputs, models) -> Done:
    """Merge the last adapter into the weights: the next round's or stage's generator, with its lineage."""
    adapters = [a for a in (_adapter(inputs["sft"]), _adapter(inputs["dpo"])) if a]
    if not adapters:
        raise UserError(
            f"stage {ctx.cfg.stage} trained nothing (sft and dpo both disabled or empty)",
            "enable sft or dpo in the recipe",
        )
    ctx.engines.release()
    base = models["base"]
    lineage = {
        "stage": ctx.cfg.stage,
        "base_model": str(base),
        "base_identity": model_identity(base),
        "adapters": [str(a) for a in adapters],
        "data": {
            k: sha256_file(inputs["pairs"] / f) for k, f in (("sft", "sft.jsonl"), ("pairs", "records.jsonl"))
        },
    }
    # Saved in the evaluation precision: the next stage and the evaluation load it that way anyway.
    merge_adapter(base, adapters[-1], st.folder, lineage, dtype=ctx.recipe.model.dtype)
    return Done(None, {"merged": 1}, {"model": st.folder.name})


MODEL = StepSpec(
    "model",
    _merge,
    reads=("pairs", "sft", "dpo"),
    models={"base": "generator"},
    outputs=("*.safetensors", "*.json", "*.txt", "*.model"),
    volatile=("lineage.json",),  # holds the merge time; the weights' hashes are in the other files
    timeout="training",
    extra=lambda ctx: {"dtype": ctx.recipe.model.dtype},
)


def _eval(ctx: StageContext, st, inputs, models) -> Done:
    held = read_jsonl(inputs["heldout"] / "records.jsonl", Instruction)
    tag = "base" if st.folder.parent == ctx.stage_dir else "trained"
    engine = ctx.engines.get(models["evaluated"], evaluation=True)
    items = evaluate.run(held, engine, tag, ctx.cfg.eval.max_new_tokens, st)
    return Done(items, {"items": len(items)}, {"accuracies": evaluate.accuracies(items)})


def _eval_extra(ctx: StageContext) -> dict:
    # Outcomes scored by an earlier version of the checkers are not reused; evaluation runs on one engine
    # for base and trained models alike (engines/holder.py), recorded unless it is hf.
    return {
        "dtype": ctx.recipe.model.dtype,
        "scorer": SCORER_VERSION,
        **engine_signature(ctx.recipe.model, ctx.base, evaluation=True),
    }


EVAL = StepSpec(
    "eval",
    _eval,
    settings=("eval",),
    ignores={
        "eval.ifeval_files": "evaluated by their own steps",
        "eval.safety": "the safety step's settings",
        "eval.content": "the content step's settings",
    },
    reads=("heldout", "model"),
    models={"evaluated": "model"},
    resources=(FRAME,),
    timeout="evaluation",
    extra=_eval_extra,
)
EVAL_BASE = dataclasses.replace(
    EVAL, name="eval_base", reads=("heldout",), models={"evaluated": "base"}, in_round=False
)


def _safety(ctx: StageContext, st, inputs, models) -> Done:
    """Harmlessness and over-refusal: answers by the evaluated model, judged by the judge (fixed for
    baseline and trained). Answer first, then judge, so one model is loaded at a time."""
    cfg = ctx.cfg.eval.safety
    if not cfg.enabled:
        return Done(None, {"items": 0}, {"result": None})
    tag = "base" if st.folder.parent == ctx.stage_dir else "trained"
    answers = safety_eval.answer(cfg, ctx.engines.get(models["evaluated"], evaluation=True))
    judge = models["judge"]
    # A judge below judge.min_balanced_accuracy on the labelled sets gives no figure ("not measured");
    # an accepted one also gives the Rogan-Gladen corrected harmless rate (stage_calibration.py).
    cal = calibration(ctx)
    result = safety_eval.judge(
        cfg,
        answers,
        ctx.engines.get(judge),
        ctx.constitution,
        model_tag=tag,
        judge_tag=model_identity(judge),
        calibration=cal,
    )
    summary = result.model_dump(mode="json", exclude={"items"})
    return Done(result.items, {"items": len(result.items)}, {"result": summary})


SAFETY = StepSpec(
    "safety",
    _safety,
    settings=("eval.safety", "judge"),  # judge: its calibration decides which figures exist
    reads=("model",),
    models={"evaluated": "model", "judge": "judge"},
    resources=(
        FRAME,
        "templates/safety_judge.j2",
        "data/redteam_eval.yaml",
        "data/benign_risky_eval.yaml",
        "data/calibration_harm.yaml",
        "data/calibration_refusal.yaml",
    ),
    outputs=("records.jsonl",),
    timeout="evaluation",
    extra=lambda ctx: {
        "constitution": ctx.constitution.digest(),
        "dtype": ctx.recipe.model.dtype,
        **engine_signature(ctx.recipe.model, ctx.base, evaluation=True),
    },
)
SAFETY_BASE = dataclasses.replace(
    SAFETY, name="safety_base", reads=(), models={"evaluated": "base", "judge": "judge"}, in_round=False
)


def external_steps(ctx: StageContext) -> tuple[list[StepSpec], list[StepSpec]]:
    """Per extra IFEval-format file (eval.ifeval_files): an import step and the baseline's evaluation
    (once per stage), and the trained model's evaluation (per round); same frame and decoding."""
    baseline, rounds = [], []
    for path in ctx.cfg.eval.ifeval_files:
        name = f"ifeval_{path.stem}"

        def _import(ctx, st, inputs, models, path=path) -> Done:
            rows = read_rows(path)
            return Done(to_instructions(rows, stage=ctx.cfg.stage), {"prompts": len(rows)})

        imp = StepSpec(
            name,
            _import,
            extra=lambda ctx, path=path: {"file": sha256_file(path), "stage": ctx.cfg.stage},
            in_round=False,
        )
        held = {"heldout": name}  # the evaluation's run reads this file's import as its held-out set
        base = dataclasses.replace(EVAL_BASE, name=f"{name}_base", reads=(name,))
        trained = dataclasses.replace(EVAL, name=f"{name}_trained", reads=(name, "model"))
        baseline += [imp, _renamed(base, held)]
        rounds.append(_renamed(trained, held))
    return baseline, rounds


def _renamed(spec: StepSpec, alias: dict[str, str]) -> StepSpec:
    """The same step reading `alias[x]` where its run function reads input x."""
    inner = spec.run

    def run(ctx, st, inputs, models):
        return inner(ctx, st, {**inputs, **{k: inputs[v] for k, v in alias.items()}}, models)

    return dataclasses.replace(spec, run=run)
