"""Entry point for one training process, so `accelerate launch` can run SFT or DPO on many devices.

    accelerate launch --config_file configs/accelerate/ddp_cpu.yaml --num_processes 2 \\
        -m cai_bootstrap.training.launch sft --config job.json

job.json is an SFTJob or DPOJob (below) as JSON. Every process runs the same job; TRL and
accelerate split the batches, and only the main process writes metrics, markers and the adapter.
`accelerate_command` builds that command line for any config in configs/accelerate/. A process
asked for FSDP or DeepSpeed checks that the trainer really ran under it (no silent DDP instead).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import CaiError, StepFailed, UserError
from ..log import setup
from .config import DPOSettings, LoraSettings, SFTSettings, TrainResult
from .dpo import run_dpo
from .lora import resolve_bf16
from .sft import run_sft


class SFTJob(BaseModel):
    """Everything run_sft needs, as one JSON document."""

    model_config = ConfigDict(extra="forbid")
    settings: SFTSettings = Field(default_factory=SFTSettings, description="SFT hyper-parameters")
    lora: LoraSettings = Field(default_factory=LoraSettings, description="adapter shape")
    examples_path: Path = Field(description="JSONL of SFTExample")
    base_model: Path = Field(description="local folder of the base model")
    out_dir: Path = Field(description="training folder (checkpoints, adapter, markers)")
    dtype: str = Field("float32", description="weight dtype of the base model")
    force: bool = Field(False, description="retrain even if out_dir holds a run")


class DPOJob(BaseModel):
    """Everything run_dpo needs, as one JSON document."""

    model_config = ConfigDict(extra="forbid")
    settings: DPOSettings = Field(default_factory=DPOSettings, description="DPO hyper-parameters")
    lora: LoraSettings = Field(default_factory=LoraSettings, description="adapter shape (fresh adapter only)")
    pairs_path: Path = Field(description="JSONL of PreferencePair")
    base_model: Path = Field(description="local folder of the base model")
    sft_adapter: Path | None = Field(None, description="SFT adapter to continue; None trains a fresh one")
    out_dir: Path = Field(description="training folder (checkpoints, adapter, markers)")
    dtype: str = Field("float32", description="weight dtype of the base model")
    force: bool = Field(False, description="retrain even if out_dir holds a run")


JOBS = {"sft": SFTJob, "dpo": DPOJob}


def accelerate_command(
    kind: str, job_path: Path, config_file: Path, num_processes: int, port: int | None = None
) -> list[str]:
    """argv running the SFT or DPO job in `job_path` under `accelerate launch` with `config_file`.

    --num_processes overrides the config's count (the GPU configs say 8). --mixed_precision follows
    the job's own bf16 setting: accelerate would take the config's (bf16 in the GPU configs), and
    transformers refuses a DeepSpeed config whose bf16 differs from the trainer's (tried on CPU).
    `port` is the rendezvous port: two launches on one host at once need different ones (torchrun
    uses 29500 for every launch that names none).
    """
    job = JOBS[kind].model_validate_json(Path(job_path).read_text())
    precision = "bf16" if resolve_bf16(job.settings.bf16) else "no"
    return [
        sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config_file),
        "--num_processes", str(num_processes), "--mixed_precision", precision,
        *(["--main_process_port", str(port)] if port else []),
        "-m", "cai_bootstrap.training.launch", kind, "--config", str(job_path),
    ]  # fmt: skip


def requested_backend() -> str | None:
    """FSDP or DEEPSPEED when `accelerate launch` asked this process for one (its launcher's variables)."""
    if os.environ.get("ACCELERATE_USE_DEEPSPEED", "").lower() == "true":
        return "DEEPSPEED"
    if os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true":
        return "FSDP"
    return None


def check_backend_available(requested: str | None) -> None:
    # accelerate (1.15) turns FSDP on only for GPU-type process groups; on CPU the group is MULTI_CPU
    # and the Trainer wraps the model in DDP instead (tried: model_wrapped was DistributedDataParallel).
    if requested == "FSDP" and not torch.cuda.is_available():
        raise UserError(
            "FSDP needs CUDA devices: on CPU accelerate would train with plain DDP instead",
            "use configs/accelerate/ddp_cpu.yaml on CPU",
        )


def used_backend() -> str | None:
    """The distributed type the Trainer's Accelerator ran under (None if no trainer was built)."""
    from accelerate.state import AcceleratorState

    used = AcceleratorState._shared_state.get("distributed_type")  # read without creating the state
    return used.value if used is not None else None


def check_backend_used(requested: str | None, result: TrainResult) -> None:
    if requested is None or result.skipped:  # a skipped run built no trainer
        return
    used = used_backend()
    if used != requested:
        raise StepFailed(
            f"accelerate was asked for {requested} but the trainer ran under {used}",
            "check the accelerate config and that the devices it needs are visible",
        )


def check_dpo_precompute(settings: DPOSettings) -> None:
    # TRL 1.16 writes the precomputed reference log-probs to a cache file of the dataset; our datasets
    # live in memory, so each process's file path is in its own temporary folder and every rank but
    # the first fails to open rank 0's file (tried: 2 CPU processes, FileNotFoundError on rank 1).
    if settings.precompute_ref_log_probs and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise UserError(
            "dpo precompute_ref_log_probs does not work across several processes (TRL's cache file)",
            "set precompute_ref_log_probs: false in the job (the same loss; the reference runs each step)",
        )


def run_job(kind: str, text: str):
    if kind == "sft":
        job = SFTJob.model_validate_json(text)
        return run_sft(
            job.settings, job.lora, job.examples_path, job.base_model, job.out_dir, job.dtype, force=job.force
        )
    job = DPOJob.model_validate_json(text)
    check_dpo_precompute(job.settings)
    return run_dpo(
        job.settings,
        job.lora,
        job.pairs_path,
        job.base_model,
        job.sft_adapter,
        job.out_dir,
        job.dtype,
        force=job.force,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cai_bootstrap.training.launch")
    parser.add_argument("kind", choices=["sft", "dpo"])
    parser.add_argument("--config", type=Path, required=True, help="JSON file holding an SFTJob or DPOJob")
    parser.add_argument("--quiet", action="store_true", help="no progress bars, warnings only")
    ns = parser.parse_args(argv)
    setup(quiet=ns.quiet)
    requested = requested_backend()
    try:
        check_backend_available(requested)
        result = run_job(ns.kind, ns.config.read_text())
        check_backend_used(requested, result)
    except ValidationError as e:
        err = e.errors()[0]
        print(f"error: {ns.config} is not a valid {ns.kind} job: {err['loc']}: {err['msg']}", file=sys.stderr)
        return 2
    except CaiError as e:
        print(e.one_line(), file=sys.stderr)
        return e.exit_code
    if os.environ.get("RANK", "0") == "0":  # one result line, from the main process
        print(result.model_dump_json())
    return 0


if __name__ == "__main__":
    sys.exit(main())
