"""Typed, validated configuration: defaults, then one recipe YAML, then `--set a.b=c` overrides.

Each concern keeps its own settings model next to its code (training/config.py, steps/*.py); this
module composes them into one `Recipe`. Unknown keys are errors that name the key path.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .canary import CanarySettings
from .config_read import HINTS, explain, read_recipe, source_of
from .engines.openai import OpenAISettings
from .engines.ray import RaySettings
from .engines.vllm import VLLMSettings
from .errors import UserError
from .health import GATE_EXEMPT
from .inputcheck import BadValue, check_values
from .overrides import apply_overrides
from .steps.content_measures import ContentSettings
from .steps.critique import CritiqueSettings
from .steps.judge import JudgeSettings
from .steps.pairs import PairSettings
from .steps.safety_eval import SafetyEvalSettings
from .tasks.selfinstruct import SelfInstructSettings
from .training.config import DPOSettings, LoraSettings, SFTSettings


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TimeoutSettings(_Strict):
    """Wall-clock limits per kind of step, in seconds (null = none). Defaults fit days-long GPU runs."""

    generation: float | None = Field(12 * 3600, gt=0, description="instructions, answers, critique, pairs")
    training: float | None = Field(24 * 3600, gt=0, description="one SFT or DPO run")
    evaluation: float | None = Field(6 * 3600, gt=0, description="one model's held-out or safety evaluation")


class RunSettings(_Strict):
    name: str = Field(
        "quickstart",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        max_length=100,
        description="run name (letters, digits, . _ -; at most 100); the run folder is runs/<name> unless run_dir is set",
    )
    run_dir: Path | None = Field(
        None,
        description="where the run's files go; a relative path is taken from the directory the run "
        "starts in and saved as an absolute path in config.resolved.yaml",
    )
    seed: int = Field(0, description="seeds every sampling, split and training step")
    timeouts: TimeoutSettings = Field(default_factory=TimeoutSettings)
    report_to: list[Literal["tensorboard", "wandb", "trackio"]] = Field(
        default_factory=list,
        description="trackers that get every step's counts and times, the pairs funnel, held-out rates "
        "and training curves after each stage (tracking.py); tensorboard writes RUN_DIR/tracking offline",
    )


class ModelSettings(_Strict):
    generator: str = Field("embedded:gemma-3-270m", description="embedded:NAME, a local folder, or a hub id")
    dtype: Literal["float32", "bfloat16", "float16"] = Field(
        "bfloat16",
        description="precision of generation and of every evaluation (same for all compared models)",
    )
    train_dtype: Literal["float32", "bfloat16"] = Field(
        "float32", description="precision of the frozen base in training"
    )
    device: str = Field(
        "auto",
        pattern=r"^(auto|cpu|cuda(:[0-9]+)?)$",
        description="'auto' (cuda if present), 'cpu', 'cuda' or 'cuda:N'",
    )
    batch_size: int = Field(8, ge=1, description="generation and scoring batch size")
    liger_kernels: bool = Field(
        False,
        description="CUDA only: Liger's Triton RMSNorm, RoPE and SwiGLU kernels in every generation and "
        "scoring forward (needs liger-kernel); measured 7B decode 46.7% -> 62.2% of the bandwidth bound",
    )
    canary: CanarySettings = Field(
        default_factory=CanarySettings, description="the check every loaded model passes first (canary.py)"
    )
    judge: str | None = Field(
        None,
        description="a fixed judge model for every stage (avoids a model grading itself into collapse); "
        "null = each stage's input model judges",
    )
    engine: Literal["hf", "openai", "vllm"] = Field(
        "hf",
        description="what generates and scores: hf (transformers in-process), openai (an OpenAI-compatible "
        "server serving model.generator, see model.openai), vllm (vLLM in worker processes, see model.vllm)",
    )
    openai: OpenAISettings = Field(default_factory=OpenAISettings, description="used when engine is openai")
    vllm: VLLMSettings = Field(default_factory=VLLMSettings, description="used when engine is vllm")
    ray: RaySettings = Field(
        default_factory=RaySettings,
        description="Ray Data fan-out of the responses step over actors (engine hf or openai; extra [ray])",
    )

    @model_validator(mode="after")
    def _ray_needs_an_engine_per_actor(self):
        if self.ray.workers and self.engine == "vllm":
            raise ValueError(
                "model.ray.workers is for engine hf or openai: vLLM shards over its own worker processes "
                "(set model.vllm.data_parallel_size, and model.ray.workers: 0)"
            )
        return self

    def resolved_device(self) -> str:
        if self.device != "auto":
            return self.device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"


class ModelWrittenSettings(_Strict):
    """Stages 2-3: the stage's input model writes tasks (tasks/curriculum/written.py); code keeps
    those whose check computes. Off: the packaged lists alone."""

    enabled: bool = Field(
        False, description="let the stage's input model write the tasks (read by stages 2-3 only)"
    )
    samples: int = Field(
        8, ge=1, description="completions per stage-2 topic, or per stage-3 family (each a list of words)"
    )
    shots: int = Field(3, ge=1, le=8, description="packaged examples shown in each prompt")
    temperature: float = Field(0.9, ge=0, description="sampling temperature of the writing model")
    top_p: float = Field(0.95, gt=0, le=1, description="nucleus sampling mass of the writing model")
    max_new_tokens: int = Field(160, ge=16, description="tokens per completion")


class InstructionSettings(_Strict):
    n_train: int = Field(48, ge=1, description="training instructions composed per round")
    n_heldout: int = Field(
        60, ge=1, description="held-out evaluation instructions (unseen tasks and wordings)"
    )
    constraint_types: list[str] | None = Field(
        None, min_length=1, description="constraint ids to use (not empty); null = the stage-1 default list"
    )
    heldout_only_types: list[str] = Field(
        default_factory=list,
        description="leave-types-out: constraint types (ids or group:NAME, tasks/typegroups.py) never in "
        "training, removed from constraint_types, used only in n_heldout_types extra held-out items",
    )
    n_heldout_types: int = Field(
        60, ge=1, description="held-out items on heldout_only_types only (none when that list is empty)"
    )
    min_constraints: int = Field(1, ge=1, description="fewest constraints composed into one instruction")
    max_constraints: int = Field(2, ge=1, description="most constraints composed into one instruction")
    leakage_threshold: float = Field(
        0.6, gt=0, le=1, description="n-gram Jaccard at which a held-out task counts as leaked"
    )
    self_instruct: SelfInstructSettings = Field(default_factory=SelfInstructSettings)
    model_written: ModelWrittenSettings = Field(default_factory=ModelWrittenSettings)

    @model_validator(mode="after")
    def _counts_ordered(self) -> InstructionSettings:
        if self.min_constraints > self.max_constraints:
            raise ValueError(
                f"min_constraints ({self.min_constraints}) is above max_constraints ({self.max_constraints})"
            )
        return self


class ResponseSettings(_Strict):
    signature_exempt: ClassVar[dict[str, str]] = dict.fromkeys(
        ("max_truncated_fraction", "max_same_answer_fraction"), GATE_EXEMPT
    )
    k: int = Field(4, ge=1, description="answers sampled per training instruction (best-of-k)")
    temperature: float = Field(0.8, ge=0, description="sampling temperature of the k answers")
    top_p: float = Field(0.95, gt=0, le=1, description="nucleus sampling mass of the k answers")
    max_new_tokens: int = Field(96, ge=1, description="longest answer, in tokens")
    chunk: int = Field(
        16, ge=1, description="instructions per resumable chunk (each chunk is seeded by its index)"
    )
    max_truncated_fraction: float = Field(
        0.9, ge=0, le=1, description="health gate: stop if more answers than this ran out of tokens"
    )
    max_same_answer_fraction: float = Field(
        0.2, ge=0, le=1, description="health gate: stop if one answer text went to more prompts than this"
    )


class EvalSettings(_Strict):
    max_new_tokens: int = Field(96, ge=1, description="greedy answer length on held-out prompts")
    ifeval_files: list[Path] = Field(
        default_factory=list,
        description="extra IFEval-format files to evaluate; relative paths are taken from the directory "
        "the run starts in and saved as absolute paths",
    )
    safety: SafetyEvalSettings = Field(default_factory=SafetyEvalSettings)
    content: ContentSettings = Field(
        default_factory=ContentSettings, description="content measures of the held-out answers (issue 26)"
    )


class GateSettings(_Strict):
    metric: Literal["prompt_strict", "prompt_loose", "instruction_strict", "instruction_loose"] = Field(
        "prompt_strict", description="held-out success measure the gate reads"
    )
    min_success: float | None = Field(
        None, ge=0, le=1, description="absolute threshold (the method's stage 1: 0.95)"
    )
    require_improvement: bool = Field(
        False, description="also need a significant gain over the baseline (McNemar)"
    )
    alpha: float = Field(0.05, gt=0, lt=1, description="significance level for require_improvement")
    forgetting_alpha: float = Field(
        0.01,
        gt=0,
        lt=1,
        description="McNemar level below which a drop on an earlier stage's held-out set is flagged",
    )
    stop_on_forgetting: bool = Field(
        False, description="a flagged drop on an earlier stage's held-out set stops the run (exit 3)"
    )


class StageSettings(_Strict):
    stage: int = Field(1, ge=1, le=6, description="which of the six curriculum stages this is")
    max_rounds: int = Field(1, ge=1, description="generate -> pairs -> train rounds until the gate passes")
    instructions: InstructionSettings = Field(default_factory=InstructionSettings)
    responses: ResponseSettings = Field(default_factory=ResponseSettings)
    critique: CritiqueSettings = Field(default_factory=CritiqueSettings)
    judge: JudgeSettings = Field(default_factory=JudgeSettings)
    pairs: PairSettings = Field(default_factory=PairSettings)
    lora: LoraSettings = Field(default_factory=LoraSettings)
    sft: SFTSettings = Field(default_factory=SFTSettings)
    dpo: DPOSettings = Field(default_factory=DPOSettings)
    eval: EvalSettings = Field(default_factory=EvalSettings)
    gate: GateSettings = Field(default_factory=GateSettings)


class Recipe(_Strict):
    run: RunSettings = Field(default_factory=RunSettings)
    model: ModelSettings = Field(default_factory=ModelSettings)
    constitution: Path | None = Field(
        None,
        description="constitution YAML; null = the packaged default; a relative path is taken from the "
        "directory the run starts in and saved as an absolute path",
    )
    stages: list[StageSettings] = Field(
        default_factory=lambda: [StageSettings()],
        min_length=1,
        description="the stages to run, in increasing order of their stage numbers (each at most once)",
    )

    @field_validator("stages")
    @classmethod
    def _stage_numbers(cls, stages: list[StageSettings]) -> list[StageSettings]:
        numbers = [s.stage for s in stages]
        seen = sorted({n for n in numbers if numbers.count(n) > 1})
        if seen:
            raise ValueError(f"stage {seen[0]} appears {numbers.count(seen[0])} times; give each stage once")
        if numbers != sorted(numbers):
            raise ValueError(f"stages must be in increasing order, got {numbers}")
        return stages

    def run_dir(self) -> Path:
        return self.run.run_dir or Path("runs") / self.run.name

    def with_paths_from(self, base: Path, run_dir: Path | None = None) -> Recipe:
        """A copy whose relative paths (run folder, constitution, eval.ifeval_files, local model
        folders) are made absolute against `base`, so later commands give the same answer from any
        directory. `run_dir` (for --resume) replaces the run folder outright."""
        data = self.model_copy(deep=True)
        base = Path(base).resolve()

        def absolute(p: Path) -> Path:
            p = p.expanduser()
            return p if p.is_absolute() else base / p

        data.run.run_dir = Path(run_dir).resolve() if run_dir is not None else absolute(self.run_dir())
        if data.constitution is not None:
            data.constitution = absolute(data.constitution)
        for st in data.stages:
            st.eval.ifeval_files = [absolute(p) for p in st.eval.ifeval_files]
            st.judge.reward_model = _local_model(st.judge.reward_model, base)
        data.model.generator = _local_model(data.model.generator, base)
        data.model.judge = _local_model(data.model.judge, base)
        return data


def _local_model(ref: str | None, base: Path) -> str | None:
    """A relative model reference that names an existing folder under `base`, made absolute."""
    if not ref or ref.startswith("embedded:") or Path(ref).expanduser().is_absolute():
        return ref
    return str(base / ref) if (base / ref).is_dir() else ref


def load_recipe(path: Path | None, overrides: list[str] | None = None) -> Recipe:
    """Recipe from YAML (or defaults when path is None) plus overrides, fully validated."""
    tree: dict = {}
    source = "defaults"
    if path is not None:
        source = str(path)
        tree = read_recipe(path)
    tree = apply_overrides(tree, overrides or [])
    try:
        recipe = Recipe.model_validate(tree)
    except ValidationError as e:
        raise explain(e, source_of(e.errors()[0]["loc"], source, overrides or []), Recipe) from e
    try:
        check_values(recipe)  # finite numbers, seed and timeout ranges, paths (inputcheck.py)
    except BadValue as e:
        where = ".".join(str(p) for p in e.loc)
        value = str(e.value) if isinstance(e.value, Path) else e.value
        shown = f" = {value!r}" if not isinstance(value, str) or len(value) < 80 else ""
        raise UserError(
            f"{source_of(e.loc, source, overrides or [])}: '{where}'{shown}: {e.rule}",
            HINTS.get(str(e.loc[-1]), "fix the value in the recipe or with --set"),
        ) from e
    return recipe


def dump(recipe: Recipe) -> str:
    return yaml.safe_dump(recipe.model_dump(mode="json"), sort_keys=False)
