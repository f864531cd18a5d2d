"""The transformers backend: batched sampling and continuation scoring in completion mode.

Prompts are tokenised with add_special_tokens=False and the BOS token (if the tokenizer has one) is
prepended explicitly, so the ids fed to the model are exactly [bos] + ids(prompt): no chat template,
no EOS, nothing added behind the caller's back (`input_ids_for` is what the tests compare).
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..log import progress
from . import Sampling


class HFEngine:
    def __init__(self, model, tokenizer, batch_size: int = 8):
        self.model = model
        self.tok = tokenizer
        self.batch_size = batch_size
        self.device = next(model.parameters()).device
        if self.tok.pad_token_id is None:
            # Padding only fills masked positions; any id works, EOS is the usual choice.
            self.tok.pad_token = self.tok.eos_token

    @classmethod
    def from_path(
        cls, path: Path, dtype: str = "float32", device: str = "cpu", batch_size: int = 8
    ) -> HFEngine:
        from ..models import load

        model, tok = load(Path(path), dtype=dtype, device=device)
        return cls(model, tok, batch_size=batch_size)

    def input_ids_for(self, text: str) -> list[int]:
        ids = self.tok(text, add_special_tokens=False).input_ids
        bos = self.tok.bos_token_id
        return ([bos] if bos is not None else []) + ids

    def _left_pad(self, seqs: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(s) for s in seqs)
        pad = self.tok.pad_token_id
        ids = torch.full((len(seqs), width), pad, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, width - len(s) :] = torch.tensor(s)
            mask[i, width - len(s) :] = 1
        return ids.to(self.device), mask.to(self.device)

    @torch.inference_mode()
    def generate(self, prompts: list[str], sampling: Sampling) -> list[list[str]]:
        """n continuations per prompt; each cut before its first stop string.

        Rows are sorted by prompt length (long first) so each batch pads little; the RNG is seeded
        once per call, so the same prompts, sampling and batch size give the same text.
        """
        encoded = [self.input_ids_for(p) for p in prompts]
        rows = [(i, j) for i in range(len(prompts)) for j in range(sampling.n)]
        rows.sort(key=lambda r: (-len(encoded[r[0]]), r))
        out: list[list[str]] = [[""] * sampling.n for _ in prompts]
        torch.manual_seed(sampling.seed)
        with progress("generating", len(rows)) as advance:
            for start in range(0, len(rows), self.batch_size):
                batch = rows[start : start + self.batch_size]
                texts = self._generate_batch([encoded[i] for i, _ in batch], sampling)
                for (i, j), text in zip(batch, texts, strict=True):
                    out[i][j] = text
                advance(len(batch))
        return out

    def _generate_batch(self, seqs: list[list[int]], sampling: Sampling) -> list[str]:
        ids, mask = self._left_pad(seqs)
        greedy = sampling.temperature == 0.0
        kwargs = (
            dict(do_sample=False)
            if greedy
            else dict(do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p, top_k=0)
        )
        gen = self.model.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=sampling.max_new_tokens,
            pad_token_id=self.tok.pad_token_id,
            stop_strings=sampling.stop or None,
            tokenizer=self.tok if sampling.stop else None,
            **kwargs,
        )
        new = gen[:, ids.shape[1] :]
        texts = self.tok.batch_decode(new, skip_special_tokens=True)
        return [cut_at_stop(t, sampling.stop) for t in texts]

    @torch.inference_mode()
    def logprobs(self, prompts: list[str], continuations: list[str]) -> list[float]:
        """Sum of log p(continuation tokens | prompt), batched by length."""
        if len(prompts) != len(continuations):
            raise ValueError("prompts and continuations differ in length")
        pairs = []
        for p, c in zip(prompts, continuations, strict=True):
            p_ids = self.input_ids_for(p)
            c_ids = self.tok(c, add_special_tokens=False).input_ids
            pairs.append((p_ids + c_ids, len(c_ids)))
        order = sorted(range(len(pairs)), key=lambda k: -len(pairs[k][0]))
        scores = [0.0] * len(pairs)
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            ids, mask = self._left_pad([pairs[k][0] for k in idx])
            logits = self.model(input_ids=ids, attention_mask=mask).logits.float()
            logp = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, ids[:, 1:, None])[..., 0]
            for row, k in enumerate(idx):
                n = pairs[k][1]
                scores[k] = float(logp[row, logp.shape[1] - n :].sum()) if n else 0.0
        return scores


def cut_at_stop(text: str, stops: list[str]) -> str:
    """Text before the earliest stop string (HF stops after the token that completes one)."""
    cut = len(text)
    for s in stops:
        k = text.find(s)
        if k != -1:
            cut = min(cut, k)
    return text[:cut]
