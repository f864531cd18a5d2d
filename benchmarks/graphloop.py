"""A minimal decode loop: static KV cache, compiled step with CUDA graphs, argmax on the device, no
host synchronisation per step. It is what HF generate's static path runs per token minus HF's
per-step host work (logits processors, stopping checks that read a device flag every step)."""

from __future__ import annotations

import torch


class GraphDecoder:
    """Greedy decoding for one (batch, prompt + new) shape; the cache is reused across calls so the
    compiled step keeps its static input addresses (a new cache would force a recompile)."""

    def __init__(self, model, batch: int, max_len: int):
        from transformers import StaticCache

        self.model = model
        self.cache = StaticCache(config=model.config, max_cache_len=max_len)
        self.step = torch.compile(self._step, mode="reduce-overhead", fullgraph=False)

    def _step(self, tok: torch.Tensor, cache_position: torch.Tensor) -> torch.Tensor:
        out = self.model(
            input_ids=tok[:, None], past_key_values=self.cache, cache_position=cache_position, use_cache=True
        )
        return out.logits[:, -1].argmax(-1)

    @torch.inference_mode()
    def generate(self, ids: torch.Tensor, new: int) -> torch.Tensor:
        self.cache.reset()
        batch, prompt = ids.shape
        positions = torch.arange(prompt + new, device=ids.device)
        logits = self.model(
            input_ids=ids,
            past_key_values=self.cache,
            cache_position=positions[:prompt],
            use_cache=True,
            logits_to_keep=1,
        ).logits
        tok = logits[:, -1].argmax(-1)
        out = torch.empty(batch, new, dtype=torch.long, device=ids.device)
        out[:, 0] = tok
        for t in range(1, new):
            torch.compiler.cudagraph_mark_step_begin()
            tok = self.step(tok, positions[prompt + t - 1 : prompt + t]).clone()
            out[:, t] = tok
        return out
