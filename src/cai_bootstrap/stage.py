"""One stage's steps around the run directory: each is skipped when its manifest matches, resumed from
its shards when it was cut off, and refused as stale when its config or inputs changed (unless --force).
At most one model is loaded at a time.
"""

from __future__ import annotations

import shutil
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from .config import Recipe, StageSettings
from .constitution import Constitution
from .engines.holder import Engines, model_identity
from .errors import StepFailed, UserError
from .log import log
from .records import EvalItem, Instruction, PreferencePair, Response
from .steps import critique, evaluate, pairs, responses, safety_eval
from .steps import instructions as instructions_step
from .steps.judge import make_judge_fn
from .store import Step, atomic_write_text, canonical_hash, read_jsonl, sha256_file, write_jsonl
from .templates import template_hash
from .training.config import NOT_IN_SIGNATURE
from .training.dpo import run_dpo
from .training.merge import merge_adapter
from .training.sft import run_sft


def _sig(settings) -> dict:
    data = settings.model_dump(mode="json")
    return {k: v for k, v in data.items() if k not in NOT_IN_SIGNATURE}


@dataclass
class StageContext:
    """One stage of one run. `base` is the stage's input model (baseline, and judge unless the recipe
    fixes one); `generator` is the current round's input model (round r starts from round r-1's)."""

    recipe: Recipe
    cfg: StageSettings
    folder: Path
    base: Path
    constitution: Constitution
    engines: Engines
    force: bool
    generator: Path | None = None
    round: int = 1
    times: list[dict] = field(default_factory=list)

    @property
    def seed(self) -> int:
        return self.recipe.run.seed

    @property
    def judge(self) -> Path:
        """The judging model: fixed by the recipe (model.judge) or the stage's input model."""
        from . import models

        return models.resolve(self.recipe.model.judge) if self.recipe.model.judge else self.base

    def step(self, name: str, config: dict, inputs: dict[str, Path]) -> Step:
        st = Step(self.folder / name, config, inputs)
        state = st.state()
        if state == "stale":
            if not self.force:
                raise UserError(
                    f"step {st.folder} is stale: its config or inputs changed since it was made",
                    "rerun with --force to redo it (and what depends on it), or restore the old recipe",
                )
            log.warning("redoing stale step %s", st.folder)
            st.reset()
        if state == "done":
            log.info("skip %s (done, signature matches)", st.folder.relative_to(self.folder.parent))
        return st

    def r(self, name: str) -> str:
        return f"round{self.round}/{name}"

    def timed(self, name: str, st: Step | None) -> None:
        if st is not None and (m := st.manifest()):
            self.times.append({"step": name, "seconds": round(m.get("seconds", 0.0), 1), "counts": m.get("counts", {})})

    def gen_identity(self) -> dict:
        return {"model": model_identity(self.generator), "dtype": self.recipe.model.dtype}


class StepTimeout:
    """Fail a step that runs past its configured limit (run.timeouts) with one clear line.

    SIGALRM interrupts the main thread wherever it is; the step's shards stay, so a re-run resumes.
    """

    def __init__(self, name: str, seconds: float | None):
        self.name, self.seconds = name, seconds

    def _fire(self, *_):
        raise StepFailed(f"step '{self.name}' exceeded its timeout of {self.seconds:.0f} s",
                         f"raise run.timeouts.{self.name} in the recipe, or make the step smaller; a re-run resumes it")

    def __enter__(self):
        if self.seconds:
            signal.signal(signal.SIGALRM, self._fire)
            signal.setitimer(signal.ITIMER_REAL, self.seconds)
        return self

    def __exit__(self, *exc):
        if self.seconds:
            signal.setitimer(signal.ITIMER_REAL, 0)


def timeout(ctx: StageContext, kind: str) -> StepTimeout:
    return StepTimeout(kind, getattr(ctx.recipe.run.timeouts, kind))


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
            out += [(ins[r.instruction_id], r.text, r.all_passed)
                    for r in read_jsonl(rd / "responses" / "records.jsonl", Response)]
    return out


