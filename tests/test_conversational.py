"""The conversational training files: same text as the completion form through the frame's chat
template, load with `datasets`, train in TRL's own trainers unchanged and through ours."""

from __future__ import annotations

import math

import torch
from datasets import load_dataset
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import DPOConfig, DPOTrainer, SFTConfig, SFTTrainer

from cai_bootstrap.records import Instruction, PreferencePair, SFTExample
from cai_bootstrap.tasks import frame
from cai_bootstrap.training.chat import install_frame
from cai_bootstrap.training.config import DPOSettings, LoraSettings, SFTSettings
from cai_bootstrap.training.conversational import PAIRS_FILE, SFT_FILE, write_conversational
from cai_bootstrap.training.data import preference_dataset
from cai_bootstrap.training.dpo import build_dpo_trainer
from cai_bootstrap.training.sft import build_sft_trainer

QUESTIONS = ["Write about the sea.", "List three fruits.", "Name a colour.", "Describe a fox."]
LORA = LoraSettings(r=4, dropout=0.0)


def _data():
    ins = [
        Instruction(id=f"i{k}", stage=1, split="train", prompt=q, task=q, task_kind="t", topic="x")
        for k, q in enumerate(QUESTIONS)
    ]
    sft = [
        SFTExample(
            id=f"s{k}",
            instruction_id=i.id,
            prompt=frame.prompt(i.prompt),
            completion=frame.completion("Blue."),
        )
        for k, i in enumerate(ins)
    ]
    pairs = [
        PreferencePair(
            id=f"p{k}",
            instruction_id=i.id,
            prompt=frame.prompt(i.prompt),
            chosen=frame.completion("The sea is wide. done"),
            rejected=frame.completion("The sea is wide, fox"),
            chosen_id="c",
            rejected_id="r",
            reason="test",
        )
        for k, i in enumerate(ins)
    ]
    return ins, sft, pairs


def _files(tmp_path):
    ins, sft, pairs = _data()
    write_conversational(tmp_path, ins, sft, pairs)
    return sft, pairs


def test_files_render_to_the_completion_form_text(tmp_path, tiny_model_dir):
    sft, pairs = _files(tmp_path)
    tok = install_frame(AutoTokenizer.from_pretrained(tiny_model_dir))
    chat_sft = load_dataset("json", data_files=str(tmp_path / SFT_FILE), split="train")
    chat_pairs = load_dataset("json", data_files=str(tmp_path / PAIRS_FILE), split="train")
    assert chat_sft[0]["messages"][0] == {"role": "user", "content": QUESTIONS[0]}
    assert chat_pairs[0]["chosen"] == [{"role": "assistant", "content": "The sea is wide. done"}]
    for row, ex in zip(chat_sft, sft, strict=True):
        assert (
            tok.apply_chat_template(row["messages"], tokenize=False)
            == tok.bos_token + ex.prompt + ex.completion
        )
    for row, pair in zip(chat_pairs, pairs, strict=True):
        text = tok.apply_chat_template(row["prompt"] + row["rejected"], tokenize=False)
        assert text == tok.bos_token + pair.prompt + pair.rejected


def _train_one_step(trainer):
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    trainer.train()
    after = dict(trainer.model.named_parameters())
    assert trainer.state.global_step == 1
    assert math.isfinite(trainer.state.log_history[-1]["train_loss"])
    assert any(not torch.equal(before[n], after[n]) for n in before)


def _trl_args(cls, tmp_path, **kw):
    return cls(
        output_dir=str(tmp_path / "out"),
        max_steps=1,
        per_device_train_batch_size=4,
        learning_rate=1e-2,
        use_cpu=True,
        report_to="none",
        save_strategy="no",
        bf16=False,
        max_length=1024,
        **kw,
    )


def test_trl_trainers_train_the_files_unchanged(tmp_path, tiny_model_dir):
    """What a researcher would do: load the files with `datasets`, hand them to TRL as they are."""
    from peft import LoraConfig

    _files(tmp_path)
    tok = install_frame(AutoTokenizer.from_pretrained(tiny_model_dir))
    peft = LoraConfig(r=4, target_modules="all-linear", task_type="CAUSAL_LM")
    data = load_dataset("json", data_files=str(tmp_path / SFT_FILE), split="train").select_columns(
        ["messages"]
    )
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    args = _trl_args(SFTConfig, tmp_path, assistant_only_loss=True)
    _train_one_step(
        SFTTrainer(model=model, args=args, train_dataset=data, processing_class=tok, peft_config=peft)
    )
    pairs = load_dataset("json", data_files=str(tmp_path / PAIRS_FILE), split="train")
    pairs = pairs.select_columns(["prompt", "chosen", "rejected"])
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    args = _trl_args(DPOConfig, tmp_path)
    _train_one_step(
        DPOTrainer(model=model, args=args, train_dataset=pairs, processing_class=tok, peft_config=peft)
    )


def test_our_trainers_train_from_the_conversational_form(tmp_path, tiny_model_dir):
    sft, pairs = _files(tmp_path)
    from cai_bootstrap.training.conversational import read_pairs, read_sft

    cfg = SFTSettings(dataset_form="conversational", epochs=1, batch_size=4, save_steps=100, logging_steps=1)
    trainer = build_sft_trainer(
        cfg, LORA, read_sft(cfg, tmp_path / SFT_FILE), tiny_model_dir, tmp_path / "sft", "float32"
    )
    # TRL masks everything but the assistant turn: the labelled tokens are the completion's ids.
    batch = trainer.data_collator([trainer.train_dataset[0]])
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    labelled = batch["labels"][0][batch["labels"][0] != -100].tolist()
    assert tok.decode(labelled) == sft[0].completion
    _train_one_step_epoch(trainer)
    dcfg = DPOSettings(
        dataset_form="conversational", epochs=1, batch_size=4, eval_fraction=0.0, save_steps=100
    )
    dpo = build_dpo_trainer(
        dcfg, LORA, read_pairs(dcfg, tmp_path / PAIRS_FILE), tiny_model_dir, None, tmp_path / "dpo", "float32"
    )
    # TRL's tokenisation of the conversations gives the ids of our completion-form tokenisation.
    ours = preference_dataset(pairs, tok, 1024)
    for theirs, mine in zip(dpo.train_dataset, ours, strict=True):
        for col in ("prompt_ids", "chosen_ids", "rejected_ids"):
            assert theirs[col] == mine[col]
    _train_one_step_epoch(dpo)


def _train_one_step_epoch(trainer):
    trainer.train()
    assert trainer.state.global_step == 1 and math.isfinite(trainer.state.log_history[-1]["train_loss"])
