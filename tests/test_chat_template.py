"""A merged model's chat template renders messages into the frame the run evaluated in (training/chat.py)."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig, pipeline

from cai_bootstrap.engines import Sampling, cut_at_stop, input_ids_for
from cai_bootstrap.engines.hf import HFEngine
from cai_bootstrap.models import cache_dir
from cai_bootstrap.tasks import frame
from cai_bootstrap.training.chat import frame_template, install_frame
from cai_bootstrap.training.merge import merge_adapter

REQUESTS = ["List three fruits in lowercase.", "  Write a short note about the sea. Use no commas.  "]


@pytest.fixture(scope="module")
def merged(tiny_model_dir, tmp_path_factory):
    from peft import LoraConfig, get_peft_model

    tmp = tmp_path_factory.mktemp("chat")
    torch.manual_seed(1)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    cfg = LoraConfig(r=4, lora_alpha=32, target_modules="all-linear", init_lora_weights=False)
    get_peft_model(base, cfg).save_pretrained(tmp / "adapter")
    return merge_adapter(tiny_model_dir, tmp / "adapter", tmp / "model", {"stage": 1}, max_new_tokens=12)


def test_template_ids_are_the_eval_prompt_ids(merged):
    tok = AutoTokenizer.from_pretrained(merged)
    for request in REQUESTS:
        messages = [{"role": "user", "content": request}]
        ids = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=False)
        assert ids == input_ids_for(tok, frame.prompt(request))


def test_template_text_is_the_frame_and_training_completion(merged):
    tok = AutoTokenizer.from_pretrained(merged)
    q, a = REQUESTS[0], " apple, pear, plum. "
    one = [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
    text = tok.apply_chat_template(one, tokenize=False)
    assert text == tok.bos_token + frame.prompt(q) + frame.completion(a)
    # A second turn continues the transcript exactly as the shots do.
    two = [*one, {"role": "user", "content": REQUESTS[1]}]
    shown = tok.apply_chat_template(two, tokenize=False, add_generation_prompt=True)
    assert shown.endswith(f"{frame.completion(a)} {REQUESTS[1].strip()}\n{frame.RESPONSE}")
    system = [{"role": "system", "content": "Be brief."}, *one[:1]]
    rendered = tok.apply_chat_template(system, tokenize=False, add_generation_prompt=True)
    assert rendered == tok.bos_token + "Be brief.\n\n" + frame.prompt(q)


def test_template_refuses_unknown_roles(merged):
    tok = AutoTokenizer.from_pretrained(merged)
    with pytest.raises(Exception, match="tool"):
        tok.apply_chat_template([{"role": "tool", "content": "x"}], tokenize=False)


def test_generation_config_decodes_like_the_eval(merged):
    cfg = GenerationConfig.from_pretrained(merged)
    assert cfg.stop_strings == frame.STOP and cfg.do_sample is False and cfg.max_new_tokens == 12
    assert (merged / "chat_template.jinja").exists() or "chat_template" in json.loads(
        (merged / "tokenizer_config.json").read_text()
    )


def test_pipeline_on_messages_gives_the_eval_answer(merged):
    engine = HFEngine(*_load(merged))
    sampling = Sampling(temperature=0.0, max_new_tokens=12, stop=frame.STOP)
    answers = [frame.clean(t[0]) for t in engine.generate([frame.prompt(r) for r in REQUESTS], sampling)]
    pipe = pipeline("text-generation", model=str(merged), dtype=torch.float32)
    for request, answer in zip(REQUESTS, answers, strict=True):
        out = pipe([{"role": "user", "content": request}], tokenizer=pipe.tokenizer)
        reply = out[0]["generated_text"][-1]
        assert reply["role"] == "assistant"
        # transformers keeps the stop string it stopped on; the eval cuts it (frame.clean after the cut).
        assert frame.clean(cut_at_stop(reply["content"], frame.STOP)) == answer
    assert any(answers)


def _load(path):
    return AutoModelForCausalLM.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)


@pytest.mark.skipif(
    not (cache_dir() / "gemma-3-270m" / "hf" / "tokenizer.json").exists(),
    reason="embedded Gemma not converted",
)
def test_gemma_tokenizer_template_ids_are_the_eval_prompt_ids():
    tok = install_frame(AutoTokenizer.from_pretrained(cache_dir() / "gemma-3-270m" / "hf"))
    assert tok.chat_template == frame_template()
    for request in REQUESTS:
        ids = tok.apply_chat_template(
            [{"role": "user", "content": request}],
            add_generation_prompt=True,
            tokenize=True,
            return_dict=False,
        )
        assert ids == input_ids_for(tok, frame.prompt(request))
