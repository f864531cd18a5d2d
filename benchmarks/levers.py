"""Levers for the two goals still missed (BENCHMARKS.md): 7B decode at >= 50% of the bandwidth bound
and LoRA training at >= 40% MFU. Each lever is timed against the current path in the same run.

    PYTHONPATH=src python3 benchmarks/levers.py --out $OUT/levers.json

Decode (batch 64, 256-token prompts, 256 new tokens, greedy, median of 3):
- `ours`: engines/fastdecode.py as the pipeline runs it;
- `ours+compile`: the same loop with the decode step through torch.compile before our capture
  (FastDecoder(compile_step=True)); its first call includes the compiles;
- a profile of the eager step: which kernels take the time, and their sum against the graph's step.
Training (LoRA r=16 all-linear, batch 8 x 512, checkpointing off, median of 5 steps):
- `plain`: PEFT as benchmarks/train.py times it (lora_dropout 0.05);
- `dropout0`: lora_dropout 0, so PEFT skips the dropout on each adapter's input;
- `liger`: Liger kernels (RMSNorm, RoPE, SwiGLU, fused linear cross-entropy) patched into the model;
- `liger+dropout0`: both.
"""

from __future__ import annotations

import argparse
import json
import traceback
from pathlib import Path

import torch
from shapes import PAD, build_model, counts, decode_bound_tps, random_ids
from timer import DATASHEET_BF16, copy_bandwidth, median, repeat, timed
from train import bench_sft


def decode_levers(model, c, batch: int, prompt: int, new: int, bw: float) -> dict:
    from cai_bootstrap.engines.fastdecode import FastDecoder

    ids = random_ids(batch, prompt, seed=batch).cuda()
    mask = torch.ones_like(ids)
    bound = decode_bound_tps(c, batch, prompt, new, bw)
    out = {"batch": batch, "bound_tokens_per_s": bound}
    for label, compile_step in (("ours", False), ("ours+compile", True)):
        try:
            dec = FastDecoder(model, compile_step=compile_step)
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
            if compile_step:
                ref = out["ours"].get("_tokens")
                out[label]["rows_equal_ours"] = (
                    int((outs[0] == ref).all(-1).sum()) if ref is not None else None
                )
            else:
                out[label]["_tokens"] = outs[0]
        except Exception as e:  # recorded; the other levers still run
            traceback.print_exc()
            out[label] = {"error": f"{type(e).__name__}: {e}"[:1500]}
        print(label, {k: v for k, v in out[label].items() if k != "_tokens"}, flush=True)
    out.get("ours", {}).pop("_tokens", None)
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
    ap.add_argument("--skip", default="", help="decode,train")
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
    if "train" not in args.skip:
        model = build_model(args.model)
        c = counts(model, args.model)
        del model
        torch.cuda.empty_cache()
        res["train"] = training_levers(args.model, c, DATASHEET_BF16)
    args.out.write_text(json.dumps(res, indent=1, default=str))
    for k in ("ours", "ours+compile"):
        d = res.get("decode", {}).get(k, {})
        print(k, "pct_bound", d.get("pct_bound_decode"), "ms/step", d.get("ms_per_step"), d.get("error", ""))
    for k, d in res.get("train", {}).items():
        print("train", k, "mfu", d.get("mfu"), "step_s", d.get("step_s"), d.get("error", ""))


if __name__ == "__main__":
    main()
