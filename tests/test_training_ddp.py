"""Two CPU processes (gloo) train one adapter through `accelerate launch` and the module entry point."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from cai_bootstrap.records import SFTExample
from cai_bootstrap.store import write_jsonl
from cai_bootstrap.tasks import frame
from cai_bootstrap.training.launch import accelerate_command
from test_accelerate_configs import free_port

ROOT = Path(__file__).resolve().parents[1]


def test_two_process_ddp_sft_completes(tiny_model_dir, tmp_path):
    data = tmp_path / "sft.jsonl"
    write_jsonl(
        data,
        [
            SFTExample(
                id=f"e{i}",
                instruction_id=f"i{i}",
                prompt=f"Instruction: List {i} fruits.\nResponse:",
                completion=frame.completion("apple, pear, plum."),
            )
            for i in range(8)
        ],
    )
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
