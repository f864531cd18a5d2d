"""The configs in configs/accelerate/: accelerate reads each one, the command `accelerate_command` builds
is read by accelerate's launcher as that config, and each runs in one CPU process or is refused clearly."""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from accelerate.commands.config.config_args import ClusterConfig, load_config_from_file
from accelerate.commands.launch import _validate_launch_command, launch_command_parser

from cai_bootstrap.errors import StepFailed, UserError
from cai_bootstrap.records import SFTExample
from cai_bootstrap.store import write_jsonl
from cai_bootstrap.tasks import frame
from cai_bootstrap.training import launch
from cai_bootstrap.training.config import TrainResult

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs" / "accelerate"
# config -> (distributed_type in the file, the launcher accelerate picks from it)
EXPECTED = {
    "ddp_cpu.yaml": ("MULTI_GPU", "multi_gpu"),
    "ddp.yaml": ("MULTI_GPU", "multi_gpu"),
    "fsdp.yaml": ("FSDP", "use_fsdp"),
    "deepspeed_zero2.yaml": ("DEEPSPEED", "use_deepspeed"),
}
LAUNCHERS = ["multi_gpu", "use_fsdp", "use_deepspeed", "tpu", "use_megatron_lm"]


def free_port() -> int:
    """A port free now, so this launch does not meet another test's process group on torchrun's 29500."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_sft_examples(data: Path) -> Path:
    """Eight short SFT examples (the multi-process training tests share them)."""
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
    return data


def _job(tmp_path: Path, model: Path, out: str = "out", **settings) -> Path:
    data = write_sft_examples(tmp_path / "sft.jsonl")
    job = launch.SFTJob(
        settings={
            "epochs": 1,
            "batch_size": 2,
            "logging_steps": 1,
            "save_steps": 2,
            "max_length": 64,
            **settings,
        },
        lora={"r": 4},
        examples_path=data,
        base_model=model,
        out_dir=tmp_path / out,
    )
    path = tmp_path / f"{out}.json"
    path.write_text(job.model_dump_json())
    return path


def test_every_config_is_covered():
    assert sorted(p.name for p in CONFIGS.glob("*.yaml")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_config_loads_with_accelerate(name):
    raw = yaml.safe_load((CONFIGS / name).read_text())
    cfg = load_config_from_file(str(CONFIGS / name))  # a top-level key accelerate lacks is a TypeError
    assert isinstance(cfg, ClusterConfig)
    assert cfg.distributed_type.value == EXPECTED[name][0]
    assert cfg.compute_environment.value == "LOCAL_MACHINE" and cfg.num_machines == 1
    assert cfg.use_cpu == (name == "ddp_cpu.yaml")  # only the CPU config keeps the work off the GPUs
    # accelerate copies the nested sections onto its launch options without checking their names,
    # so a misspelt key would be ignored silently: each must be one of `accelerate launch`'s options.
    options = {a.dest for a in launch_command_parser()._actions}
    nested = {**raw.get("fsdp_config", {}), **raw.get("deepspeed_config", {})}
    assert not set(nested) - options


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_launch_command_is_read_as_the_config(name, tiny_model_dir, tmp_path):
    job = _job(tmp_path, tiny_model_dir)
    cmd = launch.accelerate_command("sft", job, CONFIGS / name, 2, port=29777)
    assert cmd[:3] == [sys.executable, "-m", "accelerate.commands.launch"]
    args, _, _ = _validate_launch_command(launch_command_parser().parse_args(cmd[3:]))
    assert [k for k in LAUNCHERS if getattr(args, k)] == [EXPECTED[name][1]]
    assert args.num_processes == 2 and args.main_process_port == 29777  # not the config's 8
    assert args.mixed_precision == "no"  # the job's bf16 on CPU, not the GPU configs' bf16
    assert args.module and args.training_script == "cai_bootstrap.training.launch"
    assert args.training_script_args == ["sft", "--config", str(job)]


def test_launch_command_follows_the_jobs_precision(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(launch, "resolve_bf16", lambda requested: True)  # as on a bf16-capable GPU
    cmd = launch.accelerate_command("sft", _job(tmp_path, tiny_model_dir), CONFIGS / "fsdp.yaml", 2)
    assert cmd[cmd.index("--mixed_precision") + 1] == "bf16"


def test_a_backend_other_than_the_requested_one_fails(monkeypatch, tmp_path):
    result = TrainResult(
        adapter=tmp_path, final_loss=1.0, steps=1, epochs=1.0, seconds=1.0, data_sha256="x", config_hash="y"
    )
    monkeypatch.setattr(launch, "used_backend", lambda: "MULTI_CPU")
    with pytest.raises(StepFailed, match="asked for DEEPSPEED but the trainer ran under MULTI_CPU"):
        launch.check_backend_used("DEEPSPEED", result)
    launch.check_backend_used(None, result)  # plain DDP: nothing asked, nothing to check
    launch.check_backend_used("DEEPSPEED", result.model_copy(update={"skipped": True}))  # no trainer built


def test_dpo_precompute_across_processes_is_refused(tmp_path, monkeypatch):
    job = launch.DPOJob(pairs_path=tmp_path / "p.jsonl", base_model=tmp_path, out_dir=tmp_path / "dpo")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(UserError, match="precompute_ref_log_probs"):
        launch.run_job("dpo", job.model_dump_json())  # refused before any file is read


def _run(cmd: list[str], cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    # generous: DeepSpeed's first run compiles a C++ op, slow on a busy 2-core machine
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=cwd, env=env)


# `make venv` installs DeepSpeed here, off the venv's path (Makefile: why).
DEEPSPEED_SITE = Path(sys.prefix) / "deepspeed-site"


def _deepspeed_env() -> dict:
    if importlib.util.find_spec("deepspeed"):
        return dict(os.environ)
    if not (DEEPSPEED_SITE / "deepspeed").is_dir():
        pytest.skip(f"deepspeed is not installed (make venv puts it in {DEEPSPEED_SITE})")
    path = os.pathsep.join(filter(None, [str(DEEPSPEED_SITE), os.environ.get("PYTHONPATH")]))
    # bin/ holds the ninja that DeepSpeed's first run compiles its CPU communication op with
    return os.environ | {
        "PYTHONPATH": path,
        "PATH": f"{DEEPSPEED_SITE / 'bin'}{os.pathsep}{os.environ['PATH']}",
    }


def test_fsdp_on_cpu_is_refused_before_training(tiny_model_dir, tmp_path):
    """On CPU accelerate would quietly train with DDP under fsdp.yaml; the entry point refuses instead."""
    job = _job(tmp_path, tiny_model_dir)
    res = _run(launch.accelerate_command("sft", job, CONFIGS / "fsdp.yaml", 1, free_port()), tmp_path)
    assert res.returncode != 0
    assert "error: FSDP needs CUDA devices" in res.stderr and "ddp_cpu.yaml" in res.stderr
    assert not (tmp_path / "out").exists()


def _losses(out: Path) -> list[float]:
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows if "loss" in r]


@pytest.mark.slow
def test_deepspeed_zero2_in_one_cpu_process_matches_plain_training(tiny_model_dir, tmp_path):
    """Slow: DeepSpeed compiles its CPU shared-memory communication op on first use (about 60 s on the
    2-core machine; later runs reuse torch's extension cache and take about 25 s)."""
    env = _deepspeed_env()
    job = _job(tmp_path, tiny_model_dir, "zero2")
    cmd = launch.accelerate_command("sft", job, CONFIGS / "deepspeed_zero2.yaml", 1, free_port())
    res = _run([*cmd, "--quiet"], tmp_path, env)
    # exit 0 also means check_backend_used saw the trainer run under DeepSpeed, not plain DDP
    assert res.returncode == 0, res.stderr[-3000:]
    result = TrainResult.model_validate_json(res.stdout.strip().splitlines()[-1])
    assert result.steps == 4 and (tmp_path / "zero2" / "adapter" / "adapter_model.safetensors").exists()
    plain = launch.run_job("sft", _job(tmp_path, tiny_model_dir, "plain").read_text())
    assert plain.steps == 4
    # One process: ZeRO-2 shards nothing, so the losses are the plain trainer's up to float32 rounding.
    assert _losses(tmp_path / "zero2") == pytest.approx(_losses(tmp_path / "plain"), rel=1e-5)
