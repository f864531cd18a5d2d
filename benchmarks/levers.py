"""Levers for the two goals still missed (BENCHMARKS.md): 7B decode at >= 50% of the bandwidth bound
and LoRA training at >= 40% MFU. Each lever is timed against the current path in the same run.

    PYTHONPATH=src python3 benchmarks/levers.py --out $OUT/levers.json

Decode (batch 64, 256-token prompts, 256 new tokens, greedy, median of 3):
- `ours`: engines/fastdecode.py as the pipeline runs it;
- `ours+compile`: the same loop with the decode step through torch.compile before our capture
  (runs 7-8 ran it as FastDecoder(compile_step=True), since removed; the same is set here by hand);
  its first call includes the compiles;
- a profile of the eager step: which kernels take the time, and their sum against the graph's step.
Training (LoRA r=16 all-linear, batch 8 x 512, checkpointing off, median of 5 steps):
- `plain`: PEFT as benchmarks/train.py times it (lora_dropout 0.05);
- `dropout0`: lora_dropout 0, so PEFT skips the dropout on each adapter's input;
- `liger`: Liger kernels (RMSNorm, RoPE, SwiGLU, fused linear cross-entropy) patched into the model;
- `liger+dropout0`: both.
Our trainers (SFT and DPO through cai_bootstrap.training on a saved random model folder, batch 8 of
256 + 256 tokens): defaults against `liger_kernels: true` with `lora.dropout: 0`.
"""

from __future__ import annotations

import argparse
import json
import time
import traceback
from pathlib import Path

import torch
from gen import greedy_gaps
from shapes import PAD, build_model, counts, decode_bound_tps, random_ids
from timer import DATASHEET_BF16, copy_bandwidth, median, repeat, timed
from train import bench_sft, train_flops


def decode_levers(model, c, batch: int, prompt: int, new: int, bw: float) -> dict:
    from cai_bootstrap.engines.fastdecode import FastDecoder

    ids = random_ids(batch, prompt, seed=batch).cuda()
    mask = torch.ones_like(ids)
    bound = decode_bound_tps(c, batch, prompt, new, bw)
    out = {"batch": batch, "bound_tokens_per_s": bound}
    for label, compile_step in (("ours", False), ("ours+compile", True)):
        try:
            dec = FastDecoder(model)
            if compile_step:
                dec.step_model = torch.compile(model, dynamic=False)
            first, _ = timed(lambda dec=dec: dec.generate_ids(ids, mask, new, pad_id=PAD))
            pre, _ = repeat(lambda dec=dec: dec.generate_ids(ids, mask, 1, pad_id=PAD), warmup=1, reps=3)
            times, outs = repeat(lambda dec=dec: dec.generate_ids(ids, mask, new, pad_id=PAD), 0, 3)
            decode_s = median(times) - median(pre)
            out[label] = {
                "first_call_s": first,
                "times": times,
                "prefill_s": median(pre),
                "ms_per_step": 1000 * decode_s / (new - 1),
                "pct_bound_decode": 100 * batch * (new - 1) / decode_s / bound,
            }
            out[label]["greedy_check"] = greedy_gaps(model, ids, outs[0])
        except Exception as e:  # recorded; the other levers still run
            traceback.print_exc()
            out[label] = {"error": f"{type(e).__name__}: {e}"[:1500]}
        print(label, out[label], flush=True)
    out["profile"] = profile_eager_step(model, ids, mask)
    return out


