"""The model's own A/B preference under a principle, or an external reward model's.

Self-judge: a few-shot completion prompt shows the instruction, a question taken from a principle,
and two answers labelled A and B; the preference is logp(" A") - logp(" B") of the next token(s).
Each pair is asked twice with the answers swapped, and the margin averages the two orders
(forward minus swapped, halved), which cancels any constant preference for a position
(Zheng et al. 2023, "Judging LLM-as-a-judge", sec. 3.4 on position bias and swapping).

Reward model: any sequence-classification model (local path or cached id, loaded offline); the
margin is r(x) - r(y). A configured reward model that fails to load stops the run; nothing
heuristic is ever put in its place.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from ..constitution import Constitution, Principle
from ..engines import Engine
from ..errors import UserError
from ..log import log
from ..records import Instruction, Response
from ..templates import render

LABELS = (" A", " B")


class JudgeSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool = Field(True, description="order verifier ties by a judge; off: ties are dropped")
    reward_model: str | None = Field(
        None, description="sequence-classification model path or id; null = self-judge"
    )
    principle: str | None = Field(
        None, description="principle id the self-judge asks about; null = a revision's own, else sampled"
    )
    reward_device: str = Field("cpu", description="torch device of the reward model")
    reward_batch_size: int = Field(8, ge=1, description="answers scored per reward-model forward pass")
    reward_max_length: int = Field(1024, ge=16, description="reward-model input truncation, in tokens")
    seed: int = Field(0, description="seed of the per-pair principle sampling and the calibration subsets")
    min_balanced_accuracy: float = Field(
        0.8,
        ge=0.0,
        le=1.0,
        description="a judge below this balanced accuracy on labelled data is not used (steps/calibrate.py)",
    )
    calibration_per_class: int | None = Field(
        None, ge=1, description="labelled items per class and question type in calibration; null = all"
    )


class JudgeResult(BaseModel):
    """margin > 0 prefers x. raw_forward: logp(A)-logp(B) with x as A; raw_swapped: with y as A."""

    margin: float
    raw_forward: float
    raw_swapped: float


@dataclass(frozen=True)
class Preference:
    """What a judge function says about (x, y): margin > 0 prefers x; source is 'judge' or 'reward'."""

    margin: float
    source: str
    note: str


JudgeFn = Callable[[list[tuple[Instruction, Response, Response]]], list[Preference]]


def judge_prompt(instruction: Instruction, principle: Principle, a: str, b: str) -> str:
    return render("judge", prompt=instruction.prompt, critique_request=principle.critique_request, a=a, b=b)


def judge_pairs(engine: Engine, items: list[tuple[Instruction, Principle, str, str]]) -> list[JudgeResult]:
    """Judge many (instruction, principle, x, y) at once: one logprobs call of 4 scores per pair."""
    prompts, continuations = [], []
    for instruction, principle, x, y in items:
        for a, b in ((x, y), (y, x)):
            prompt = judge_prompt(instruction, principle, a, b)
            prompts += [prompt, prompt]
            continuations += list(LABELS)
    lp = engine.logprobs(prompts, continuations)
    out = []
    for i in range(len(items)):
        fa, fb, sa, sb = lp[4 * i : 4 * i + 4]
        forward, swapped = fa - fb, sa - sb
        # In the swapped order a preference for x shows as a preference for B, hence the minus.
        out.append(JudgeResult(margin=(forward - swapped) / 2, raw_forward=forward, raw_swapped=swapped))
    return out


class RewardModel:
    """A sequence-classification reward model; score = the single logit (or logit[1] - logit[0])."""

    def __init__(self, name: str, device: str = "cpu", max_length: int = 1024):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.name, self.device, self.max_length = name, device, max_length
        fix = "check the path or set judge.reward_model to null"
        if name.startswith(("/", ".", "~")) and not Path(name).expanduser().exists():
            # transformers would report a bad hub id here; say what is actually wrong.
            raise UserError(f"reward model {name} could not be loaded: no such path", fix)
        try:
            path = str(Path(name).expanduser()) if name.startswith("~") else name
            self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
            model = AutoModelForSequenceClassification.from_pretrained(path, local_files_only=True)
            self.model = model.to(device).eval()
        except (OSError, ValueError, KeyError, RuntimeError, ImportError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise UserError(f"reward model {name} could not be loaded: {first}", fix) from e
        if self.model.config.num_labels not in (1, 2):
            raise UserError(
                f"reward model {name} has {self.model.config.num_labels} labels; a reward model has 1 or 2",
                "give a reward model or set judge.reward_model to null",
            )
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
            self.model.config.pad_token_id = self.tokenizer.eos_token_id

    def _text(self, prompt: str, response: str) -> str:
        # Reward models are trained on their own chat format; without one, plain prompt + answer.
        if getattr(self.tokenizer, "chat_template", None):
            messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]
            return self.tokenizer.apply_chat_template(messages, tokenize=False)
        return f"{prompt}\n\n{response}"

    def score(self, prompts: list[str], responses: list[str], batch_size: int = 8) -> list[float]:
        import torch

        texts = [self._text(p, r) for p, r in zip(prompts, responses, strict=True)]
        out: list[float] = []
        for start in range(0, len(texts), batch_size):
            batch = self.tokenizer(
                texts[start : start + batch_size],
                return_tensors="pt",
                padding=True,
                truncation=True,
                max_length=self.max_length,
            ).to(self.device)
            with torch.no_grad():
                logits = self.model(**batch).logits.float()
            scores = logits[:, 0] if logits.shape[1] == 1 else logits[:, 1] - logits[:, 0]
            out += scores.tolist()
        return out


def _principle_for(cfg: JudgeSettings, constitution: Constitution, x: Response, y: Response) -> Principle:
    if cfg.principle:
        return constitution.get(cfg.principle)
    own = [r.principle_id for r in (x, y) if r.origin == "revision" and r.principle_id]
    known = {p.id for p in constitution.principles}
    if own and own[0] in known:
        return constitution.get(own[0])
    # Seeded by the unordered pair, so the principle does not depend on which side is x.
    return constitution.sample(random.Random(f"{cfg.seed}:{':'.join(sorted((x.id, y.id)))}"))


def make_judge_fn(cfg: JudgeSettings, engine: Engine | None, constitution: Constitution) -> JudgeFn | None:
    """The judge the pairs step uses to order verifier ties, or None when the judge is off."""
    if not cfg.enabled:
        return None
    if cfg.principle:
        constitution.get(cfg.principle)  # an unknown id fails now, not after generation
    if cfg.reward_model:
        rm = RewardModel(cfg.reward_model, cfg.reward_device, cfg.reward_max_length)
        log.info(f"judge: reward model {cfg.reward_model}")

        def reward_fn(items: list[tuple[Instruction, Response, Response]]) -> list[Preference]:
            prompts = [ins.prompt for ins, _, _ in items]
            rx = rm.score(prompts, [x.text for _, x, _ in items], cfg.reward_batch_size)
            ry = rm.score(prompts, [y.text for _, _, y in items], cfg.reward_batch_size)
            return [Preference(a - b, "reward", cfg.reward_model) for a, b in zip(rx, ry, strict=True)]

        return reward_fn
    if engine is None:
        raise UserError("the self-judge needs a model engine", "pass an engine or set judge.reward_model")

    def self_fn(items: list[tuple[Instruction, Response, Response]]) -> list[Preference]:
        principles = [_principle_for(cfg, constitution, x, y) for _, x, y in items]
        work = [(ins, p, x.text, y.text) for (ins, x, y), p in zip(items, principles, strict=True)]
        results = judge_pairs(engine, work)
        return [Preference(r.margin, "judge", p.id) for r, p in zip(results, principles, strict=True)]

    return self_fn
