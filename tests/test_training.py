"""SFT and DPO with LoRA on the tiny model: masking, what trains, DPO learns a rule, errors, merge."""

from __future__ import annotations

import json
import math

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback

from cai_bootstrap.engines import input_ids_for as engine_ids
from cai_bootstrap.errors import StepFailed, UserError
from cai_bootstrap.records import PreferencePair, SFTExample
from cai_bootstrap.store import sha256_file, write_jsonl
from cai_bootstrap.tasks import frame
from cai_bootstrap.training.config import DPOSettings, LoraSettings, SFTSettings
from cai_bootstrap.training.data import split_ids
from cai_bootstrap.training.dpo import build_dpo_trainer, run_dpo
from cai_bootstrap.training.lora import load_base
from cai_bootstrap.training.merge import merge_adapter
from cai_bootstrap.training.sft import build_sft_trainer, run_sft

TOPICS = ["sea", "fruit", "fox", "dog", "note", "plum", "words", "answer"]
LORA = LoraSettings(r=4, dropout=0.0)


def short_examples(n: int = 8) -> list[SFTExample]:
    return [
        SFTExample(
            id=f"e{i}",
            instruction_id=f"i{i}",
            prompt=f"Instruction: Write about the {TOPICS[i % len(TOPICS)]}.\nResponse:",
            completion=frame.completion(f"The {TOPICS[i % len(TOPICS)]} is wide and blue."),
        )
        for i in range(n)
    ]


def rule_pairs(n: int = 16) -> list[PreferencePair]:
    """Chosen always ends with 'done', rejected with 'fox'; the rest is identical."""
    return [
        PreferencePair(
            id=f"p{i}",
            prompt=f"Instruction: Write about the {t}.\nResponse:",
            chosen=f" The {t} is fine. done",
            rejected=f" The {t} is fine. fox",
            instruction_id=f"i{i}",
            chosen_id=f"c{i}",
            rejected_id=f"r{i}",
            reason="ends with done",
        )
        for i, t in enumerate((TOPICS * 4)[:n])
    ]


def sft_cfg(**kw) -> SFTSettings:
    base = dict(epochs=1, batch_size=4, logging_steps=1, save_steps=100, max_length=96, learning_rate=1e-2)
    return SFTSettings(**{**base, **kw})


def test_sft_masks_every_prompt_token_on_frame_examples(tiny_model_dir, tmp_path):
    examples = [
        SFTExample(id=f"f{i}", instruction_id=f"i{i}", prompt=frame.prompt(q), completion=frame.completion(a))
        for i, (q, a) in enumerate([("List two fruits.", "apple, pear."), ("Name a colour.", "Blue.")])
    ]
    trainer = build_sft_trainer(sft_cfg(max_length=2048), LORA, examples, tiny_model_dir, tmp_path, "float32")
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    rows = list(trainer.train_dataset)
    batch = trainer.data_collator(rows)
    for ex, row, labels in zip(examples, rows, batch["labels"], strict=True):
        prompt_ids, completion_ids = split_ids(tok, ex.prompt, ex.completion)
        # The prompt is tokenised exactly as the generation engine tokenises it: this tokenizer adds
        # no BOS by default, yet generation starts with one, so training must too.
        assert tok(ex.prompt)["input_ids"][0] != tok.bos_token_id
        assert prompt_ids == engine_ids(tok, ex.prompt) and prompt_ids[0] == tok.bos_token_id
        n_p, n = len(prompt_ids), len(prompt_ids) + len(completion_ids)
        assert row["input_ids"] == prompt_ids + completion_ids
        assert (labels[:n_p] == -100).all()
        assert labels[n_p:n].tolist() == completion_ids and (labels[n_p:n] != -100).all()
        assert (labels[n:] == -100).all()  # padding
        # Nothing was appended behind our back: the sequence decodes to prompt + completion.
        assert tok.eos_token_id not in row["input_ids"]
        assert tok.decode(row["input_ids"][1:]) == ex.prompt + ex.completion


