"""Model shapes, a word-per-token tokenizer, and the FLOP and byte counts the bounds are built from.

The weights are random: only the shapes matter for throughput. Sizes are Qwen2.5-0.5B's and
Qwen2.5-7B's published configs. The tokenizer maps the word "t<id>" to token <id>, so any prompt
of k words is exactly k tokens and our engine, which takes text, sees the same ids as a plain
`generate` fed the ids directly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

VOCAB = 151936
PAD = 151643  # Qwen's <|endoftext|> id
UNK = 151644
PROBE = 151645  # first of the repurposed ids (see word_tokenizer)
SHAPES = {
    "0.5b": dict(
        hidden_size=896,
        num_hidden_layers=24,
        num_attention_heads=14,
        num_key_value_heads=2,
        intermediate_size=4864,
        tie_word_embeddings=True,
    ),
    "7b": dict(
        hidden_size=3584,
        num_hidden_layers=28,
        num_attention_heads=28,
        num_key_value_heads=4,
        intermediate_size=18944,
        tie_word_embeddings=False,
    ),
}


def build_model(name: str):
    """Random bf16 weights initialised directly on the GPU (no hub, no disk)."""
    from transformers import AutoModelForCausalLM, Qwen2Config

    cfg = Qwen2Config(
        vocab_size=VOCAB,
        max_position_embeddings=32768,
        rms_norm_eps=1e-6,
        pad_token_id=PAD,
        bos_token_id=None,
        eos_token_id=None,  # no early stop: every row runs to max_new_tokens
        **SHAPES[name],
    )
    with torch.device("cuda"):
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16, attn_implementation="sdpa")
    model.eval()
    model.generation_config.eos_token_id = None
    model.generation_config.pad_token_id = PAD
    return model


def word_tokenizer():
    """A fast tokenizer with one word per id: "t0".."t151935" (Metaspace, so "t5 t6" is two tokens and
    decodes back to "t5 t6"). A few ids are repurposed: PAD and UNK (special), the word "abcdef" and
    the single characters of the frame's stop strings, which transformers' stop-string matcher needs
    to find in the vocab (it probes with "abcdef"). Prompts never contain those ids."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from cai_bootstrap.tasks.frame import STOP

    chars = sorted(set("".join(STOP)))
    special = {"<|endoftext|>": PAD, "<unk>": UNK, "\u2581abcdef": PROBE}
    special |= {ch: PROBE + 1 + k for k, ch in enumerate(chars)}
    taken = set(special.values())
    vocab = {f"\u2581t{i}": i for i in range(VOCAB) if i not in taken} | special
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
    core.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
    return PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<|endoftext|>", unk_token="<unk>")


def random_ids(rows: int, length: int, seed: int) -> torch.Tensor:
    """Token ids below PAD, so no special token appears in a prompt."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, PAD, (rows, length), generator=gen)


def ids_to_text(row: list[int]) -> str:
    return " ".join(f"t{i}" for i in row)


@dataclass(frozen=True)
class Counts:
    """What one token costs: matmul parameters, attention FLOPs per unit of context, KV bytes."""

    n_params: int
    n_matmul: int  # parameters touched by a matmul per token (lm_head in, input embedding out)
    layers: int
    heads: int
    head_dim: int
    kv_bytes_per_token: int  # bf16 K and V over all layers

    @property
    def weight_bytes_per_step(self) -> int:
        # A decode step reads every matmul weight once; the embedding lookup reads only B rows.
        return 2 * self.n_matmul

    def attn_flops_fwd(self, seq: int) -> float:
        """Causal attention FLOPs of a forward over `seq` tokens (QK^T and AV, 2 FLOPs a MAC)."""
        return 4.0 * self.layers * self.heads * self.head_dim * seq * (seq + 1) / 2

    def forward_flops(self, batch: int, seq: int) -> float:
        return batch * (2.0 * self.n_matmul * seq + self.attn_flops_fwd(seq))


def counts(model, name: str) -> Counts:
    s = SHAPES[name]
    n_params = sum(p.numel() for p in model.parameters())
    embed = VOCAB * s["hidden_size"]
    n_matmul = n_params if s["tie_word_embeddings"] else n_params - embed
    hd = s["hidden_size"] // s["num_attention_heads"]
    return Counts(
        n_params=n_params,
        n_matmul=n_matmul,
        layers=s["num_hidden_layers"],
        heads=s["num_attention_heads"],
        head_dim=hd,
        kv_bytes_per_token=2 * s["num_hidden_layers"] * s["num_key_value_heads"] * hd * 2,
    )


def decode_bound_tps(c: Counts, batch: int, prompt: int, new: int, copy_bw: float) -> float:
    """Memory-bandwidth bound on decode tokens/s: each of the new-1 decode steps reads all matmul
    weights plus the whole KV cache so far, at the measured copy bandwidth (read + write bytes/s)."""
    seconds = 0.0
    for t in range(1, new):
        seconds += (c.weight_bytes_per_step + batch * (prompt + t) * c.kv_bytes_per_token) / copy_bw
    return batch * (new - 1) / seconds
