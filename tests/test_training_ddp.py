"""Two CPU processes (gloo) train one adapter through `accelerate launch` and the module entry point."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from cai_bootstrap.records import PreferencePair
from cai_bootstrap.store import write_jsonl
from cai_bootstrap.tasks import frame
from cai_bootstrap.training.launch import accelerate_command
from test_accelerate_configs import free_port, write_sft_examples

ROOT = Path(__file__).resolve().parents[1]


def test_two_process_ddp_sft_completes(tiny_model_dir, tmp_path):
    data = write_sft_examples(tmp_path / "sft.jsonl")
    job = {
        "settings": {"epochs": 1, "batch_size": 2, "logging_steps": 1, "save_steps": 1, "max_length": 64},
        "lora": {"r": 4},
        "examples_path": str(data),
        "base_model": str(tiny_model_dir),
        "out_dir": str(tmp_path / "ddp"),
    }
    (tmp_path / "job.json").write_text(json.dumps(job))
    config = ROOT / "configs/accelerate/ddp_cpu.yaml"
    cmd = accelerate_command("sft", tmp_path / "job.json", config, 2, free_port())
    res = subprocess.run([*cmd, "--quiet"], capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    result = json.loads(res.stdout.strip().splitlines()[-1])
    # 8 examples, 2 per process per step, 2 processes: 2 optimizer steps, i.e. the data was split.
    assert result["steps"] == 2 and result["epochs"] == 1.0
    out = tmp_path / "ddp"
    assert (out / "adapter" / "adapter_model.safetensors").exists() and (out / "complete.json").exists()
    # Both ranks' RNG states are inside each sealed checkpoint.
    ckpt = out / "checkpoints" / "checkpoint-2"
    assert {"rng_state_0.pth", "rng_state_1.pth"} <= set(
        json.loads((ckpt / "sealed.json").read_text())["files"]
    )
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines if "loss" in json.loads(x)] == [1, 2]  # main process only


@pytest.mark.slow
def test_two_process_ddp_dpo_matches_one_process(tiny_model_dir, tmp_path):
    """Slow (two trainings, ~40 s on 2 cores). DPO in 2 gloo processes, per-process batch 2, against one
    process with batch 4 on the same pairs: float32, so only the order of the sums differs (measured
    relative gap 2e-6; 1e-4 leaves room and would still catch a lost or doubled half of the batch)."""
    pairs = tmp_path / "pairs.jsonl"
    write_jsonl(
        pairs,
        [
            PreferencePair(
                id=f"p{i}", prompt=f"Instruction: List {i} fruits.\nResponse:", chosen=frame.completion("apple, pear."),
                rejected=frame.completion("No."), instruction_id=f"i{i}", chosen_id=f"c{i}", rejected_id=f"r{i}",
                reason="test",
            )
            for i in range(8)
        ],
    )  # fmt: skip
    losses = {}
    for name, procs, batch in (("one", 1, 4), ("two", 2, 2)):
        settings = {"epochs": 2, "batch_size": batch, "logging_steps": 1, "save_steps": 100, "max_length": 64,
                    "eval_fraction": 0.0, "precompute_ref_log_probs": False, "warmup_ratio": 0.0}  # fmt: skip
        job = {"settings": settings, "lora": {"r": 4}, "pairs_path": str(pairs),
               "base_model": str(tiny_model_dir), "out_dir": str(tmp_path / name)}  # fmt: skip
        (tmp_path / f"{name}.json").write_text(json.dumps(job))
        cmd = accelerate_command(
            "dpo", tmp_path / f"{name}.json", ROOT / "configs/accelerate/ddp_cpu.yaml", procs, free_port()
        )
        res = subprocess.run([*cmd, "--quiet"], capture_output=True, text=True, timeout=600, cwd=tmp_path)
        assert res.returncode == 0, res.stderr[-3000:]
        rows = [json.loads(x) for x in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
        losses[name] = [r["loss"] for r in rows if "loss" in r]
    assert len(losses["one"]) == 4
    assert losses["two"] == pytest.approx(losses["one"], rel=1e-4)