def test_sft_changes_lora_weights_only(tiny_model_dir, tmp_path):
    trainer = build_sft_trainer(
        sft_cfg(epochs=2), LORA, short_examples(), tiny_model_dir, tmp_path, "float32"
    )
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train()
    after = dict(trainer.model.named_parameters())
    lora = [n for n in before if "lora_" in n]
    frozen = [n for n in before if "lora_" not in n]
    assert lora and frozen
    assert all(after[n].requires_grad for n in lora) and not any(after[n].requires_grad for n in frozen)
    assert any(not torch.equal(before[n], after[n]) for n in lora)
    assert all(torch.equal(before[n], after[n]) for n in frozen)
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert losses and all(math.isfinite(x) for x in losses)


def test_run_sft_writes_metrics_marker_and_skips_when_done(tiny_model_dir, tmp_path):
    data = tmp_path / "sft.jsonl"
    write_jsonl(data, short_examples())
    out = tmp_path / "sft"
    res = run_sft(sft_cfg(save_steps=1), LORA, data, tiny_model_dir, out, "float32")
    assert not res.skipped and res.steps == 2 and math.isfinite(res.final_loss)
    assert (out / "adapter" / "adapter_model.safetensors").exists()
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines if "loss" in x] == [1, 2]
    assert {"loss", "learning_rate", "epoch"} <= set(lines[0])
    done = json.loads((out / "complete.json").read_text())
    assert done["data_sha256"] == sha256_file(data) and done["steps"] == 2
    assert sorted(p.name for p in (out / "checkpoints").glob("checkpoint-*")) == [
        "checkpoint-1",
        "checkpoint-2",
    ]

    again = run_sft(sft_cfg(save_steps=1, logging_steps=2), LORA, data, tiny_model_dir, out, "float32")
    assert again.skipped and again.final_loss == res.final_loss  # logging cadence is not in the signature
    with pytest.raises(UserError, match="other data or settings"):
        run_sft(sft_cfg(learning_rate=1e-3), LORA, data, tiny_model_dir, out, "float32")
    forced = run_sft(sft_cfg(learning_rate=1e-3), LORA, data, tiny_model_dir, out, "float32", force=True)
    assert not forced.skipped


def test_dpo_learns_an_obvious_preference(tiny_model_dir, tmp_path):
    data = tmp_path / "pairs.jsonl"
    write_jsonl(data, rule_pairs(16))
    cfg = DPOSettings(
        epochs=3, batch_size=4, learning_rate=1e-2, beta=0.1, max_length=64, logging_steps=1,
        eval_fraction=0.25, eval_steps=3, save_steps=3, warmup_ratio=0.0,
    )  # fmt: skip
    out = tmp_path / "dpo"
    res = run_dpo(cfg, LoraSettings(r=8, dropout=0.0), data, tiny_model_dir, None, out, "float32")
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    train = [x for x in lines if "loss" in x]
    evals = [x for x in lines if "eval_loss" in x]
    assert {"rewards/margins", "rewards/accuracies"} <= set(train[0])
    assert train[-1]["rewards/accuracies"] > 0.9 and train[-1]["rewards/margins"] > 0
    assert evals[-1]["eval_rewards/accuracies"] > 0.9  # held-out pairs follow the rule too
    assert train[-1]["loss"] < train[0]["loss"]
    assert res.best_checkpoint_step is not None and res.best_eval_loss == min(x["eval_loss"] for x in evals)
    assert not (out / "adapter" / "ref").exists()


def test_dpo_on_sft_adapter_uses_frozen_sft_copy_as_reference(tiny_model_dir, tmp_path):
    data = tmp_path / "sft.jsonl"
    write_jsonl(data, short_examples())
    sft = run_sft(sft_cfg(), LORA, data, tiny_model_dir, tmp_path / "sft", "float32")
    cfg = DPOSettings(epochs=1, batch_size=4, max_length=64, eval_fraction=0.0, learning_rate=1e-2)
    trainer = build_dpo_trainer(
        cfg, LORA, rule_pairs(8), tiny_model_dir, sft.adapter, tmp_path / "dpo", "float32"
    )
    model = trainer.model
    assert set(model.peft_config) == {"default", "ref"}
    params = dict(model.named_parameters())
    ref = {n: p for n, p in params.items() if ".ref." in n}
    assert ref and not any(p.requires_grad for p in ref.values())
    for name, p in ref.items():  # the reference starts equal to the trained SFT adapter (not zero)
        assert torch.equal(p, params[name.replace(".ref.", ".default.")])
    assert any(p.abs().sum() > 0 for n, p in ref.items() if "lora_B" in n)
    # Reference log-probs were computed once, up front, into the dataset.
    assert {"ref_chosen_logps", "ref_rejected_logps"} <= set(trainer.train_dataset.column_names)


