"""Time a whole stage (`cai-bootstrap run`) on the GPU with a random-weight model of a real shape.

    python3 benchmarks/stage.py --shape 7b --model-dir /tmp/qwen-7b --run-dir /tmp/stage-7b \\
        --deadline-s 540 --out $OUT/stage.json

Builds the model folder once (benchmarks/random_model.py), then runs the stage recipe
`benchmarks/recipes/stage1-gpu.yaml` as a child process. The device allows 10 minutes per command, so
the child is stopped at the deadline and the next call with the same folders resumes it (the run
directory resumes by itself: finished steps are skipped, generation continues from its last chunk,
training from its last sealed checkpoint). Each call is recorded in RUN/bench_calls.json; once the
stage has finished, per-step wall times are collected from the step manifests.

Where a step was interrupted, its manifest holds only the time of the call that finished it; the
earlier call's part is the time from that call's last finished step to the stop, listed as
"interrupted" in the table. The stage's wall time is the sum of the calls' times, so it includes the
repeated model loads that resuming costs.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
RECIPE = HERE / "recipes" / "stage1-gpu.yaml"


def build_model(shape: str, model_dir: Path) -> dict:
    if not (model_dir / "random_model.json").exists():
        subprocess.run(
            [sys.executable, str(HERE / "random_model.py"), "--shape", shape, "--out", str(model_dir)],
            check=True,
        )
    return json.loads((model_dir / "random_model.json").read_text())


def run_stage(args, seconds: float) -> dict:
    """One call of `cai-bootstrap run`, stopped after `seconds`."""
    calls_file = args.run_dir / "bench_calls.json"
    calls = json.loads(calls_file.read_text()) if calls_file.exists() else []
    log_path = args.run_dir / f"bench_call{len(calls) + 1}.log"
    cmd = [sys.executable, "-m", "cai_bootstrap", "run", "--recipe", str(args.recipe)]
    cmd += ["--set", f"model.generator={args.model_dir}", "--set", f"run.run_dir={args.run_dir}"]
    for kv in args.set:
        cmd += ["--set", kv]
    start = time.time()
    with open(log_path, "w") as log:
        child = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True, text=True
        )
        # Each log line gets the seconds since the call started: the step manifests time whole steps,
        # the log shows where the time goes inside them (loads, generation, checks, saves).
        copier = threading.Thread(target=_stamp_lines, args=(child.stdout, log, start), daemon=True)
        copier.start()
        try:
            rc = child.wait(timeout=max(seconds, 1))
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)  # as a lost machine would: the run must resume
            child.wait()
            rc = None
        copier.join(timeout=5)
    call = {
        "call": len(calls) + 1,
        "started": datetime.fromtimestamp(start, UTC).isoformat(),
        "seconds": round(time.time() - start, 1),
        "rc": rc,
        "stopped_at_deadline": rc is None,
        "log": str(log_path),
    }
    calls.append(call)
    calls_file.write_text(json.dumps(calls, indent=1))
    return call


def _stamp_lines(stream, log, start: float) -> None:
    for line in stream:
        log.write(f"[{time.time() - start:7.1f}s] {line}")
        log.flush()


def step_times(run_dir: Path) -> list[dict]:
    """Every step manifest under the run directory, in the order the steps finished."""
    rows = []
    for m in run_dir.rglob("manifest.json"):
        d = json.loads(m.read_text())
        rows.append(
            {
                "step": str(m.parent.relative_to(run_dir)),
                "seconds": d.get("seconds"),
                "started": d.get("started"),
                "finished": d.get("finished"),
                "counts": d.get("counts", {}),
            }
        )
    return sorted(rows, key=lambda r: r["finished"] or "")


def interrupted(calls: list[dict], steps: list[dict]) -> list[dict]:
    """For each stopped call: the time from its last finished step (or its start) to the stop."""
    out = []
    for c in calls:
        if not c["stopped_at_deadline"]:
            continue
        start = datetime.fromisoformat(c["started"]).timestamp()
        stop = start + c["seconds"]
        done = [datetime.fromisoformat(s["finished"]).timestamp() for s in steps if s["finished"]]
        inside = [t for t in done if start <= t <= stop]
        out.append(
            {"call": c["call"], "seconds_after_last_step": round(stop - max(inside, default=start), 1)}
        )
    return out


def table(result: dict) -> str:
    lines = [f"{'step':<40} {'seconds':>9}  counts"]
    for s in result["steps"]:
        counts = ", ".join(f"{k}={v}" for k, v in s["counts"].items() if not isinstance(v, dict | list))
        lines.append(f"{s['step']:<40} {s['seconds']:>9}  {counts[:90]}")
    for i in result["interrupted"]:
        label = f"(call {i['call']}: stopped mid-step)"
        lines.append(f"{label:<40} {i['seconds_after_last_step']:>9}")
    lines.append(f"{'stage wall time, all calls':<40} {result['wall_seconds']:>9}")
    return "\n".join(lines)


def device_name() -> str:
    import torch

    return torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", required=True, help="7b, 0.5b (benchmarks/shapes.py) or tiny")
    ap.add_argument("--model-dir", type=Path, required=True)
    ap.add_argument("--run-dir", type=Path, required=True)
    ap.add_argument("--recipe", type=Path, default=RECIPE)
    ap.add_argument("--set", action="append", default=[], help="extra recipe overrides, a.b=c")
    ap.add_argument("--deadline-s", type=float, default=540, help="stop this call after this many seconds")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    t0 = time.time()
    model = build_model(args.shape, args.model_dir)
    args.run_dir.mkdir(parents=True, exist_ok=True)
    call = run_stage(args, args.deadline_s - (time.time() - t0))
    calls = json.loads((args.run_dir / "bench_calls.json").read_text())
    steps = step_times(args.run_dir)
    result = {
        "device": device_name(),
        "shape": args.shape,
        "model": model,
        "recipe": str(args.recipe),
        "overrides": args.set,
        "calls": calls,
        "finished": call["rc"] == 0,
        "wall_seconds": round(sum(c["seconds"] for c in calls), 1),
        "steps": steps,
        "interrupted": interrupted(calls, steps),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(Path(call["log"]).read_text()[-3000:])
    print(table(result))
    if call["rc"] not in (0, None):
        sys.exit(f"the stage failed (exit {call['rc']}): see {call['log']}")
    print("finished" if call["rc"] == 0 else "stopped at the deadline: run the same command again to resume")


if __name__ == "__main__":
    main()
