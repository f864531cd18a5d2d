"""Our own decode loop for HFEngine on CUDA: a preallocated KV cache, one CUDA graph per cache-length
bucket, token choice on the device, and host checks (EOS, stop strings) only every CHECK_EVERY steps.

Why: plain `generate` spends most of a decode step on host work and, with a static cache, on repeating
K/V once per grouped query head over the whole cache. Here the model's own modules run unchanged; only
its cache (`SlotCache`) and its attention function (`slot_attention`, registered with transformers'
AttentionInterface; both in slotcache.py) are ours. A decode step reads the filled part of the cache,
rounded up to BUCKET slots, and folds each group of query heads into one K/V head (no repeat). On a CPU
the same loop runs without capture, which is how the tests compare it token for token with `generate`.
"""

from __future__ import annotations

import contextlib
import inspect
from dataclasses import dataclass

import torch

from .slotcache import SlotCache, check_settings, slot_attention_on

BUCKET = 128  # cache slots per length bucket: one captured graph per bucket the decode passes through
CHECK_EVERY = 16  # decode steps between host checks for EOS and stop strings


@dataclass
class TextStop:
    """Stop strings checked on decoded text, with the same window rule as hf.StopOnText: a stop that
    completes at token t lies in the text of the (longest stop + 2) tokens ending at t."""

    tokenizer: object
    stops: list[str]

    @property
    def window(self) -> int:
        return max(len(s) for s in self.stops) + 2

    def hits(self, rows: list[list[int]]) -> list[bool]:
        texts = self.tokenizer.batch_decode(rows, skip_special_tokens=True)
        return [any(s in t for s in self.stops) for t in texts]


@dataclass
class _State:
    """The tensors every captured graph reads and writes: their addresses never change."""

    cache: SlotCache
    tok: torch.Tensor  # (B,) last token of each row
    pos: torch.Tensor  # (B,) its position id
    slot: torch.Tensor  # (1,) its cache slot (the same for all rows: prompts are left-padded)
    step: torch.Tensor  # (1,) index of the token being made
    valid: torch.Tensor  # (B, L) slots holding a real token
    out: torch.Tensor  # (B, L) new tokens
    flags: torch.Tensor  # (L,) steps where some row's nucleus reached past NucleusSampler.TOP_K
    slots: torch.Tensor  # (L,) 0..L-1, for sliding-window masks

    @classmethod
    def new(cls, batch: int, max_len: int, device) -> _State:
        def zeros(*shape, dtype=torch.long):
            return torch.zeros(shape, dtype=dtype, device=device)

        return cls(
            SlotCache(batch, max_len),
            zeros(batch),
            zeros(batch),
            zeros(1),
            zeros(1),
            zeros(batch, max_len, dtype=torch.bool),
            zeros(batch, max_len),
            zeros(max_len, dtype=torch.bool),
            torch.arange(max_len, device=device),
        )


def _graph_draw(logits: torch.Tensor, sampler, st: _State) -> torch.Tensor:
    """The token choice inside a captured step: argmax, or NucleusSampler's top-k nucleus and
    Gumbel-max draw. A row whose top-k holds less than top_p sets this step's flag; the host then
    redraws that step exactly (FastDecoder._redo)."""
    if sampler is None:
        return logits.argmax(-1)
    scores = logits.float() / sampler.temperature
    if sampler.top_p >= 1.0:
        return sampler._draw(scores)
    top, idx, complete = sampler._nucleus(scores, min(sampler.TOP_K, scores.shape[-1]))
    st.flags.index_copy_(0, st.step, (~complete).any().view(1))
    return idx.gather(1, sampler._draw(top)[:, None])[:, 0]


def _exact_draw(logits: torch.Tensor, sampler) -> torch.Tensor:
    if sampler is None:
        return logits.argmax(-1)
    return sampler(None, logits).argmax(-1)  # the sampler returns 0 at the drawn token, -inf elsewhere


