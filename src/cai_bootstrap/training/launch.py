"""Entry point for one training process, so `accelerate launch` can run SFT or DPO on many devices.

    accelerate launch --config_file configs/accelerate/ddp_cpu.yaml --num_processes 2 \\
        -m cai_bootstrap.training.launch sft --config job.json

job.json is an SFTJob or DPOJob (below) as JSON. Every process runs the same job; TRL and
accelerate split the batches, and only the main process writes metrics, markers and the adapter.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import CaiError
from ..log import setup
from .config import DPOSettings, LoraSettings, SFTSettings
from .dpo import run_dpo
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


def run_job(kind: str, text: str):
    if kind == "sft":
        job = SFTJob.model_validate_json(text)
        return run_sft(
            job.settings, job.lora, job.examples_path, job.base_model, job.out_dir, job.dtype, force=job.force
        )
    job = DPOJob.model_validate_json(text)
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
    try:
        result = run_job(ns.kind, ns.config.read_text())
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
