"""The model's side of our decode loop (fastdecode.py): its attention function (`slot_attention`,
registered with transformers' AttentionInterface), its preallocated cache (`SlotCache`), and the
generation_config settings the loop refuses because it does not apply them. The model's own modules
run unchanged; only these two pieces are swapped in, for the duration of a decode.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from transformers import AttentionInterface

ATTN_NAME = "cai_slot_attention"

# generation_config settings generate() would apply and this loop does not, with their neutral values.
NEUTRAL_SETTINGS = {
    "repetition_penalty": 1.0,
    "no_repeat_ngram_size": 0,
    "bad_words_ids": None,
    "suppress_tokens": None,
    "begin_suppress_tokens": None,
    "forced_bos_token_id": None,
    "forced_eos_token_id": None,
    "min_new_tokens": None,
}


def slot_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """Attention over a SlotCache view. One query token: the g query heads sharing a K/V head become g
    query rows of that head, so K/V are read once per K/V head instead of repeated g times."""
    if kwargs.get("softcap") is not None:
        # FastDecoder.supports() keeps such models on transformers' generate; reaching here is a bug.
        raise ValueError("fastdecode: attention logit softcapping is not supported")
    batch, heads, q_len, dim = query.shape
    groups = heads // key.shape[1]
    if q_len == 1 and groups > 1:
        folded = query.reshape(batch, key.shape[1], groups, dim)
        out = F.scaled_dot_product_attention(folded, key, value, attn_mask=attention_mask, scale=scaling)
        out = out.reshape(batch, heads, 1, dim)
    else:
        out = F.scaled_dot_product_attention(
            query, key, value, attn_mask=attention_mask, scale=scaling, enable_gqa=groups > 1
        )
    return out.transpose(1, 2).contiguous(), None


AttentionInterface.register(ATTN_NAME, slot_attention)


class SlotCache:
    """Preallocated K/V per layer. `update` writes the new keys at `slots` and returns the first
    `length` slots: the model's attention then sees a fixed-shape view, which CUDA graphs need.

    With `rows` set (a prefill of distinct prompts only), cache row r receives the keys of forward
    row rows[r], and the forward sees its own keys: the prefill covers slots 0..length-1, so they
    are exactly that view."""

    def __init__(self, batch: int, max_len: int):
        self.batch, self.max_len = batch, max_len
        self.keys: dict[int, torch.Tensor] = {}
        self.values: dict[int, torch.Tensor] = {}
        self.slots: torch.Tensor | None = None
        self.length = 0
        self.rows: torch.Tensor | None = None

    def update(self, key, value, layer_idx, *args, **kwargs):
        if (
            layer_idx not in self.keys
        ):  # sized from the first (prefill) call: heads and dims as the layer has them
            shape = (self.batch, key.shape[1], self.max_len, key.shape[3])
            self.keys[layer_idx] = torch.zeros(shape, dtype=key.dtype, device=key.device)
            self.values[layer_idx] = torch.zeros(shape, dtype=value.dtype, device=value.device)
        k, v = self.keys[layer_idx], self.values[layer_idx]
        if self.rows is not None:
            k.index_copy_(2, self.slots, key.index_select(0, self.rows))
            v.index_copy_(2, self.slots, value.index_select(0, self.rows))
            return key, value
        k.index_copy_(2, self.slots, key)
        v.index_copy_(2, self.slots, value)
        return k[:, :, : self.length], v[:, :, : self.length]


def check_settings(model) -> None:
    """Raise if the model's generation_config asks for a logits change this loop does not make."""
    cfg = model.generation_config
    odd = [k for k, v in NEUTRAL_SETTINGS.items() if getattr(cfg, k, v) not in (v, None, [])]
    if odd:
        raise ValueError(f"fastdecode does not apply generation_config settings {odd}; use plain generate")


@contextlib.contextmanager
def slot_attention_on(model):
    """Switch the model to slot_attention for the duration, then back."""
    before = model.config._attn_implementation
    model.set_attn_implementation(ATTN_NAME)
    try:
        yield
    finally:
        model.set_attn_implementation(before)