def _earlier_inputs(ctx: StageContext) -> dict[str, Path]:
    """The files stages 4-5 read, so their steps go stale when those change."""
    if ctx.cfg.stage not in (4, 5):
        return {}
    paths = sorted(ctx.folder.parent.glob("stage*/round*/responses/records.jsonl"))
    paths += sorted(ctx.folder.parent.glob("stage*/eval_base/records.jsonl"))
    return {str(p.relative_to(ctx.folder.parent)): p for p in paths
            if int(p.relative_to(ctx.folder.parent).parts[0].removeprefix("stage")) < ctx.cfg.stage}


def _heldout(ctx: StageContext) -> Path:
    icfg = ctx.cfg.instructions
    conf = {"n_heldout": icfg.n_heldout, "types": icfg.constraint_types, "min": icfg.min_constraints,
            "max": icfg.max_constraints, "seed": ctx.seed, "stage": ctx.cfg.stage}
    st = ctx.step("heldout", conf, _earlier_inputs(ctx))
    if st.state() != "done":
        held = instructions_step.heldout(icfg, ctx.seed, ctx.cfg.stage, earlier_answers(ctx, "heldout"))
        st.finish(held, {"heldout": len(held)})
    return st.records_path


def _instructions(ctx: StageContext, held_path: Path) -> Step:
    conf = {"instructions": _sig(ctx.cfg.instructions), "seed": ctx.seed, "stage": ctx.cfg.stage,
            **ctx.gen_identity(), "templates": template_hash("selfinstruct_propose", "selfinstruct_critic")}
    st = ctx.step(ctx.r("instructions"), conf, {"heldout": held_path, **_earlier_inputs(ctx)})
    if st.state() != "done":
        held = read_jsonl(held_path, Instruction)
        engine = ctx.engines.get(ctx.generator)
        with timeout(ctx, "generation"):
            out = instructions_step.run(ctx.cfg.instructions, ctx.seed, ctx.cfg.stage, ctx.round, engine, held,
                                        earlier_answers(ctx, "train"))
        write_jsonl(st.folder / "self_instruct_tasks.jsonl", out.self_tasks)
        atomic_write_text(st.folder / "self_instruct_rejected.jsonl",
                          "".join(r.model_dump_json() + "\n" for r in out.rejected))
        st.finish(out.instructions, {"train": len(out.instructions), "self_instruct_tasks": len(out.self_tasks)},
                  {"stats": out.stats})
    return st


def _responses(ctx: StageContext, ins_step: Step) -> Step:
    conf = {"responses": _sig(ctx.cfg.responses), "seed": ctx.seed, **ctx.gen_identity()}
    st = ctx.step(ctx.r("responses"), conf, {"instructions": ins_step.records_path})
    if st.state() != "done":
        ins = read_jsonl(ins_step.records_path, Instruction)
        with timeout(ctx, "generation"):
            recs = responses.run(ctx.cfg.responses, ins, ctx.engines.get(ctx.generator), st, ctx.seed + 7919 * ctx.round)
        st.finish(recs, responses.pass_rates(ins, recs))
    return st


def _critique(ctx: StageContext, ins_step: Step, resp_step: Step) -> Step:
    conf = {"critique": _sig(ctx.cfg.critique), "constitution": ctx.constitution.digest(), **ctx.gen_identity(),
            "templates": template_hash("critique", "revision")}
    st = ctx.step(ctx.r("critique"), conf, {"instructions": ins_step.records_path, "responses": resp_step.records_path})
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
        st.finish(None, {"critiques": len(out.critiques) if out else 0, "revisions": len(revisions)},
                  {"principle_usage": usage})
    return st


def _pairs(ctx: StageContext, ins_step: Step, resp_step: Step, crit_step: Step) -> Step:
    conf = {"pairs": _sig(ctx.cfg.pairs), "judge": _sig(ctx.cfg.judge), "constitution": ctx.constitution.digest(),
            "judge_model": model_identity(ctx.judge), "templates": template_hash("judge")}
    inputs = {"instructions": ins_step.records_path, "responses": resp_step.records_path,
              "revisions": crit_step.records_path}
    st = ctx.step(ctx.r("pairs"), conf, inputs)
    if st.state() != "done":
        ins = read_jsonl(ins_step.records_path, Instruction)
        cands = read_jsonl(resp_step.records_path, Response) + read_jsonl(crit_step.records_path, Response)
        engine = ctx.engines.get(ctx.judge) if ctx.cfg.judge.enabled else None
        judge_fn = make_judge_fn(ctx.cfg.judge, engine, ctx.constitution)
        with timeout(ctx, "generation"):
            out = pairs.run(ctx.cfg.pairs, ins, cands, judge_fn)
        sft = pairs.sft_examples(ins, cands)
        if not out.pairs and not sft:
            raise UserError("no preference pairs and no passing answers to train on",
                            "raise responses.k or n_train, or loosen the pair filters")
        write_jsonl(st.folder / "dropped.jsonl", out.dropped)
        write_jsonl(st.folder / "sft.jsonl", sft)
        shutil.copy(crit_step.folder / "critiques.jsonl", st.folder / "critiques.jsonl")
        write_jsonl(st.records_path, out.pairs)
        st.finish(None, {"pairs": len(out.pairs), "dropped": len(out.dropped), "sft_examples": len(sft)},
                  {"stats": out.stats.model_dump(mode="json")})
    return st


