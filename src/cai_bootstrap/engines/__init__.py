"""Text generation and scoring behind one small interface (DESIGN.md: engines/).

Steps receive an `Engine`; they never import a backend directly. Backends: `hf.py` (transformers,
in-process), `openai.py` (any OpenAI-compatible server), `vllm.py` (vLLM in-process); `ray.py` fans
a step's items out over several engines.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

FinishReason = Literal["stop", "length"]

# What `logprobs` scores: text, or token ids taken exactly as given. A prompt given as ids is the
# model's whole input before the continuation, BOS included (see `Engine.input_ids_for`).
Scored = str | list[int]


class Sampling(BaseModel):
    """How to sample continuations. temperature 0 means greedy."""

    model_config = ConfigDict(extra="forbid")
    n: int = Field(1, ge=1, description="samples per prompt")
    temperature: float = Field(0.0, ge=0.0, description="0 = greedy")
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_new_tokens: int = Field(128, ge=1)
    stop: list[str] = Field(default_factory=list, description="text is cut before the first stop string")
    seed: int = 0


class Completion(str):
    """One generated answer: the text (stop string removed) that also says why it ended.

    A str subclass so that every caller that treats answers as text keeps working; `finish_reason`
    is "stop" (EOS or a stop string) or "length" (max_new_tokens ran out: the answer is truncated).
    """

    finish_reason: FinishReason

    def __new__(cls, text: str, finish_reason: FinishReason) -> Completion:
        obj = super().__new__(cls, text)
        obj.finish_reason = finish_reason
        return obj

    def __reduce__(self):  # pickling (Ray actors, multiprocessing) keeps the reason
        return (Completion, (str(self), self.finish_reason))


class Capabilities(BaseModel):
    """What a backend can do natively; callers and the conformance tests read it."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    prompt_logprobs: bool = Field(description="scores a given continuation (logprobs works)")
    native_n: bool = Field(description="n samples per request; otherwise emulated by seeded requests")
    token_ids: bool = Field(description="accepts token ids as input (exact scoring boundaries)")


class Engine(Protocol):
    capabilities: Capabilities

    @property
    def tokenizer(self):
        """The model's (transformers) tokenizer."""
        ...

    def generate(self, prompts: list[str], sampling: Sampling) -> list[list[Completion]]:
        """n continuations per prompt, stop strings removed, in prompt order."""
        ...

    def logprobs(self, prompts: list[Scored], continuations: list[Scored]) -> list[float]:
        """Sum of token log-probabilities of each continuation given its prompt."""
        ...

    def count_tokens(self, text: str) -> int:
        """Tokens of `text` as a continuation (no special tokens)."""
        ...

    def input_ids_for(self, text: str) -> list[int]:
        """The ids the model sees for a prompt: [bos] + ids(text), nothing else."""
        ...


def input_ids_for(tokenizer, text: str) -> list[int]:
    """[bos] + ids(text) without any other special token, whatever the tokenizer adds by default: the
    completion-mode input of every engine, and of training (training/data.py imports it too)."""
    ids = tokenizer(text, add_special_tokens=False).input_ids
    bos = tokenizer.bos_token_id
    return ([bos] if bos is not None else []) + ids


class TokenizerMethods:
    """The tokenizer half of the Engine protocol, for every engine that holds its model's tokenizer
    as `self.tok` (hf, openai, vllm)."""

    tok: Any

    @property
    def tokenizer(self):
        return self.tok

    def input_ids_for(self, text: str) -> list[int]:
        return input_ids_for(self.tok, text)

    def count_tokens(self, text: str) -> int:
        return len(self.tok(text, add_special_tokens=False).input_ids)


def continuation_ids(tokenizer, x: Scored) -> list[int]:
    return list(x) if isinstance(x, list) else tokenizer(x, add_special_tokens=False).input_ids


def prompt_ids(tokenizer, x: Scored) -> list[int]:
    return list(x) if isinstance(x, list) else input_ids_for(tokenizer, x)


def cut_at_stop(text: str, stops: list[str]) -> str:
    """Text before the earliest stop string (backends stop after the token that completes one)."""
    cut = len(text)
    for s in stops:
        k = text.find(s)
        if k != -1:
            cut = min(cut, k)
    return text[:cut]
