"""Tiny random-weight causal LMs with a byte-level BPE tokenizer trained in code (no hub)."""

from __future__ import annotations

from pathlib import Path

# Random weights score ~ln(vocab) nats per token: tests exempt them from the canary's likelihood check,
# explicitly (the tokenizer round trip still runs).
TINY_CANARY = {"max_nll": None}


def tiny_canary():
    from cai_bootstrap.canary import CanarySettings

    return CanarySettings(**TINY_CANARY)


CORPUS = [
    "Instruction: Write a short note about the sea. Response: The sea is wide and blue.",
    "Instruction: List three fruits in lowercase. Response: apple, pear, plum.",
    "Answer in exactly five words. Use no commas. End your answer with the word done.",
    "The quick brown fox jumps over the lazy dog. 0123456789 !?.,;:'\"()[]{}*#-_/\n",
    "Critique: the answer is fine. Revision: KEEP_ORIGINAL. Which response is better? (A) or (B)",
]


def build_tiny_model(out: Path, seed: int = 0, layers: int = 2, hidden: int = 16) -> Path:
    """Write a tiny Llama-architecture model and tokenizer to `out` and return it."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320,
        special_tokens=["<pad>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(CORPUS * 4, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=len(fast),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=4096,
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(cfg)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    fast.save_pretrained(out)
    return out


# The health gates (health.py) would stop a random-weight model's run at once: it never stops on its own,
# repeats itself and cannot critique. Tests that run stages on it loosen them here, explicitly.
TINY_HEALTH = {
    "responses": {"max_truncated_fraction": 1.0, "max_same_answer_fraction": 1.0},
    "pairs": {"min_pairs": 0},
    "sft": {"min_examples": 0},
    "critique": {"stop_if_all_rejected": False},
    "instructions": {"self_instruct": {"min_accepted": 0}},
}


def with_tiny_health(stage: dict) -> dict:
    """`stage` (a recipe's stage settings) with TINY_HEALTH merged in, keys already set winning."""

    def merge(into: dict, extra: dict) -> dict:
        for key, value in extra.items():
            if isinstance(value, dict):
                merge(into.setdefault(key, {}), value)
            else:
                into.setdefault(key, value)
        return into

    return merge(stage, TINY_HEALTH)
