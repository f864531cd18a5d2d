"""Checkpoints: chosen by step never by mtime, half-written ones ignored, a killed run resumes exactly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from cai_bootstrap.records import SFTExample
from cai_bootstrap.store import write_jsonl
from cai_bootstrap.tasks import frame
from cai_bootstrap.training import checkpoints
from cai_bootstrap.training.config import LoraSettings, SFTSettings
from cai_bootstrap.training.sft import run_sft

CFG = dict(epochs=3, batch_size=2, logging_steps=1, save_steps=2, max_length=64, learning_rate=5e-3, seed=3)
LORA = dict(r=4, dropout=0.1)  # dropout on: its RNG state must be restored too


def fake_checkpoint(root: Path, step: int, sealed: bool = True, mtime: float | None = None) -> Path:
    folder = root / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    (folder / "adapter_model.safetensors").write_bytes(b"x" * 64)
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    if sealed:
        checkpoints.seal(folder)
    if mtime is not None:
        for p in [*folder.iterdir(), folder]:
            os.utime(p, (mtime, mtime))
    return folder


def test_last_checkpoint_is_by_step_not_mtime(tmp_path):
    now = time.time()
    fake_checkpoint(tmp_path, 10, mtime=now - 100)
    fake_checkpoint(tmp_path, 2, mtime=now)  # newest on disk, but an earlier step
    fake_checkpoint(tmp_path, 12, sealed=False)  # killed mid-save
    assert checkpoints.last_complete(tmp_path).name == "checkpoint-10"


def test_checkpoint_with_missing_or_cut_files_is_incomplete(tmp_path):
    cut = fake_checkpoint(tmp_path, 4)
    (cut / "adapter_model.safetensors").write_bytes(b"x" * 10)  # size differs from the seal
    gone = fake_checkpoint(tmp_path, 6)
    (gone / "adapter_model.safetensors").unlink()
    bad_state = fake_checkpoint(tmp_path, 8)
    (bad_state / "trainer_state.json").write_text('{"global_st')
    ok = fake_checkpoint(tmp_path, 3)
    assert checkpoints.last_complete(tmp_path) == ok
    assert {p.name for p in checkpoints.drop_incomplete(tmp_path)} == {
        "checkpoint-4",
        "checkpoint-6",
        "checkpoint-8",
    }
    checkpoints.prune(tmp_path, keep=1)
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint-3"]


def examples() -> list[SFTExample]:
    words = ["sea", "fruit", "fox", "dog"]
    return [
        SFTExample(
            id=f"e{i}",
            instruction_id=f"i{i}",
            prompt=f"Instruction: Write about the {w}.\nResponse:",
            completion=frame.completion(f"The {w} is fine."),
        )
        for i, w in enumerate(words)
    ]  # 4 examples, batch 2, 3 epochs: 6 steps, checkpoints at 2, 4, 6


CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from transformers import TrainerCallback
    from cai_bootstrap.training.config import LoraSettings, SFTSettings
    from cai_bootstrap.training.sft import run_sft

    class Slow(TrainerCallback):  # gives the parent time to kill between checkpoints
        def on_step_end(self, args, state, control, **kw):
            time.sleep(0.4)

    data, model, out, cfg, lora = sys.argv[1:6]
    run_sft(SFTSettings.model_validate_json(cfg), LoraSettings.model_validate_json(lora),
            Path(data), Path(model), Path(out), "float32", callbacks=[Slow()])
    """
)


def kill_after_first_checkpoint(cmd: list[str], ckpt_dir: Path, timeout: float = 90) -> None:
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + timeout
    try:
        while checkpoints.last_complete(ckpt_dir) is None:
            if proc.poll() is not None:
                raise AssertionError(
                    f"child ended before a checkpoint: {proc.stderr.read().decode()[-2000:]}"
                )
            if time.time() > deadline:
                raise AssertionError("no checkpoint appeared in time")
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
        proc.stderr.close()


def test_killed_run_resumes_to_the_same_loss(tiny_model_dir, tmp_path):
    data = tmp_path / "sft.jsonl"
    write_jsonl(data, examples())
    cfg, lora = SFTSettings(**CFG), LoraSettings(**LORA)
    full = run_sft(cfg, lora, data, tiny_model_dir, tmp_path / "full", "float32")
    assert full.steps == 6

    out = tmp_path / "killed"
    cmd = [sys.executable, "-c", CHILD, str(data), str(tiny_model_dir), str(out)]
    kill_after_first_checkpoint([*cmd, cfg.model_dump_json(), lora.model_dump_json()], out / "checkpoints")
    assert not (out / "complete.json").exists()
    killed_at = checkpoints.checkpoint_step(checkpoints.last_complete(out / "checkpoints"))
    assert killed_at is not None and killed_at < 6

    resumed = run_sft(cfg, lora, data, tiny_model_dir, out, "float32")
    assert resumed.resumed_from == killed_at and resumed.steps == 6
    assert resumed.final_loss == pytest.approx(full.final_loss, rel=1e-4, abs=1e-5)

    # metrics.jsonl has each step once, with the losses of the run that never stopped
    def losses(folder: Path) -> list[tuple[int, float]]:
        lines = [json.loads(x) for x in (folder / "metrics.jsonl").read_text().splitlines()]
        return [(x["step"], x["loss"]) for x in lines if "loss" in x]

    assert [s for s, _ in losses(out)] == list(range(1, 7))
    assert [v for _, v in losses(out)] == pytest.approx([v for _, v in losses(tmp_path / "full")], rel=1e-4)