def _bucket(n: int, cap: int) -> int:
    return min(-(-n // BUCKET) * BUCKET, cap)


class FastDecoder:
    """Decodes left-padded batches for one model. Buffers and captured graphs are kept between calls
    and reused while the batch fits (a smaller batch is padded with copies of its first row) and the
    prompt + new tokens fit the cache; otherwise they are rebuilt."""

    def __init__(self, model):
        self.model = model
        # What a decode step calls. benchmarks/compile_cost.py puts a torch.compile'd model here: it
        # was as fast as Liger's kernels (model.liger_kernels) but cost ~110 s of compile per process,
        # and with static shapes it hit dynamo's recompile limit within one stage (BENCHMARKS.md).
        self.step_model = model
        # transformers renamed the forward's `past_key_values` to `cache` (5.24 warns on the old name,
        # 5.40 drops it; the GPU image's 5.17 has only the old one).
        params = inspect.signature(type(model).forward).parameters
        self.cache_arg = "cache" if "cache" in params else "past_key_values"
        cfg = model.config
        self.device = next(model.parameters()).device
        self.use_graphs = self.device.type == "cuda"
        sliding = "sliding_attention" in (getattr(cfg, "layer_types", None) or [])
        self.window: int | None = cfg.sliding_window if sliding else None
        self.state: _State | None = None
        self.graphs: dict[tuple, tuple[torch.cuda.CUDAGraph, torch.Tensor]] = {}
        self.pool = None
        self.base: torch.Tensor | None = None  # (B,) position of each row's first new token

    @torch.inference_mode()
    def generate_ids(
        self,
        ids: torch.Tensor,
        mask: torch.Tensor,
        max_new_tokens: int,
        *,
        pad_id: int,
        eos_ids: list[int] | tuple[int, ...] = (),
        sampler=None,
        stop: TextStop | None = None,
    ) -> torch.LongTensor:
        """New tokens per row, as `generate(...)[:, prompt:]` gives them: a row ends at EOS or at the
        token completing a stop string, then holds pad_id; the width is that of the longest row.
        `sampler` is an hf.NucleusSampler (None: greedy)."""
        check_settings(self.model)
        real, prompt = ids.shape
        ids, mask = self._fit(ids, mask, max_new_tokens)
        with slot_attention_on(self.model):
            first = _exact_draw(self._prefill_distinct(ids, mask), sampler)
            self._start(first, prompt)
            finish, made = self._decode(prompt, max_new_tokens, sampler, stop, set(eos_ids), real)
        width = max(f + 1 for f in finish) if all(f is not None for f in finish) else made
        out = self.state.out[:real, :width].clone()
        ends = torch.tensor([width if f is None else f for f in finish], device=out.device)
        return out.masked_fill_(torch.arange(width, device=out.device)[None, :] > ends[:, None], pad_id)

    def _fit(self, ids, mask, new: int) -> tuple[torch.Tensor, torch.Tensor]:
        batch, prompt = ids.shape
        need = _bucket(prompt + new, 1 << 62)
        st = self.state
        if st is None or not (batch <= st.cache.batch < 2 * batch) or need > st.cache.max_len:
            self.state, self.graphs = None, {}
            self.state = st = _State.new(batch, need, self.device)
            self.pool = torch.cuda.graph_pool_handle() if self.use_graphs else None
        extra = st.cache.batch - batch
        if extra:
            ids = torch.cat([ids, ids[:1].expand(extra, -1)])
            mask = torch.cat([mask, mask[:1].expand(extra, -1)])
        return ids, mask

    def _masks(self, allowed: torch.Tensor, q_slots: torch.Tensor):
        """Additive masks from a (B, 1, Q, L) bool of allowed keys; with sliding layers, the dict the
        model takes in place of its own masks."""
        dtype = self.model.dtype
        full = torch.zeros(allowed.shape, dtype=dtype, device=allowed.device)
        full.masked_fill_(~allowed, torch.finfo(dtype).min)
        if self.window is None:
            return full
        near = self.state.slots[: allowed.shape[-1]][None, :] > q_slots[:, None] - self.window
        slide = full.masked_fill(~near, torch.finfo(dtype).min)
        return {"full_attention": full, "sliding_attention": slide}

    def _forward(self, ids, pos, allowed, q_slots, model=None) -> torch.Tensor:
        out = (self.model if model is None else model)(
            input_ids=ids,
            position_ids=pos,
            attention_mask=self._masks(allowed, q_slots),
            **{self.cache_arg: self.state.cache},
            use_cache=True,
            logits_to_keep=1,
        )
        return out.logits[:, -1]

    def _prefill_distinct(self, ids, mask) -> torch.Tensor:
        """Prefill each distinct prompt once (n samples of a prompt are n equal rows), copy its K/V
        to every row that shares it, and return last-position logits for every row."""
        distinct, rows = torch.unique(torch.cat([ids, mask], dim=1), dim=0, return_inverse=True)
        if distinct.shape[0] == ids.shape[0]:
            return self._prefill(ids, mask)
        self.state.cache.rows = rows
        try:
            width = ids.shape[1]
            logits = self._prefill(distinct[:, :width], distinct[:, width:], full_mask=mask)
        finally:
            self.state.cache.rows = None
        return logits.index_select(0, rows)

    def _prefill(self, ids, mask, full_mask=None) -> torch.Tensor:
        """Forward over left-padded prompts into the cache. `full_mask` is the mask of every cache
        row when `ids` holds only the distinct prompts (SlotCache.rows maps rows to them)."""
        st, prompt = self.state, ids.shape[1]
        full_mask = mask if full_mask is None else full_mask
        st.valid.zero_()
        st.valid[:, :prompt] = full_mask.bool()
        q = st.slots[:prompt]
        causal = q[:, None] >= q[None, :]
        # A padding query attends to itself only: a query with no key at all would give NaN, which
        # its K/V at the next layer would carry into every row's softmax.
        allowed = (mask.bool()[:, None, None, :] & causal) | (q[:, None] == q[None, :])
        pos = (mask.long().cumsum(-1) - 1).clamp_(min=0)
        self.base = (full_mask.long().sum(-1) - 1).clamp_(min=0) + 1
        st.cache.slots, st.cache.length = q, prompt
        return self._forward(ids, pos, allowed, q)

    def _start(self, first: torch.Tensor, prompt: int) -> None:
        st = self.state
        st.tok.copy_(first)
        st.out[:, 0] = first
        st.pos.copy_(self.base)
        st.slot.fill_(prompt)
        st.step.fill_(1)
        st.flags.zero_()

    def _step(self, length: int, sampler) -> torch.Tensor:
        """One decode step on the static tensors (what a graph captures): feed tok, write the chosen
        token into out and tok, advance pos, slot and step."""
        st = self.state
        st.cache.slots, st.cache.length = st.slot, length
        st.valid.index_fill_(1, st.slot, True)
        with self._decode_kernels():
            logits = self._forward(
                st.tok[:, None], st.pos[:, None], st.valid[:, None, None, :length], st.slot, self.step_model
            )
        choice = _graph_draw(logits, sampler, st)
        st.tok.copy_(choice)
        st.out.index_copy_(1, st.step, choice[:, None])
        st.pos.add_(1)
        st.slot.add_(1)
        st.step.add_(1)
        return logits

    def _decode_kernels(self):
        """On CUDA, no math fallback: it would repeat K/V per query head, the cost this loop removes."""
        if not self.use_graphs:
            return contextlib.nullcontext()
        from torch.nn.attention import SDPBackend, sdpa_kernel

        return sdpa_kernel(
            [SDPBackend.EFFICIENT_ATTENTION, SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION]
        )

    def _run(self, length: int, sampler) -> torch.Tensor:
        if not self.use_graphs:
            return self._step(length, sampler)
        key = (length, None if sampler is None else (sampler.temperature, sampler.top_p))
        if key not in self.graphs:
            self.graphs[key] = self._capture(length, sampler)
        graph, logits = self.graphs[key]
        graph.replay()
        return logits

    def _capture(self, length: int, sampler) -> tuple[torch.cuda.CUDAGraph, torch.Tensor]:
        st = self.state
        saved = [t.clone() for t in (st.tok, st.pos, st.slot, st.step, st.valid)]
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up outside capture: library handles and workspaces
            for _ in range(2):
                self._step(length, sampler)
        torch.cuda.current_stream().wait_stream(side)
        for t, s in zip((st.tok, st.pos, st.slot, st.step, st.valid), saved, strict=True):
            t.copy_(s)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self.pool):
            logits = self._step(length, sampler)
        return graph, logits

    def _redo(self, s: int, prompt: int, sampler) -> None:
        """Make token s again with the exact sampler: rewind the static tensors to just before it."""
        st = self.state
        st.tok.copy_(st.out[:, s - 1])
        st.pos.copy_(self.base + s - 1)
        st.slot.fill_(prompt + s - 1)
        st.step.fill_(s)
        st.valid[:, prompt + s - 1 :] = False
        choice = _exact_draw(self._run(_bucket(prompt + s, st.cache.max_len), sampler), sampler)
        st.tok.copy_(choice)
        st.out[:, s] = choice

    def _decode(self, prompt: int, new: int, sampler, stop, eos: set[int], real: int):
        """Steps 1..new-1 in chunks of CHECK_EVERY; the host looks only between chunks. Returns each
        row's finishing index (None: ran to the end) and the number of tokens made."""
        st, cap = self.state, self.state.cache.max_len
        finish: list[int | None] = [None] * real
        hist: list[list[int]] = [[] for _ in range(real)]
        made = 1
        while True:
            end = min(made + CHECK_EVERY, new)
            for s in range(made, end):
                self._run(_bucket(prompt + s, cap), sampler)
            if sampler is not None and sampler.top_p < 1.0 and end > made:
                flagged = st.flags[made:end].nonzero()[:, 0].tolist()
                for s in range(made + flagged[0], end) if flagged else ():
                    self._redo(s, prompt, sampler)
            if eos or stop:
                checked = len(hist[0])
                for row, cols in zip(hist, st.out[:real, checked:end].tolist(), strict=True):
                    row.extend(cols)
                _mark_finished(hist, checked, finish, stop, eos)
            made = end
            if made >= new or all(f is not None for f in finish):
                return finish, made


def _mark_finished(hist: list[list[int]], start: int, finish: list, stop: TextStop | None, eos: set[int]):
    """Set finish[r] to the first index >= start where row r emitted EOS or completed a stop string."""
    open_rows = [r for r, f in enumerate(finish) if f is None]
    for r in open_rows:
        finish[r] = next((i for i in range(start, len(hist[r])) if hist[r][i] in eos), None)
    if stop is None or not open_rows:
        return
    w = stop.window
    # One decode per row over all new tokens (plus the window before them) finds the rows to scan.
    spans = [hist[r][max(0, start - w + 1) :] for r in open_rows]
    for r, hit in zip(open_rows, stop.hits(spans), strict=True):
        end = len(hist[r]) if finish[r] is None else finish[r]
        if hit:
            windows = (hist[r][max(0, i - w + 1) : i + 1] for i in range(start, end))
            finish[r] = next((start + k for k, win in enumerate(windows) if stop.hits([win])[0]), finish[r])
