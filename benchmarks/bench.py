"""Throughput of generation, scoring and LoRA training on random-weight Qwen2.5 shapes (GPU only).

    PYTHONPATH=src python3 benchmarks/bench.py --model 0.5b --gen-batches 64,256 --trl --out $OUT/bench.json

Every section is timed after warm-up with the device synchronised, median of repeats; a section
that fails records its error in the JSON (and the traceback on stderr) and the rest still run.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import tempfile
import traceback
from pathlib import Path

import torch
from gen import run_generation
from score import bench_forward, bench_logprobs
from shapes import build_model, counts, word_tokenizer
from timer import DATASHEET_BF16, Deadline, copy_bandwidth, matmul_rate


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=["0.5b", "7b"], required=True)
    p.add_argument("--gen-batches", default="64", help="comma-separated batch sizes")
    p.add_argument(
        "--paths",
        default="engine,static,graph",
        help="generation paths beside plain: stop,engine,static,graph,ours,ours_sample,ours_stop",
    )
    p.add_argument("--prompt", type=int, default=256)
    p.add_argument("--new", type=int, default=256)
    p.add_argument("--score-batch", type=int, default=16)
    p.add_argument("--train-batch", type=int, default=8)
    p.add_argument("--train-seq", type=int, default=512)
    p.add_argument("--dpo-checkpointing", action="store_true", help="DPO/SFT comparison with recompute")
    p.add_argument("--trl", action="store_true", help="also time cai_bootstrap.training's trainers")
    p.add_argument("--skip", default="", help="comma-separated sections to skip: gen,score,train")
    p.add_argument("--budget-s", type=float, default=540)
    p.add_argument("--reserve-s", type=float, default=90, help="kept for the sections after generation")
    p.add_argument("--out", type=Path, required=True)
    return p.parse_args()


def _env() -> dict:
    import peft
    import transformers

    props = torch.cuda.get_device_properties(0)
    info = {
        "device": torch.cuda.get_device_name(0),
        "sms": props.multi_processor_count,
        "memory_gib": props.total_memory / 2**30,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "python": platform.python_version(),
    }
    try:
        import trl

        info["trl"] = trl.__version__
    except ImportError as e:
        info["trl"] = f"not importable: {e}"
    return info


class Results:
    def __init__(self, path: Path):
        self.path, self.data = path, {}

    def section(self, key: str, fn):
        """Run one section; its result (or its error) is saved at once so a later crash loses nothing."""
        print(f"== {key}", flush=True)
        try:
            self.data[key] = fn()
        except Exception as e:  # a failed section is recorded as failed and reported, not hidden
            traceback.print_exc()
            self.data[key] = {"error": f"{type(e).__name__}: {e}"[:2000]}
            torch.cuda.empty_cache()
        self.save()
        return self.data[key]

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.data, indent=2, default=str))


def _ceilings() -> dict:
    return {"copy_bw": copy_bandwidth(), "matmul_8192": matmul_rate()}


def main() -> None:
    a = _args()
    skip = set(filter(None, a.skip.split(",")))
    deadline = Deadline(a.budget_s)
    gen_deadline = Deadline(a.budget_s - a.reserve_s)
    res = Results(a.out)
    res.data["args"] = {k: str(v) for k, v in vars(a).items()}
    res.section("env", _env)
    ceil = res.section("ceilings", _ceilings)
    torch.cuda.empty_cache()
    peak = DATASHEET_BF16
    model = build_model(a.model)
    tok = word_tokenizer()
    c = counts(model, a.model)
    res.data["counts"] = vars(c) | {"weight_bytes_per_step": c.weight_bytes_per_step}
    if "score" not in skip:
        seq = a.prompt + a.new
        res.section("forward", lambda: bench_forward(model, c, a.score_batch, seq, peak))
        res.section(
            "logprobs",
            lambda: bench_logprobs(model, tok, c, 4 * a.score_batch, a.score_batch, a.prompt, a.new, peak),
        )
    if "gen" not in skip:
        for b in [int(x) for x in a.gen_batches.split(",")]:
            paths = set(a.paths.split(","))
            res.section(
                f"gen_b{b}",
                lambda b=b, paths=paths: run_generation(
                    model, tok, c, b, a.prompt, a.new, paths, ceil["copy_bw"], gen_deadline
                ),
            )
    model_dir = Path(tempfile.mkdtemp()) / "model"
    if a.trl:
        model.save_pretrained(model_dir)
        tok.save_pretrained(model_dir)
    if "train" not in skip:
        _train_sections(res, model, c, a, peak)
    model = None  # the TRL trainers load their own copy from model_dir
    gc.collect()
    torch.cuda.empty_cache()
    if a.trl and deadline.allows(60):
        from trl_bench import bench_trl

        work = Path(tempfile.mkdtemp())
        res.section("trl", lambda: bench_trl(model_dir, work, c, a.train_batch, 12, a.prompt, a.new, peak))
    res.data["time_left_s"] = deadline.left()
    res.save()
    print_table(res.data, a.model)


def _train_sections(res: Results, model, c, a, peak) -> None:
    from train import bench_dpo, bench_sft, lora_model

    pm = lora_model(model)
    res.data["lora_params"] = sum(p.numel() for p in pm.parameters() if p.requires_grad)
    for on in (False, True):
        res.section(
            f"sft_gc_{'on' if on else 'off'}",
            lambda on=on: bench_sft(pm, c, a.train_batch, a.train_seq, on, peak),
        )
    half = a.train_seq // 2
    res.section("dpo", lambda: bench_dpo(pm, c, a.train_batch, half, half, a.dpo_checkpointing, peak))


OURS = ("ours", "ours_sample", "ours_stop")


def _fmt(d: dict, key: str, spec: str) -> str:
    return format(d[key], spec) if isinstance(d, dict) and key in d else "-"


def print_table(data: dict, model: str) -> None:
    print(f"\n## {model} on {data['env']['device']}  copy {data['ceilings']['copy_bw'] / 1e12:.2f} TB/s")
    print(f"{'what':34s} {'tok/s':>10s} {'%bound':>7s} {'%b dec':>7s} {'MFU':>6s} {'extra':s}")
    for key, v in data.items():
        if key.startswith("gen_b") and "error" not in v:
            for path in ("plain", "plain_stop_strings", "engine", "static_compile", "graph_loop", *OURS):
                r = v.get(path, {})
                extra = ""
                if "greedy_check" in r and "frac_exact_argmax" in r["greedy_check"]:
                    extra = f"argmax {r['greedy_check']['frac_exact_argmax']:.3f} "
                if "vs_plain" in r:
                    extra += f"rows=plain {r['vs_plain']['rows_equal']}/{r['vs_plain']['rows']}"
                if "capture_s_est" in r:
                    extra += f" capture {r['capture_s_est']:.1f}s"
                if "compile_s_est" in r:
                    extra += f" compile {r['compile_s_est']:.0f}s"
                if "skipped" in r or "error" in r:
                    extra = r.get("skipped", r.get("error", ""))[:70]
                row = f"{key} {path}"
                print(f"{row:34s} {_fmt(r, 'tokens_per_s', '10.0f')} {_fmt(r, 'pct_bound_e2e', '7.1f')} "
                      f"{_fmt(r, 'pct_bound_decode', '7.1f')} {'':>6s} {extra}")  # fmt: skip
    for key in ("forward", "logprobs", "sft_gc_off", "sft_gc_on", "dpo"):
        r = data.get(key, {})
        extra = r.get("error", "")[:60] if isinstance(r, dict) else ""
        if key == "dpo" and "dpo_over_sft" in r:
            extra = f"dpo/sft {r['dpo_over_sft']:.2f}"
        print(
            f"{key:34s} {_fmt(r, 'tokens_per_s', '10.0f')} {'':>7s} {'':>7s} {_fmt(r, 'mfu', '6.1%')} {extra}"
        )
    trl = data.get("trl", {})
    for key in ("sft", "dpo"):
        r = trl.get(key, {})
        print(f"{'trl ' + key:34s} {_fmt(r, 'tokens_per_s', '10.0f')} {'':>7s} {'':>7s} {_fmt(r, 'mfu', '6.1%')} "
              f"{_fmt(r, 'step_s', '.3f')}s/step {trl.get('error', '')[:60]}")  # fmt: skip


if __name__ == "__main__":
    main()
