"""The transformers backend: batched sampling and continuation scoring in completion mode.

Prompts are tokenised with add_special_tokens=False and the BOS token (if the tokenizer has one) is
prepended explicitly, so the ids fed to the model are exactly [bos] + ids(prompt): no chat template,
no EOS, nothing added behind the caller's back (`input_ids_for` is what the tests compare).
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import LogitsProcessor, LogitsProcessorList, StoppingCriteria, StoppingCriteriaList

from ..kernels import apply_layer_kernels
from ..log import log, progress
from . import (
    Capabilities,
    Completion,
    Sampling,
    Scored,
    TokenizerMethods,
    continuation_ids,
    cut_at_stop,
    prompt_ids,
)
from .fastdecode import FastDecoder, TextStop

__all__ = ["HFEngine", "cut_at_stop"]  # cut_at_stop lives in engines/ now; kept importable from here


class HFEngine(TokenizerMethods):
    capabilities = Capabilities(prompt_logprobs=True, native_n=True, token_ids=True)

    def __init__(self, model, tokenizer, batch_size: int = 8, liger_kernels: bool = False):
        self.model = model
        self.tok = tokenizer
        self.batch_size = batch_size
        self.device = next(model.parameters()).device
        if getattr(model, "generation_config", None) is not None:
            # A merged model's generation_config.json names the frame's stop strings for users
            # (training/chat.py); here every request brings its own stops (Sampling.stop).
            model.generation_config.stop_strings = None
        if liger_kernels:
            apply_layer_kernels(model)
        # Our CUDA-graph decode loop (fastdecode.py; measured 2.9-5x plain generate on an H200, see
        # BENCHMARKS.md). On a CPU there is nothing to capture, so transformers' generate runs.
        self._fast = (
            FastDecoder(model) if self.device.type == "cuda" and supports_fast_decode(model) else None
        )
        if self.tok.pad_token_id is None:
            # Padding only fills masked positions; any id works, EOS is the usual choice.
            self.tok.pad_token = self.tok.eos_token

    @classmethod
    def from_path(
        cls,
        path: Path,
        dtype: str = "float32",
        device: str = "cpu",
        batch_size: int = 8,
        liger_kernels: bool = False,
        canary=None,
    ) -> HFEngine:
        """Load a model folder (after the model canary: canary.py) into an engine."""
        from ..models import load

        model, tok = load(Path(path), dtype=dtype, device=device, canary=canary)
        return cls(model, tok, batch_size=batch_size, liger_kernels=liger_kernels)

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
    def generate(self, prompts: list[str], sampling: Sampling) -> list[list[Completion]]:
        """n continuations per prompt; each cut before its first stop string.

        Rows are sorted by prompt length (long first) so each batch pads little; the RNG is seeded
        once per call, so the same prompts, sampling and batch size give the same text.
        """
        encoded = [self.input_ids_for(p) for p in prompts]
        rows = [(i, j) for i in range(len(prompts)) for j in range(sampling.n)]
        rows.sort(key=lambda r: (-len(encoded[r[0]]), r))
        out: list[list[Completion]] = [[Completion("", "stop")] * sampling.n for _ in prompts]
        torch.manual_seed(sampling.seed)
        with progress("generating", len(rows)) as advance:
            for start in range(0, len(rows), self.batch_size):
                batch = rows[start : start + self.batch_size]
                texts = self._generate_batch([encoded[i] for i, _ in batch], sampling)
                for (i, j), text in zip(batch, texts, strict=True):
                    out[i][j] = text
                advance(len(batch))
        return out

    def _generate_batch(self, seqs: list[list[int]], sampling: Sampling) -> list[Completion]:
        ids, mask = self._left_pad(seqs)
        greedy = sampling.temperature == 0.0
        # Sampling runs in our NucleusSampler under greedy decoding (see its docstring for why).
        processors = (
            None if greedy else LogitsProcessorList([NucleusSampler(sampling.temperature, sampling.top_p)])
        )
        if self._fast is not None:
            eos = self.model.generation_config.eos_token_id
            eos_ids = [] if eos is None else [eos] if isinstance(eos, int) else list(eos)
            sampler = None if greedy else NucleusSampler(sampling.temperature, sampling.top_p)
            stop = TextStop(self.tok, sampling.stop) if sampling.stop else None
            new = self._fast.generate_ids(
                ids,
                mask,
                sampling.max_new_tokens,
                pad_id=self.tok.pad_token_id,
                eos_ids=eos_ids,
                sampler=sampler,
                stop=stop,
            )
        else:
            gen = self.model.generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=sampling.max_new_tokens,
                pad_token_id=self.tok.pad_token_id,
                do_sample=False,
                stopping_criteria=StoppingCriteriaList([StopOnText(self.tok, sampling.stop, ids.shape[1])])
                if sampling.stop
                else None,
                logits_processor=processors,
            )
            new = gen[:, ids.shape[1] :]
        texts = self.tok.batch_decode(new, skip_special_tokens=True)
        return [
            Completion(cut_at_stop(t, sampling.stop), self._finish(row, t, sampling))
            for row, t in zip(new.tolist(), texts, strict=True)
        ]

    def _finish(self, row: list[int], text: str, sampling: Sampling) -> str:
        """Finish reason: "length" iff the row ran to max_new_tokens without EOS or a stop string.
        A row that ended earlier is followed by padding (pad or EOS ids) up to the batch's width, so
        its last id is one of those; a row that ran out ends on an ordinary token at the last column."""
        if len(row) < sampling.max_new_tokens or any(s in text for s in sampling.stop):
            return "stop"
        eos = self.model.generation_config.eos_token_id
        ends = {self.tok.pad_token_id, self.tok.eos_token_id}
        ends |= set([] if eos is None else [eos] if isinstance(eos, int) else eos)
        return "stop" if row[-1] in ends else "length"

    @torch.inference_mode()
    def logprobs(self, prompts: list[Scored], continuations: list[Scored]) -> list[float]:
        """Sum of log p(continuation tokens | prompt), batched by length. Text or token ids
        (engines.Scored); ids are taken as given, so ids-in gives exactly the ids' score.

        One-token continuations of the same prompt (a judge's " A" and " B", a critic's " Yes" and
        " No") share one forward: the distribution after the prompt scores all of them.
        """
        if len(prompts) != len(continuations):
            raise ValueError("prompts and continuations differ in length")
        rows: list[tuple[list[int], int, list[tuple[int, int]]]] = []  # ids, n scored, (k, token)s
        shared: dict[tuple[int, ...], int] = {}
        for k, (p, c) in enumerate(zip(prompts, continuations, strict=True)):
            p_ids = prompt_ids(self.tok, p)
            c_ids = continuation_ids(self.tok, c)
            if len(c_ids) == 1 and (row := shared.get(tuple(p_ids))) is not None:
                rows[row][2].append((k, c_ids[0]))
                continue
            if len(c_ids) == 1:
                shared[tuple(p_ids)] = len(rows)
            rows.append((p_ids + c_ids, len(c_ids), [(k, c_ids[0] if len(c_ids) == 1 else -1)]))
        order = sorted(range(len(rows)), key=lambda r: -len(rows[r][0]))
        scores = [0.0] * len(prompts)
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            ids, mask = self._left_pad([rows[r][0] for r in idx])
            # Left padding puts every continuation at the end, so only the last K positions need
            # logits: with a 262k vocabulary the full logits would dominate time and memory.
            keep = max(rows[r][1] for r in idx) + 1
            logits = self.model(input_ids=ids, attention_mask=mask, logits_to_keep=keep).logits
            logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
            targets = ids[:, ids.shape[1] - keep + 1 :]
            token_logp = logp.gather(-1, targets[..., None])[..., 0]
            for b, r in enumerate(idx):
                _, n, members = rows[r]
                if n == 1:  # the last position predicts every one-token continuation of this prompt
                    for k, token in members:
                        scores[k] = float(logp[b, -1, token])
                elif n:
                    scores[members[0][0]] = float(token_logp[b, token_logp.shape[1] - n :].sum())
        return scores


def supports_fast_decode(model) -> bool:
    """Our decode loop has no attention logit softcapping (Gemma 2); such models use generate."""
    if getattr(model.config, "attn_logit_softcapping", None):
        log.info("fast decode does not support attention softcapping: using transformers' generate")
        return False
    return True


class NucleusSampler(LogitsProcessor):
    """Temperature and nucleus (top-p) sampling done inside a logits processor, for greedy decoding.

    transformers' sampling path sorts all logits for top-p and runs softmax + multinomial over the
    whole vocabulary every step; with Gemma's 262k vocabulary that costs more than the model's own
    decode step on a CPU. Here the nucleus comes from a top-k (exact: a row whose top TOP_K hold
    less than top_p of the mass falls back to a full sort) and the draw is Gumbel-max (argmax of
    logits plus Gumbel noise samples exactly from the softmax). The processor returns 0 for the
    drawn token and -inf elsewhere, so generate(do_sample=False) emits exactly that token.
    """

    TOP_K = 1024

    def __init__(self, temperature: float, top_p: float):
        self.temperature = temperature
        self.top_p = top_p
        self.fallbacks = 0  # rows that needed the full sort (read by tests and benchmarks)

    def _nucleus(self, scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(top-k scores with non-nucleus set to -inf, their token ids, row holds the whole nucleus)."""
        log_z = torch.logsumexp(scores, dim=-1, keepdim=True)
        top, idx = torch.topk(scores, k, dim=-1)  # sorted, largest first
        p = (top - log_z).exp()
        cum = p.cumsum(dim=-1)
        # Keep a token while the mass before it is below top_p (the first token is always kept).
        top = top.masked_fill((cum - p) >= self.top_p, -float("inf"))
        return top, idx, cum[:, -1] >= self.top_p

    def _draw(self, scores: torch.Tensor) -> torch.Tensor:
        gumbel = -torch.empty_like(scores).exponential_().log()
        return (scores + gumbel).argmax(dim=-1)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        scores = scores.float() / self.temperature
        if self.top_p >= 1.0:
            choice = self._draw(scores)
        else:
            top, idx, complete = self._nucleus(scores, min(self.TOP_K, scores.shape[-1]))
            choice = idx.gather(1, self._draw(top)[:, None])[:, 0]
            for row in (~complete).nonzero()[:, 0].tolist():
                self.fallbacks += 1
                t, i, _ = self._nucleus(scores[row : row + 1], scores.shape[-1])
                choice[row] = i[0, self._draw(t)[0]]
        out = torch.full_like(scores, -float("inf"))
        return out.scatter_(1, choice[:, None], 0.0)


class StopOnText(StoppingCriteria):
    """Stop a row once its generated text contains a stop string.

    transformers' StopStringCriteria precomputes a table over the whole vocabulary on every
    construction (about 20 s for a 262k vocabulary on a CPU); decoding the last few generated
    tokens of each row per step costs microseconds. Every token decodes to at least one character,
    so a window of (longest stop + 2) tokens always contains a stop string that just completed.
    """

    def __init__(self, tokenizer, stops: list[str], prompt_len: int):
        self.tok = tokenizer
        self.stops = stops
        self.prompt_len = prompt_len
        self.window = max(len(s) for s in stops) + 2

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        tails = input_ids[:, self.prompt_len :][:, -self.window :]
        texts = self.tok.batch_decode(tails, skip_special_tokens=True)
        done = [any(s in t for s in self.stops) for t in texts]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)
