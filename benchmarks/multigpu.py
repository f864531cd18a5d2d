"""Issue 19's multi-GPU checks, for a host with two or more GPUs (prepared; see benchmarks/README.md).

    python3 benchmarks/multigpu.py compare --model DIR --gpus 2 --out $OUT/compare.json
    accelerate launch --config_file configs/accelerate/fsdp.yaml --num_processes 2 \\
        benchmarks/multigpu.py throughput --model /tmp/m7b --label fsdp --out $OUT/tp-fsdp.json
    python3 benchmarks/multigpu.py generate --model DIR --gpus 2 --out $OUT/generate.json

compare: LoRA SFT then DPO (on the SFT adapter) on one GPU and under each accelerate config on `--gpus`
GPUs, same global batch, float32, through `python -m cai_bootstrap.training.launch`; per-step losses
against the one-GPU run, next to the gap between two one-GPU runs that differ only in how the batch is
cut (batch 2B vs B with 2 accumulation steps): that gap is the floor any split of the batch must meet.
Each DPO adapter is merged and loaded, and its greedy answers compared with the one-GPU model's.
throughput: our SFT and DPO trainers on a random-weight model folder, tokens/s and MFU per GPU
(levers.trainer_levers, as BENCHMARKS.md run 8); run it once plainly for the one-GPU figure.
generate: greedy answers from one HF engine process per GPU, items sharded by a hash of their id, merged
back in item order, against one process on one GPU: ids, order and text, and the speed-up.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs" / "accelerate"
TOPICS = ["the sea", "bread", "a bicycle", "winter", "a library", "rivers", "tea", "a small town"]
TASKS = ["Write two sentences about {}.", "List three facts about {}.", "Describe {} in one line.",
         "Give a short title for a story about {}."]  # fmt: skip


def instructions(n: int) -> list[tuple[str, str]]:
    """n (id, instruction) rows, the same on every call."""
    rows = [t.format(topic) for topic in TOPICS for t in TASKS]
    return [(f"q{i:04d}", f"{rows[i % len(rows)]} Answer number {i}.") for i in range(n)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _write_data(work: Path, n: int) -> tuple[Path, Path]:
    from cai_bootstrap.records import PreferencePair, SFTExample
    from cai_bootstrap.store import write_jsonl
    from cai_bootstrap.tasks import frame

    sft, pairs = [], []
    for i, (qid, text) in enumerate(instructions(n)):
        prompt, good, bad = frame.prompt(text), f"Here is my answer {i}: it is short and clear.", "No."
        sft.append(
            SFTExample(id=f"s{qid}", instruction_id=qid, prompt=prompt, completion=frame.completion(good))
        )
        pairs.append(
            PreferencePair(
                id=f"p{qid}", prompt=prompt, chosen=frame.completion(good), rejected=frame.completion(bad),
                instruction_id=qid, chosen_id=f"c{qid}", rejected_id=f"r{qid}", reason="benchmark",
            )
        )  # fmt: skip
    work.mkdir(parents=True, exist_ok=True)
    write_jsonl(work / "sft.jsonl", sft)
    write_jsonl(work / "pairs.jsonl", pairs)
    return work / "sft.jsonl", work / "pairs.jsonl"


def _job(
    kind: str, model: Path, data: Path, out: Path, batch: int, accum: int, sft_adapter: Path | None
) -> Path:
    settings = {"epochs": 2, "batch_size": batch, "grad_accum": accum, "logging_steps": 1, "save_steps": 1000,
                "max_length": 512, "bf16": False, "warmup_ratio": 0.0}  # fmt: skip
    job = {"settings": settings, "lora": {"r": 16}, "base_model": str(model), "out_dir": str(out),
           "dtype": "float32", "force": True}  # fmt: skip
    if kind == "sft":
        job["examples_path"] = str(data)
    else:
        job.update(pairs_path=str(data), sft_adapter=str(sft_adapter))
        # precompute fails across processes (training/launch.py); off everywhere so all runs compute alike
        settings |= {"eval_fraction": 0.0, "precompute_ref_log_probs": False}
    path = out.with_suffix(".json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(job))
    return path


def _train(kind: str, job: Path, config: str | None, gpus: int) -> dict:
    from cai_bootstrap.training.launch import accelerate_command

    if config is None:
        cmd = [sys.executable, "-m", "cai_bootstrap.training.launch", kind, "--config", str(job)]
    else:
        cmd = accelerate_command(kind, job, CONFIGS / f"{config}.yaml", gpus, free_port())
    env = os.environ | {"CUDA_VISIBLE_DEVICES": ",".join(map(str, range(gpus)))}
    t0 = time.perf_counter()
    res = subprocess.run([*cmd, "--quiet"], capture_output=True, text=True, env=env)
    out = {"cmd": " ".join(cmd), "rc": res.returncode, "wall_s": round(time.perf_counter() - t0, 1)}
    if res.returncode:
        return out | {"stderr_tail": res.stderr[-3000:]}
    out["result"] = json.loads(res.stdout.strip().splitlines()[-1])
    metrics = Path(out["result"]["adapter"]).parent / "metrics.jsonl"
    out["losses"] = [r["loss"] for r in map(json.loads, metrics.read_text().splitlines()) if "loss" in r]
    return out


def _gap(a: list[float], b: list[float]) -> float | None:
    """Largest relative per-step loss difference (None when the runs logged different step counts)."""
    if not a or len(a) != len(b):
        return None
    return max(abs(x - y) / max(abs(y), 1e-8) for x, y in zip(a, b, strict=True))


def _greedy(model: Path, adapter: Path, out: Path, device: str) -> list[str]:
    """Merge `adapter` into `model` (float32), load the merged folder and answer 8 prompts greedily."""
    from cai_bootstrap.engines import Sampling
    from cai_bootstrap.engines.hf import HFEngine
    from cai_bootstrap.tasks import frame
    from cai_bootstrap.training.merge import merge_adapter

    merged = merge_adapter(model, adapter, out, lineage={"benchmark": "multigpu compare"})
    engine = HFEngine.from_path(merged, dtype="float32", device=device, batch_size=8)
    prompts = [frame.prompt(t) for _, t in instructions(8)]
    answers = engine.generate(prompts, Sampling(max_new_tokens=48, stop=frame.STOP))
    return [getattr(a[0], "text", a[0]) for a in answers]  # str, or a Completion where engines return one


def compare(args) -> dict:
    """Runs named in --configs (1gpu, 1gpu_accum, or configs/accelerate names), added to --out if it
    exists, so the runs can be spread over several device calls; the gaps are recomputed each time."""
    sft_data, pairs = _write_data(args.work, args.items)
    b, g = args.batch, args.gpus
    res: dict = {"gpus": g, "per_device_batch": b, "items": args.items, "runs": {}}
    if args.out.exists():
        res = json.loads(args.out.read_text())
    for name in args.configs.split(","):
        config, n, batch, accum = {"1gpu": (None, 1, g * b, 1), "1gpu_accum": (None, 1, b, g)}.get(
            name, (name, g, b, 1)
        )
        r = res["runs"][name] = {}
        sft_out, dpo_out = args.work / name / "sft", args.work / name / "dpo"
        r["sft"] = _train("sft", _job("sft", args.model, sft_data, sft_out, batch, accum, None), config, n)
        job = _job("dpo", args.model, pairs, dpo_out, batch, accum, sft_out / "adapter")
        r["dpo"] = _train("dpo", job, config, n) if r["sft"]["rc"] == 0 else {"skipped": "SFT failed"}
        if r["dpo"].get("rc") == 0 and name != "1gpu_accum":
            try:
                r["greedy"] = _greedy(
                    args.model, dpo_out / "adapter", args.work / name / "merged", args.device
                )
            except Exception as e:  # recorded; the other configs still run
                r["greedy_error"] = f"{type(e).__name__}: {e}"[:1000]
        args.out.write_text(json.dumps(res, indent=1))
    ref = res["runs"].get("1gpu", {})
    for r in res["runs"].values():
        for kind in ("sft", "dpo"):
            r[f"{kind}_max_rel_gap"] = _gap(r[kind].get("losses", []), ref.get(kind, {}).get("losses", []))
        r["greedy_equal"] = "greedy" in r and r["greedy"] == ref.get("greedy")
    args.out.write_text(json.dumps(res, indent=1))
    return res


def throughput(args) -> dict:
    """Run under `accelerate launch` (or plainly for one GPU); rank 0 writes the JSON."""
    import torch
    from levers import VARIANTS, trainer_levers
    from shapes import counts
    from timer import DATASHEET_BF16
    from transformers import AutoConfig, AutoModelForCausalLM

    with torch.device("meta"):  # parameter counts without memory
        shape = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(args.model))
    c = counts(shape, args.shape)
    variants = [v for v in VARIANTS if v[0] in args.variants.split(",")]
    # DPO without the reference precompute, which fails across processes (training/launch.py): each
    # step runs the reference forward too, so DPO here is slower per step than BENCHMARKS.md run 8.
    res = trainer_levers(args.model, args.work, c, DATASHEET_BF16, args.steps, args.batch, variants, False)
    out = {"label": args.label, "world_size": int(os.environ.get("WORLD_SIZE", "1")),
           "device": torch.cuda.get_device_name(0), "per_gpu": res}  # fmt: skip
    if os.environ.get("RANK", "0") == "0":
        args.out.write_text(json.dumps(out, indent=1, default=str))
    return out


def _shard(item_id: str, world: int) -> int:
    return int(hashlib.sha256(item_id.encode()).hexdigest()[:8], 16) % world


def gen_worker(args) -> None:
    """One engine process on its one visible GPU: the items of shard `rank`, greedy, to JSONL."""
    from cai_bootstrap.engines import Sampling
    from cai_bootstrap.engines.hf import HFEngine
    from cai_bootstrap.tasks import frame

    t0 = time.perf_counter()
    engine = HFEngine.from_path(args.model, dtype=args.dtype, device=args.device, batch_size=args.batch)
    mine = [(i, t) for i, t in instructions(args.items) if _shard(i, args.world) == args.rank]
    loaded = time.perf_counter()
    answers = engine.generate(
        [frame.prompt(t) for _, t in mine], Sampling(max_new_tokens=args.new, stop=frame.STOP)
    )
    texts = [getattr(a[0], "text", a[0]) for a in answers]
    done = time.perf_counter()
    rows = [
        {"id": i, "text": x, "tokens": engine.count_tokens(x)} for (i, _), x in zip(mine, texts, strict=True)
    ]
    (args.work / f"w{args.world}-r{args.rank}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    timing = {"items": len(rows), "load_s": loaded - t0, "generate_s": done - loaded}
    (args.work / f"w{args.world}-r{args.rank}.json").write_text(json.dumps(timing))


def _fan_out(args, world: int) -> tuple[list[dict], list[dict]]:
    procs = []
    for rank in range(world):
        cmd = [sys.executable, __file__, "gen-worker", "--rank", str(rank), "--world", str(world)]
        cmd += ["--model", str(args.model), "--work", str(args.work), "--items", str(args.items)]
        cmd += [
            "--batch",
            str(args.batch),
            "--new",
            str(args.new),
            "--dtype",
            args.dtype,
            "--device",
            args.device,
        ]
        procs.append(subprocess.Popen(cmd, env=os.environ | {"CUDA_VISIBLE_DEVICES": str(rank)}))
    if any(p.wait() for p in procs):
        raise SystemExit(f"a generation worker failed (world {world})")
    rows = [
        json.loads(x)
        for r in range(world)
        for x in (args.work / f"w{world}-r{r}.jsonl").read_text().splitlines()
    ]
    by_id = {r["id"]: r for r in rows}
    merged = [by_id[i] for i, _ in instructions(args.items) if i in by_id]  # back in item order
    timings = [json.loads((args.work / f"w{world}-r{r}.json").read_text()) for r in range(world)]
    return merged, timings


def generate(args) -> dict:
    args.work.mkdir(parents=True, exist_ok=True)
    one, t1 = _fan_out(args, 1)
    many, tn = _fan_out(args, args.gpus)
    ids = [i for i, _ in instructions(args.items)]
    differ = [a["id"] for a, b in zip(one, many, strict=False) if a["text"] != b["text"]]
    tokens = sum(r["tokens"] for r in one)
    res = {
        "items": args.items, "gpus": args.gpus, "dtype": args.dtype, "batch": args.batch,
        "ids_and_order_equal": [r["id"] for r in one] == ids == [r["id"] for r in many],
        "text_equal": len(differ) == 0 and len(one) == len(many), "differing_ids": differ,
        "one_gpu": {"generate_s": t1[0]["generate_s"], "tokens_per_s": tokens / t1[0]["generate_s"]},
        # The slowest shard sets the wall time of a data-parallel step.
        "n_gpus": {"generate_s": max(t["generate_s"] for t in tn), "per_shard": tn},
    }  # fmt: skip
    res["n_gpus"]["tokens_per_s"] = sum(r["tokens"] for r in many) / res["n_gpus"]["generate_s"]
    res["speedup"] = res["n_gpus"]["tokens_per_s"] / res["one_gpu"]["tokens_per_s"]
    args.out.write_text(json.dumps(res, indent=1))
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=["compare", "throughput", "generate", "gen-worker"])
    ap.add_argument(
        "--model", type=Path, required=True, help="model folder (embedded safetensors or random 7B)"
    )
    ap.add_argument("--out", type=Path, default=Path("multigpu.json"))
    ap.add_argument("--work", type=Path, default=Path("/tmp/multigpu"))
    ap.add_argument("--gpus", type=int, default=2)
    ap.add_argument(
        "--configs", default="1gpu,1gpu_accum,ddp,fsdp,deepspeed_zero2", help="compare: runs, in order"
    )
    ap.add_argument(
        "--items", type=int, default=64, help="compare: SFT examples and pairs; generate: prompts"
    )
    ap.add_argument("--batch", type=int, default=8, help="per-device train batch, or generation batch")
    ap.add_argument("--label", default="1gpu", help="throughput: name of the config it ran under")
    ap.add_argument("--shape", default="7b", help="throughput: benchmarks/shapes.py shape of --model")
    ap.add_argument("--steps", type=int, default=10, help="throughput: optimizer steps per trainer")
    ap.add_argument("--variants", default="default", help="throughput: default and/or liger+dropout0")
    ap.add_argument("--new", type=int, default=128, help="generate: max new tokens")
    ap.add_argument("--dtype", default="bfloat16", help="generate: weight dtype")
    ap.add_argument(
        "--device", default="cuda", help="compare/generate: cpu runs the logic on a CPU (smoke test)"
    )
    ap.add_argument("--rank", type=int, default=0)
    ap.add_argument("--world", type=int, default=1)
    args = ap.parse_args()
    run = {"compare": compare, "throughput": throughput, "generate": generate, "gen-worker": gen_worker}
    res = run[args.what](args)
    if res is not None and os.environ.get("RANK", "0") == "0":
        print(json.dumps(res, indent=1, default=str)[-6000:])


if __name__ == "__main__":
    main()