def _eval(ctx: StageContext, name: str, model_path: Path, tag: str, held_path: Path) -> Step:
    conf = {"max_new_tokens": ctx.cfg.eval.max_new_tokens, "model": model_identity(model_path),
            "dtype": ctx.recipe.model.dtype, "frame": canonical_hash(frame_fingerprint())}
    st = ctx.step(name, conf, {"heldout": held_path})
    if st.state() != "done":
        held = read_jsonl(held_path, Instruction)
        with timeout(ctx, "evaluation"):
            items = evaluate.run(held, ctx.engines.get(model_path), tag, ctx.cfg.eval.max_new_tokens, st)
        st.finish(items, {"items": len(items)}, {"accuracies": evaluate.accuracies(items)})
    return st


def _safety(ctx: StageContext, name: str, model_path: Path, tag: str) -> Step | None:
    """Harmlessness and over-refusal: answers by `model_path`, judged by the stage's generator
    (fixed for baseline and trained). Answer first, then judge, so one model is loaded at a time."""
    cfg = ctx.cfg.eval.safety
    if not cfg.enabled:
        return None
    conf = {"safety": cfg.model_dump(mode="json"), "model": model_identity(model_path), "dtype": ctx.recipe.model.dtype,
            "judge": model_identity(ctx.judge), "constitution": ctx.constitution.digest(),
            "templates": template_hash("safety_judge"), "frame": canonical_hash(frame_fingerprint())}
    st = ctx.step(name, conf, {})
    if st.state() != "done":
        with timeout(ctx, "evaluation"):
            answers = safety_eval.answer(cfg, ctx.engines.get(model_path))
        result = safety_eval.judge(cfg, answers, ctx.engines.get(ctx.judge), ctx.constitution,
                                   model_tag=tag, judge_tag=model_identity(ctx.judge))
        summary = result.model_dump(mode="json", exclude={"items"})
        st.finish(result.items, {"items": len(result.items)}, {"result": summary})
    return st


def frame_fingerprint() -> dict:
    from .tasks import frame

    return {"shots": frame.SHOTS, "stop": frame.STOP, "probe": frame.prompt("x") + frame.completion("y")}


def _train(ctx: StageContext, pairs_step: Step) -> tuple[Step, Step]:
    """SFT then DPO (either may be disabled: 'DPO only' is the method's ablation)."""
    base = ctx.generator
    common = {"lora": _sig(ctx.cfg.lora), "base": model_identity(base), "train_dtype": ctx.recipe.model.train_dtype}
    sft_st = ctx.step(ctx.r("sft"), {"sft": _sig(ctx.cfg.sft), **common}, {"examples": pairs_step.folder / "sft.jsonl"})
    if sft_st.state() != "done":
        ctx.engines.release()
        res = None
        if ctx.cfg.sft.enabled:
            with timeout(ctx, "training"):
                res = run_sft(ctx.cfg.sft, ctx.cfg.lora, pairs_step.folder / "sft.jsonl", base, sft_st.folder / "train",
                          ctx.recipe.model.train_dtype, force=ctx.force)
        sft_st.finish(None, {"steps": res.steps if res else 0},
                      {"result": res.model_dump(mode="json") if res else None})
    sft_res = sft_st.manifest()["result"]
    dpo_inputs = {"pairs": pairs_step.records_path, "sft": sft_st.manifest_path}
    dpo_st = ctx.step(ctx.r("dpo"), {"dpo": _sig(ctx.cfg.dpo), **common}, dpo_inputs)
    if dpo_st.state() != "done":
        ctx.engines.release()
        res = None
        if ctx.cfg.dpo.enabled and read_jsonl(pairs_step.records_path, PreferencePair):
            sft_adapter = Path(sft_res["adapter"]) if sft_res else None
            with timeout(ctx, "training"):
                res = run_dpo(ctx.cfg.dpo, ctx.cfg.lora, pairs_step.records_path, base, sft_adapter,
                          dpo_st.folder / "train", ctx.recipe.model.train_dtype, force=ctx.force)
        elif ctx.cfg.dpo.enabled:
            log.warning("no preference pairs survived the filters: DPO skipped this round")
        dpo_st.finish(None, {"steps": res.steps if res else 0}, {"result": res.model_dump(mode="json") if res else None})
    return sft_st, dpo_st


