"""What compiling our decode step costs and saves over a stage-like sequence of calls (run 9).

    PYTHONPATH=src python3 benchmarks/compile_cost.py --model 7b --out $OUT/compile.json

A stage calls the engine with many shapes: full and remainder batches, and prompts of different
lengths (evaluation, answers, 1.5k-token critique prompts), so the decode step passes through many
cache-length buckets. Each variant below runs the same SEQUENCE twice on one FastDecoder: the first
pass pays every compile and capture, the second is steady; their difference is the compile cost.
Then the steady rate at batch 64 (256-token prompt, 256 new tokens, greedy) against the bound.

Variants, in this order (Liger last: its patch is not undone):
- eager: FastDecoder as the pipeline runs it by default;
- compile: torch.compile(dynamic=False) as FastDecoder.step_model (what model.compile_decode did
  until this run): one compile per shape;
- compile-dynamic: torch.compile(dynamic=True): symbolic batch and cache length;
- compile-dynamic, reload: the same after torch._dynamo.reset(), as after a new model load in the
  same process (inductor's on-disk caches are warm);
- liger: Liger's Triton RMSNorm, RoPE and SwiGLU patched into the model, eager step in our graphs.
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
from timer import copy_bandwidth, median, repeat, timed

# (batch, prompt length): two batch sizes, prompts of a short evaluation and a long critique.
SEQUENCE = [(64, 200), (40, 200), (64, 330), (40, 330), (64, 1500), (40, 1500)]
NEW = 256


def decoder(model, variant: str):
    from cai_bootstrap.engines.fastdecode import FastDecoder

    dec = FastDecoder(model)
    if variant == "compile":
        dec.step_model = torch.compile(model, dynamic=False)
    elif variant.startswith("compile-dynamic"):
        dec.step_model = torch.compile(model, dynamic=True)
    return dec


def sequence_pass(dec) -> list[float]:
    times = []
    for batch, prompt in SEQUENCE:
        ids = random_ids(batch, prompt, seed=batch + prompt).cuda()
        t, _ = timed(lambda ids=ids: dec.generate_ids(ids, torch.ones_like(ids), NEW, pad_id=PAD))
        times.append(t)
    return times


def steady(dec, model, c, bw: float, batch: int = 64, prompt: int = 256) -> dict:
    ids = random_ids(batch, prompt, seed=7).cuda()
    mask = torch.ones_like(ids)
    first, _ = timed(lambda: dec.generate_ids(ids, mask, NEW, pad_id=PAD))
    pre, _ = repeat(lambda: dec.generate_ids(ids, mask, 1, pad_id=PAD), warmup=1, reps=3)
    times, outs = repeat(lambda: dec.generate_ids(ids, mask, NEW, pad_id=PAD), 0, 3)
    decode_s = median(times) - median(pre)
    bound = decode_bound_tps(c, batch, prompt, NEW, bw)
    return {
        "first_call_s": first,
        "ms_per_step": 1000 * decode_s / (NEW - 1),
        "pct_bound_decode": 100 * batch * (NEW - 1) / decode_s / bound,
        "greedy_check": greedy_gaps(model, ids, outs[0]),
    }


def run_variant(model, c, bw: float, variant: str) -> dict:
    if variant == "liger":
        from liger_kernel.transformers import apply_liger_kernel_to_qwen2

        apply_liger_kernel_to_qwen2(
            model=model, rope=True, rms_norm=True, swiglu=True, cross_entropy=False,
            fused_linear_cross_entropy=False,
        )  # fmt: skip
    if variant.endswith("reload"):
        torch._dynamo.reset()
    dec = decoder(model, variant)
    t0 = time.perf_counter()
    first = sequence_pass(dec)
    second = sequence_pass(dec)
    res = {
        "first_pass_s": first,
        "second_pass_s": second,
        "compile_and_capture_s": sum(first) - sum(second),
        "steady_pass_s": sum(second),
    }
    res["steady"] = steady(dec, model, c, bw)
    res["wall_s"] = time.perf_counter() - t0
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="7b")
    ap.add_argument("--variants", default="eager,compile,compile-dynamic,compile-dynamic-reload,liger")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    res = {"device": torch.cuda.get_device_name(0), "model": args.model, "sequence": SEQUENCE, "new": NEW}
    res["copy_bw"] = bw = copy_bandwidth()
    res["recompile_limit"] = getattr(torch._dynamo.config, "recompile_limit", None) or getattr(
        torch._dynamo.config, "cache_size_limit", None
    )
    model = build_model(args.model)
    c = counts(model, args.model)
    for variant in args.variants.split(","):
        try:
            res[variant] = run_variant(model, c, bw, variant)
        except Exception as e:  # recorded; the other variants still run
            traceback.print_exc()
            res[variant] = {"error": f"{type(e).__name__}: {e}"[:1500]}
        print(variant, json.dumps(res[variant], default=str), flush=True)
        args.out.write_text(json.dumps(res, indent=1, default=str))
    print(f"{'variant':24} {'compile s':>10} {'steady pass s':>14} {'ms/step':>8} {'% bound':>8}")
    for v in args.variants.split(","):
        d = res[v]
        if "error" in d:
            print(f"{v:24} error {d['error'][:80]}")
            continue
        s = d["steady"]
        print(
            f"{v:24} {d['compile_and_capture_s']:10.1f} {d['steady_pass_s']:14.1f} "
            f"{s['ms_per_step']:8.2f} {s['pct_bound_decode']:8.1f}"
        )


if __name__ == "__main__":
    main()
