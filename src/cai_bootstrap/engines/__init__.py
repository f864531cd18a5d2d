"""Text generation and scoring behind one small interface (DESIGN.md: engines/).

Steps receive an `Engine`; they never import a backend directly.
"""

from __future__ import annotations

from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field


class Sampling(BaseModel):
    """How to sample continuations. temperature 0 means greedy."""

    model_config = ConfigDict(extra="forbid")
    n: int = Field(1, ge=1, description="samples per prompt")
    temperature: float = Field(0.0, ge=0.0, description="0 = greedy")
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_new_tokens: int = Field(128, ge=1)
    stop: list[str] = Field(default_factory=list, description="text is cut before the first stop string")
    seed: int = 0


class Engine(Protocol):
    def generate(self, prompts: list[str], sampling: Sampling) -> list[list[str]]:
        """n continuations per prompt, stop strings removed, in prompt order."""
        ...

    def logprobs(self, prompts: list[str], continuations: list[str]) -> list[float]:
        """Sum of token log-probabilities of each continuation given its prompt."""
        ...

    def count_tokens(self, text: str) -> int:
        """Tokens of `text` as a continuation (no special tokens)."""
        ...
