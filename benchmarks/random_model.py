"""A random-weight model folder with a real architecture, for timing a whole stage with no hub access.

`python3 benchmarks/random_model.py --shape 7b --out /tmp/qwen7b-random` writes config, safetensors,
generation config and tokenizer, loadable like any local model (`model.generator: /tmp/qwen7b-random`).

Two choices make the timing of a stage representative although the weights carry no language:
- **The tokenizer** covers every model id. The project's own words (tasks, phrasings, templates,
  constitution) get their own ids, punctuation is split off as with a BPE tokenizer, and the remaining
  ids are filler words "t<id>". So prompts cost about as many tokens as with a real tokenizer, random
  output decodes to text that re-encodes to the same number of tokens, and the judge's " A" and " B"
  are different tokens.
- **No EOS**: generation_config has none, so every answer runs to max_new_tokens (forced lengths).
- **Peaked next-token distributions**: the final norm is scaled so logits have a spread like a
  trained model's (std ~10) instead of the near-flat std ~1 of a fresh init. With a flat distribution the
  top-p nucleus would span most of the vocabulary, which no trained model does, and every sampled
  step would take the sampler's exact (full-sort) path.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from shapes import PAD, SHAPES, VOCAB

# A CPU-sized shape for the test of this script and of the stage recipe.
TINY = dict(
    hidden_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    intermediate_size=128,
    tie_word_embeddings=False,
)
LOGIT_STD = 10.0
PACKAGE = Path(__file__).resolve().parents[1] / "src" / "cai_bootstrap"


def project_text() -> str:
    """The project's own prompt material: tasks, phrasings, templates, constitution, evaluation sets."""
    parts = [" A B Yes No PROBLEM OK KEEP_ORIGINAL Instruction Response"]
    for pattern in ("tasks/data/*.yaml", "templates/*.j2", "data/*.yaml", "tasks/curriculum/data/*.yaml"):
        parts += [f.read_text(encoding="utf-8") for f in sorted(PACKAGE.glob(pattern))]
    return "\n".join(parts)


def _corpus(seed: int = 0):
    """Training text for the tokenizer: the project's text, repeated so its words become whole tokens
    first, then random lowercase words that fill the rest of the vocabulary."""
    import random

    rng = random.Random(seed)
    text = project_text()
    for _ in range(20):
        yield text
    letters = "abcdefghijklmnopqrstuvwxyz"
    for _ in range(200):
        yield " ".join("".join(rng.choices(letters, k=rng.randint(3, 9))) for _ in range(4000))


def tokenizer(vocab_size: int = VOCAB):
    """A byte-level BPE trained here (tokenizers' BpeTrainer, Qwen2's pre-tokenizer) and wrapped in
    transformers' Qwen2Tokenizer: AutoTokenizer picks the class from config.json's model type, so
    saving it with that class makes it load back unchanged."""
    from tokenizers import Tokenizer, models, trainers
    from transformers import Qwen2Tokenizer

    shell = Qwen2Tokenizer()  # its pre-tokenizer and normalizer, so training splits text as Qwen does
    core = Tokenizer(models.BPE())
    core.normalizer = shell.backend_tokenizer.normalizer
    core.pre_tokenizer = shell.backend_tokenizer.pre_tokenizer
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - 1,  # one id is <|endoftext|>
        initial_alphabet=pre_tokenizers_alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(_corpus(), trainer=trainer)
    learned = core.get_vocab()
    ids = (i for i in range(vocab_size) if i != PAD)
    vocab = {t: next(ids) for t, _ in sorted(learned.items(), key=lambda kv: kv[1])}
    vocab["<|endoftext|>"] = PAD
    state = json.loads(core.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in state["merges"]]
    return Qwen2Tokenizer(vocab=vocab, merges=merges)


def pre_tokenizers_alphabet() -> list[str]:
    from tokenizers import pre_tokenizers

    return pre_tokenizers.ByteLevel.alphabet()


def build(shape: str, out: Path, device: str) -> dict:
    from transformers import AutoModelForCausalLM, Qwen2Config

    dims = TINY if shape == "tiny" else SHAPES[shape]
    cfg = Qwen2Config(
        vocab_size=VOCAB,
        max_position_embeddings=32768,
        rms_norm_eps=1e-6,
        pad_token_id=PAD,
        bos_token_id=None,
        eos_token_id=None,
        **dims,
    )
    t0 = time.perf_counter()
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
    with torch.no_grad():
        # A logit is the final norm's output (unit scale per element, times the norm's weight) dotted
        # with a head row of std initializer_range: std = weight * range * sqrt(hidden). Scaling the
        # norm's weight leaves the input embeddings alone, which a tied head shares (0.5B).
        spread = cfg.initializer_range * dims["hidden_size"] ** 0.5
        model.model.norm.weight.fill_(LOGIT_STD / spread)
    model.generation_config.eos_token_id = None
    model.generation_config.pad_token_id = PAD
    built = time.perf_counter() - t0
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer().save_pretrained(out)
    info = {
        "shape": shape,
        "parameters": sum(p.numel() for p in model.parameters()),
        "build_s": round(built, 1),
        "save_s": round(time.perf_counter() - t0 - built, 1),
        "logit_std": LOGIT_STD,
    }
    (out / "random_model.json").write_text(json.dumps(info, indent=1))
    return info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", choices=["tiny", *SHAPES], required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    if (args.out / "random_model.json").exists():
        print(f"{args.out} exists: kept")
        return
    print(json.dumps(build(args.shape, args.out, args.device)))


if __name__ == "__main__":
    main()