def _merge(ctx: StageContext, sft_st: Step, dpo_st: Step, pairs_step: Step) -> Path:
    """Merge the last adapter into the weights: the next stage's generator, with its lineage."""
    final = (dpo_st.manifest() or {}).get("result") or (sft_st.manifest() or {}).get("result")
    if final is None:
        raise UserError(f"stage {ctx.cfg.stage} trained nothing (sft and dpo both disabled or empty)",
                        "enable sft or dpo in the recipe")
    conf = {"base": model_identity(ctx.generator), "adapter": final["data_sha256"], "config": final["config_hash"]}
    st = ctx.step(ctx.r("model"), conf, {"dpo": dpo_st.manifest_path, "sft": sft_st.manifest_path})
    out = st.folder
    if st.state() != "done":
        ctx.engines.release()
        lineage = {
            "stage": ctx.cfg.stage,
            "base_model": str(ctx.generator),
            "base_identity": model_identity(ctx.generator),
            "adapters": [r["adapter"] for r in ((sft_st.manifest() or {}).get("result"), (dpo_st.manifest() or {}).get("result")) if r],
            "data": {"sft": sha256_file(pairs_step.folder / "sft.jsonl"), "pairs": sha256_file(pairs_step.records_path)},
        }
        # Saved in the evaluation precision: the next stage and the evaluation load it that way anyway.
        merge_adapter(ctx.generator, Path(final["adapter"]), out, lineage, dtype=ctx.recipe.model.dtype)
        st.finish(None, {"merged": 1}, {"model": str(out)})
    return out


def baseline(ctx: StageContext) -> tuple[Path, Step, Step | None]:
    """The stage's held-out set and its input model's evaluation on it (same frame, precision, greedy)."""
    held_path = _heldout(ctx)
    base_eval = _eval(ctx, "eval_base", ctx.base, "base", held_path)
    base_safety = _safety(ctx, "safety_base", ctx.base, "base")
    ctx.timed("eval_base", base_eval)
    ctx.timed("safety_base", base_safety)
    return held_path, base_eval, base_safety


def run_round(ctx: StageContext, held_path: Path) -> dict:
    """One round: instructions, answers, critique, pairs, SFT, DPO, merge, held-out evaluation."""
    t0 = time.time()
    ins = _instructions(ctx, held_path)
    resp = _responses(ctx, ins)
    crit = _critique(ctx, ins, resp)
    pr = _pairs(ctx, ins, resp, crit)
    sft_st, dpo_st = _train(ctx, pr)
    merged = _merge(ctx, sft_st, dpo_st, pr)
    trained_eval = _eval(ctx, ctx.r("eval"), merged, "trained", held_path)
    trained_safety = _safety(ctx, ctx.r("safety"), merged, "trained")
    ctx.engines.release()
    for name, st in [("instructions", ins), ("responses", resp), ("critique", crit), ("pairs", pr),
                     ("sft", sft_st), ("dpo", dpo_st), ("eval_trained", trained_eval), ("safety_trained", trained_safety)]:
        ctx.timed(f"round{ctx.round}/{name}", st)
    return {
        "round": ctx.round,
        "generator": str(ctx.generator),
        "trained_eval": str(trained_eval.records_path),
        "model": str(merged),
        "safety": str(trained_safety.folder) if trained_safety else None,
        "seconds": round(time.time() - t0, 1),
    }


def load_eval(path: str) -> list[EvalItem]:
    return read_jsonl(Path(path), EvalItem)