def profile_eager_step(model, ids, mask, steps: int = 8) -> dict:
    """Kernel time of eager decode steps (no graph), grouped by kernel name."""
    from torch.profiler import ProfilerActivity, profile

    from cai_bootstrap.engines.fastdecode import FastDecoder

    dec = FastDecoder(model)
    dec.use_graphs = False
    dec.generate_ids(ids, mask, 4, pad_id=PAD)
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        dec.generate_ids(ids, mask, steps + 1, pad_id=PAD)
        torch.cuda.synchronize()
    rows = []
    for e in prof.key_averages():
        dt = getattr(e, "device_time_total", None) or getattr(e, "cuda_time_total", 0)
        if dt > 0:
            rows.append((e.key, dt, e.count))
    rows.sort(key=lambda r: -r[1])
    total = sum(r[1] for r in rows)
    return {
        "steps": steps,
        "kernel_us_per_step_incl_prefill": total / steps,
        "top": [{"kernel": k[:90], "us_total": round(t), "count": n} for k, t, n in rows[:25]],
    }


VARIANTS = (("default", False, 0.05), ("liger+dropout0", True, 0.0))  # (label, liger_kernels, lora dropout)


def trainer_levers(
    model_dir: Path,
    work: Path,
    c,
    peak: float,
    steps: int = 10,
    batch: int = 8,
    variants=VARIANTS,
    dpo_precompute: bool = True,
) -> dict:
    """Our TRL trainers (build_sft_trainer / build_dpo_trainer, as run_sft / run_dpo train) on a saved
    random model folder: defaults against liger_kernels with LoRA dropout 0. Text is decoded from
    random ids with the folder's tokenizer; MFU counts the real (unpadded) tokens. Under `accelerate
    launch` each process times its own steps (benchmarks/multigpu.py throughput)."""
    from transformers import AutoTokenizer
    from trl_bench import StepTimer, _dpo_args, _n_lora, _sft_args

    from cai_bootstrap.records import PreferencePair, SFTExample
    from cai_bootstrap.training.config import DPOSettings, LoraSettings, SFTSettings
    from cai_bootstrap.training.dpo import build_dpo_trainer
    from cai_bootstrap.training.sft import build_sft_trainer

    tok = AutoTokenizer.from_pretrained(model_dir)
    ids = random_ids(batch * steps, 768, seed=9).tolist()
    sft, pairs, lengths = [], [], []
    for i, r in enumerate(ids):
        p, c1, c2 = tok.decode(r[:256]), tok.decode(r[256:512]), tok.decode(r[512:])
        lengths.append((len(tok(p + c1).input_ids), len(tok(p + c2).input_ids)))
        sft.append(SFTExample(id=f"s{i}", prompt=p, completion=c1, instruction_id=f"i{i}"))
        pairs.append(
            PreferencePair(
                id=f"p{i}", prompt=p, chosen=c1, rejected=c2, instruction_id=f"i{i}",
                chosen_id=f"c{i}", rejected_id=f"r{i}", reason="benchmark",
            )
        )  # fmt: skip
    sft_tokens = sum(a for a, _ in lengths) / len(lengths)
    dpo_tokens = sum(a + b for a, b in lengths) / len(lengths)
    out: dict = {"mean_sft_tokens": sft_tokens, "mean_pair_tokens": dpo_tokens}
    common = dict(batch_size=batch, max_length=1024, epochs=1, logging_steps=1, save_steps=100000, bf16=True)
    for label, liger, dropout in variants:
        lora, notes, res = LoraSettings(dropout=dropout), [], {}
        try:
            for kind in ("sft", "dpo"):
                if kind == "sft":
                    cfg = SFTSettings(**common, liger_kernels=liger)
                    args = _sft_args(cfg, work / label / kind, notes)
                else:
                    cfg = DPOSettings(
                        **common,
                        eval_fraction=0.0,
                        liger_kernels=liger,
                        precompute_ref_log_probs=dpo_precompute,
                    )
                    args = _dpo_args(cfg, work / label / kind, notes)
                args.max_steps = steps
                timer = StepTimer()
                build = build_sft_trainer if kind == "sft" else build_dpo_trainer
                extra = () if kind == "sft" else (None,)
                data = sft if kind == "sft" else pairs
                t0 = time.perf_counter()
                trainer = build(
                    cfg, lora, data, model_dir, *extra, work / label / kind, "bfloat16", [timer], args
                )
                setup = time.perf_counter() - t0
                trainer.train()
                t = median(timer.times[2:])
                tokens = batch * (sft_tokens if kind == "sft" else dpo_tokens)
                rows_seq = (batch, sft_tokens) if kind == "sft" else (2 * batch, dpo_tokens / 2)
                flops = train_flops(c, _n_lora(trainer), rows_seq[0], int(rows_seq[1]), False)
                res[kind] = {
                    "step_times": timer.times,
                    "step_s": t,
                    "setup_s": setup,
                    "tokens_per_s": tokens / t,
                    "mfu": flops / t / peak,
                    "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30,
                }
                print(label, kind, {k: v for k, v in res[kind].items() if k != "step_times"}, flush=True)
                del trainer
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
            res["dpo_over_sft"] = res["dpo"]["step_s"] / res["sft"]["step_s"]
        except Exception as e:  # recorded; the other variant still runs
            traceback.print_exc()
            res["error"] = f"{type(e).__name__}: {e}"[:1500]
        res["notes"] = notes
        out[label] = res
    return out