class InjectNaN(TrainerCallback):
    """Poison one LoRA weight before the given step, as a diverging run would."""

    def __init__(self, step: int):
        self.step = step

    def on_step_begin(self, args, state, control, model=None, **kwargs):
        if state.global_step + 1 == self.step:
            with torch.no_grad():
                next(p for n, p in model.named_parameters() if "lora_A" in n).fill_(float("nan"))


def test_nan_loss_stops_with_clear_error(tiny_model_dir, tmp_path):
    data = tmp_path / "sft.jsonl"
    write_jsonl(data, short_examples(12))
    with pytest.raises(StepFailed, match="loss became NaN at step 2"):
        run_sft(sft_cfg(), LORA, data, tiny_model_dir, tmp_path / "out", "float32", callbacks=[InjectNaN(2)])
    assert not (tmp_path / "out" / "complete.json").exists()


def test_empty_data_is_a_user_error(tiny_model_dir, tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(UserError, match="no SFT examples"):
        run_sft(sft_cfg(), LORA, empty, tiny_model_dir, tmp_path / "sft", "float32")
    with pytest.raises(UserError, match="no preference pairs"):
        run_dpo(DPOSettings(), LORA, empty, tiny_model_dir, None, tmp_path / "dpo", "float32")


def test_quantised_base_needs_cuda(tiny_model_dir):
    if torch.cuda.is_available():
        pytest.skip("this checks the CPU message")
    with pytest.raises(UserError, match="needs a CUDA device"):
        load_base(tiny_model_dir, "float32", LoraSettings(load_in_bits=4), False)


def test_liger_kernels_are_refused_where_they_cannot_run(tmp_path):
    from cai_bootstrap.training.runner import trl_kwargs

    assert trl_kwargs(SFTSettings(), tmp_path)["use_liger_kernel"] is False
    if torch.cuda.is_available():
        pytest.skip("this checks the CPU message")
    with pytest.raises(UserError, match="liger_kernels needs a CUDA GPU"):
        trl_kwargs(SFTSettings(liger_kernels=True), tmp_path)


def test_settings_validate():
    assert LoraSettings(r=8).lora_alpha == 16
    with pytest.raises(ValueError, match="multiple of eval_steps"):
        DPOSettings(save_steps=10, eval_steps=4)
    with pytest.raises(ValueError, match="extra"):
        SFTSettings(lr=1e-4)


def _greedy(model, tok, text: str) -> list[int]:
    ids = tok(text, return_tensors="pt")
    out = model.generate(
        **ids, max_new_tokens=12, do_sample=False, pad_token_id=tok.pad_token_id, tokenizer=tok
    )
    return out[0, ids["input_ids"].shape[1] :].tolist()


def test_merged_model_generates_like_base_plus_adapter(tiny_model_dir, tmp_path):
    from peft import LoraConfig, PeftModel, get_peft_model

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    # A random non-zero adapter (init_lora_weights=False) so that it visibly changes the output.
    cfg = LoraConfig(r=4, lora_alpha=32, target_modules="all-linear", init_lora_weights=False)
    get_peft_model(base, cfg).save_pretrained(tmp_path / "adapter")
    merged_dir = merge_adapter(tiny_model_dir, tmp_path / "adapter", tmp_path / "merged", {"stage": 1})

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    prompt = "Instruction: List three fruits.\nResponse:"
    plain = _greedy(AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval(), tok, prompt)
    fresh = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    with_adapter = _greedy(PeftModel.from_pretrained(fresh, tmp_path / "adapter").eval(), tok, prompt)
    merged = _greedy(AutoModelForCausalLM.from_pretrained(merged_dir).eval(), tok, prompt)
    assert merged == with_adapter and with_adapter != plain

    lineage = json.loads((merged_dir / "lineage.json").read_text())
    assert lineage["stage"] == 1
    for name, digest in lineage["weights_sha256"].items():
        assert sha256_file(merged_dir / name) == digest
    assert (merged_dir / "tokenizer.json").exists()
