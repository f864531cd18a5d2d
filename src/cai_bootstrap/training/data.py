"""Turn SFT examples and preference pairs into token ids exactly as generation would see them.

Why we tokenise ourselves instead of letting TRL do it: TRL 1.16 appends the tokenizer's EOS token
to every non-conversational completion (SFTTrainer._prepare_dataset `add_eos`, DPOTrainer likewise).
Our completions already end with the frame's stop text ("\\n\\nInstruction:", tasks/frame.py), and
generation never sees an EOS there, so an appended EOS would be a special token added behind the
user's back. The rule here, shared by SFT and DPO:

- prompt ids = `engines.input_ids_for(tokenizer, prompt)`, the very function the generation
  engine calls (BOS when the tokenizer has one, whether or not it adds it by default), so a model is
  trained on exactly the ids it generates from;
- completion ids = the tail of tokenizer(prompt + completion) after the prompt ids when the prompt
  ids are a prefix of it (the usual case: the frame ends on "Response:" and the completion starts
  with a space), else tokenizer(completion, add_special_tokens=False) (a merge across the boundary;
  generation could only ever continue from the prompt ids, so we keep those intact);
- no EOS is appended and nothing else is added.
"""

from __future__ import annotations

import hashlib

from datasets import Dataset

from ..engines import input_ids_for
from ..errors import UserError
from ..log import log
from ..records import PreferencePair, SFTExample


def split_ids(tokenizer, prompt: str, completion: str) -> tuple[list[int], list[int]]:
    """(prompt ids, completion ids) following the module rule above."""
    prompt_ids = input_ids_for(tokenizer, prompt)
    full = input_ids_for(tokenizer, prompt + completion)
    if full[: len(prompt_ids)] == prompt_ids and len(full) > len(prompt_ids):
        return prompt_ids, full[len(prompt_ids) :]
    return prompt_ids, tokenizer(completion, add_special_tokens=False)["input_ids"]


def sft_dataset(examples: list[SFTExample], tokenizer, max_length: int) -> Dataset:
    """Tokenised rows with `input_ids` and `completion_mask` (1 on completion tokens).

    SFTTrainer treats a dataset with `input_ids` as already processed and, with
    completion_only_loss=True, turns completion_mask 0 into label -100. Rows are cut to max_length
    here; a row whose prompt fills max_length has no completion left and is an error, not a skip.
    """
    rows, cut = [], 0
    for ex in examples:
        p, c = split_ids(tokenizer, ex.prompt, ex.completion)
        cut += len(p) + len(c) > max_length
        if len(p) >= max_length:
            raise UserError(
                f"SFT example {ex.id}: prompt is {len(p)} tokens, max_length is {max_length}",
                "raise sft.max_length or shorten the prompt frame",
            )
        ids = (p + c)[:max_length]
        rows.append({"input_ids": ids, "completion_mask": ([0] * len(p) + [1] * len(c))[:max_length]})
    if cut:
        # A cut completion loses its closing stop text, so the model is not taught to stop there.
        log.warning(
            "%d of %d SFT examples are longer than max_length %d and were cut", cut, len(rows), max_length
        )
    return Dataset.from_list(rows)


def preference_dataset(pairs: list[PreferencePair], tokenizer, max_length: int) -> Dataset:
    """Rows with TRL's tokenised preference columns: prompt_ids, chosen_ids, rejected_ids.

    The collator (DataCollatorForPreference) truncates prompt+completion to max_length itself.
    """
    rows = []
    for pair in pairs:
        p, chosen = split_ids(tokenizer, pair.prompt, pair.chosen)
        _, rejected = split_ids(tokenizer, pair.prompt, pair.rejected)
        if len(p) >= max_length:
            raise UserError(
                f"preference pair {pair.id}: prompt is {len(p)} tokens, max_length is {max_length}",
                "raise dpo.max_length or shorten the prompt frame",
            )
        rows.append({"prompt_ids": p, "chosen_ids": chosen, "rejected_ids": rejected})
    return Dataset.from_list(rows)


def eval_split(pairs: list[PreferencePair], fraction: float, seed: int) -> tuple[list, list]:
    """(train, eval) by a hash of each pair's id and the seed: stable under reordering and appends."""
    if fraction <= 0 or len(pairs) < 2:
        return pairs, []

    def key(pair: PreferencePair) -> str:
        return hashlib.sha256(f"{seed}:{pair.id}".encode()).hexdigest()

    ranked = sorted(pairs, key=key)
    n_eval = min(len(pairs) - 1, max(1, round(len(pairs) * fraction)))
    eval_ids = {p.id for p in ranked[:n_eval]}
    return [p for p in pairs if p.id not in eval_ids], [p for p in pairs if p.id in eval_ids]