def training_levers(name: str, c, peak: float) -> dict:
    from train import lora_model

    out = {}
    for label in ("plain", "dropout0", "liger", "liger+dropout0"):
        try:
            model = build_model(name)
            if label.startswith("liger"):
                from liger_kernel.transformers import apply_liger_kernel_to_qwen2

                apply_liger_kernel_to_qwen2(model=model)
            pm = lora_model(model, dropout=0.0 if label.endswith("dropout0") else 0.05)
            r = bench_sft(pm, c, batch=8, seq=512, recompute=False, peak=peak)
            out[label] = r
            print(label, {k: v for k, v in r.items() if k != "times"}, flush=True)
            del pm, model
        except Exception as e:  # recorded; the other levers still run
            traceback.print_exc()
            out[label] = {"error": f"{type(e).__name__}: {e}"[:1500]}
        torch.cuda.empty_cache()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="7b")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--skip", default="", help="decode,train,trainers")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    res = {"device": torch.cuda.get_device_name(0), "model": args.model}
    res["copy_bw"] = bw = copy_bandwidth()
    if "decode" not in args.skip:
        model = build_model(args.model)
        c = counts(model, args.model)
        res["decode"] = decode_levers(model, c, args.batch, 256, 256, bw)
        del model
        torch.cuda.empty_cache()
        args.out.write_text(json.dumps(res, indent=1, default=str))
    model = build_model(args.model)
    c = counts(model, args.model)
    del model
    torch.cuda.empty_cache()
    if "train" not in args.skip:
        res["train"] = training_levers(args.model, c, DATASHEET_BF16)
        args.out.write_text(json.dumps(res, indent=1, default=str))
    if "trainers" not in args.skip:
        import subprocess
        import sys

        folder = Path(f"/tmp/m{args.model}")
        here = Path(__file__).parent
        cmd = [sys.executable, str(here / "random_model.py"), "--shape", args.model, "--out", str(folder)]
        subprocess.run(cmd, check=True)
        res["trainers"] = trainer_levers(folder, Path("/tmp/levers-work"), c, DATASHEET_BF16)
    args.out.write_text(json.dumps(res, indent=1, default=str))
    for k in ("ours", "ours+compile"):
        d = res.get("decode", {}).get(k, {})
        print(k, "pct_bound", d.get("pct_bound_decode"), "ms/step", d.get("ms_per_step"), d.get("error", ""))
    for k, d in res.get("train", {}).items():
        print("train", k, "mfu", d.get("mfu"), "step_s", d.get("step_s"), d.get("error", ""))
    for k, d in res.get("trainers", {}).items():
        if isinstance(d, dict):
            for kind in ("sft", "dpo"):
                print("trainer", k, kind, "mfu", d.get(kind, {}).get("mfu"), d.get("error", ""))
            print("trainer", k, "dpo/sft", d.get("dpo_over_sft"))


if __name__ == "__main__":
    main()
