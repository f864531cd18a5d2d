"""fastdecode's loop against plain `generate`: greedy token for token (EOS, stop strings, padding,
cache buckets, sliding-window layers), and sampling that stays inside the exact nucleus."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, StoppingCriteriaList

from cai_bootstrap.engines import fastdecode
from cai_bootstrap.engines.fastdecode import FastDecoder, TextStop
from cai_bootstrap.engines.hf import NucleusSampler, StopOnText

ROPE = {"rope_type": "default", "rope_theta": 10.0}
PROMPTS = [
    "Instruction: Write a short note about the sea. Response:",
    "The quick brown fox",
    "Answer in exactly five words.",
]


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    # A low RoPE base makes the tiny model's output depend on exact positions.
    model = AutoModelForCausalLM.from_pretrained(
        tiny_model_dir, dtype=torch.float32, rope_parameters=ROPE
    ).eval()
    # Random init gives near-uniform attention; larger q/k make it peaked, so a wrong position or a
    # wrongly masked slot changes the output.
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.q_proj.weight.mul_(8.0)
            layer.self_attn.k_proj.weight.mul_(8.0)
    return model, AutoTokenizer.from_pretrained(tiny_model_dir)


def left_pad(tok, prompts, device="cpu"):
    seqs = [[tok.bos_token_id] + tok(p, add_special_tokens=False).input_ids for p in prompts]
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), tok.pad_token_id)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, width - len(s) :] = torch.tensor(s)
        mask[i, width - len(s) :] = 1
    return ids.to(device), mask.to(device)


def plain(model, ids, mask, new, pad, stops=None, tok=None):
    criteria = StoppingCriteriaList([StopOnText(tok, stops, ids.shape[1])]) if stops else None
    with torch.inference_mode():
        out = model.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=new,
            do_sample=False,
            pad_token_id=pad,
            stopping_criteria=criteria,
        )
    return out[:, ids.shape[1] :]


def eos_of(model) -> list[int]:
    eos = model.generation_config.eos_token_id
    return [eos] if isinstance(eos, int) else list(eos or [])


def test_greedy_equals_generate_across_buckets(tiny):
    model, tok = tiny
    ids, mask = left_pad(tok, PROMPTS)
    new = fastdecode.BUCKET + 20  # the decode crosses from the first cache bucket into the second
    ref = plain(model, ids, mask, new, tok.pad_token_id)
    got = FastDecoder(model).generate_ids(ids, mask, new, pad_id=tok.pad_token_id, eos_ids=eos_of(model))
    assert got.shape == ref.shape
    assert torch.equal(got, ref)


def test_eos_finishes_rows_like_generate(tiny):
    model, tok = tiny
    ids, mask = left_pad(tok, PROMPTS)
    # Declare the token greedy decoding makes at step 5 of row 0 an EOS: rows then end at different steps.
    eos = int(plain(model, ids, mask, 6, tok.pad_token_id)[0, 5])
    model.generation_config.eos_token_id = eos
    try:
        ref = plain(model, ids, mask, 60, tok.pad_token_id)
        got = FastDecoder(model).generate_ids(ids, mask, 60, pad_id=tok.pad_token_id, eos_ids=[eos])
    finally:
        model.generation_config.eos_token_id = tok.eos_token_id
    assert (ref == tok.pad_token_id).any()
    assert torch.equal(got, ref)


def test_stop_strings_end_rows_like_stop_on_text(tiny):
    model, tok = tiny
    ids, mask = left_pad(tok, PROMPTS)
    free = plain(model, ids, mask, 40, tok.pad_token_id)
    # A stop string taken from row 1's own output (a few characters made around token 20).
    text = tok.decode(free[1, :22], skip_special_tokens=True)
    stops = [text[-3:]]
    ref = plain(model, ids, mask, 40, tok.pad_token_id, stops, tok)
    got = FastDecoder(model).generate_ids(
        ids, mask, 40, pad_id=tok.pad_token_id, eos_ids=eos_of(model), stop=TextStop(tok, stops)
    )
    assert ref.shape[1] < 40 or (ref == tok.pad_token_id).any()
    assert torch.equal(got, ref)


def test_repeated_prompts_are_prefilled_once_and_decode_like_generate(tiny):
    model, tok = tiny
    ids, mask = left_pad(tok, [p for p in PROMPTS for _ in range(3)])  # n=3 samples, as HFEngine rows
    dec = FastDecoder(model)
    calls = []
    hook = model.model.register_forward_pre_hook(
        lambda m, a, kw: calls.append(kw["input_ids"].shape), with_kwargs=True
    )
    try:
        got = dec.generate_ids(ids, mask, 30, pad_id=tok.pad_token_id, eos_ids=eos_of(model))
    finally:
        hook.remove()
    assert calls[0] == (len(PROMPTS), ids.shape[1])  # the prefill saw each prompt once
    assert torch.equal(got, plain(model, ids, mask, 30, tok.pad_token_id))
    # Sampled rows of one prompt share its prefill but draw their own tokens.
    torch.manual_seed(0)
    sampled = dec.generate_ids(ids, mask, 30, pad_id=tok.pad_token_id, sampler=NucleusSampler(1.0, 1.0))
    assert not torch.equal(sampled[0], sampled[1])
    sets = nucleus_sets(model, ids, mask, sampled, 1.0, 1.0)
    assert all(int(sampled[r, t]) in sets[r][t] for r in range(len(ids)) for t in range(30))


def test_decoder_reused_for_smaller_batch(tiny):
    model, tok = tiny
    dec = FastDecoder(model)
    ids, mask = left_pad(tok, PROMPTS)
    dec.generate_ids(ids, mask, 10, pad_id=tok.pad_token_id, eos_ids=eos_of(model))
    state = dec.state
    ids2, mask2 = left_pad(tok, PROMPTS[1:])
    got = dec.generate_ids(ids2, mask2, 10, pad_id=tok.pad_token_id, eos_ids=eos_of(model))
    assert dec.state is state  # padded up to the held batch of 3, not rebuilt
    assert torch.equal(got, plain(model, ids2, mask2, 10, tok.pad_token_id))


def test_sliding_window_model_equals_generate():
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    torch.manual_seed(0)
    cfg = Gemma3TextConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        sliding_window=6,
        layer_types=["sliding_attention", "full_attention"],
        rope_parameters={"sliding_attention": ROPE, "full_attention": ROPE},
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=2,
    )
    model = Gemma3ForCausalLM(cfg).eval()
    ids = torch.randint(3, 64, (3, 9))
    mask = torch.ones_like(ids)
    mask[1, :4] = 0
    mask[2, :7] = 0
    ref = plain(model, ids, mask, 30, 0)
    got = FastDecoder(model).generate_ids(ids, mask, 30, pad_id=0, eos_ids=[1])
    assert torch.equal(got, ref)


def nucleus_sets(model, ids, mask, new_ids, temperature, top_p) -> list[list[set[int]]]:
    """Teacher-forced exact nucleus (full sort) at every new position of every row."""
    full = torch.cat([ids, new_ids], dim=1)
    full_mask = torch.cat([mask, torch.ones_like(new_ids)], dim=1)
    pos = (full_mask.cumsum(-1) - 1).clamp(min=0)
    with torch.inference_mode():
        logits = model(input_ids=full, attention_mask=full_mask, position_ids=pos).logits
    probs = torch.softmax(logits[:, ids.shape[1] - 1 : -1].float() / temperature, dim=-1)
    p, idx = probs.sort(dim=-1, descending=True)
    keep = (p.cumsum(-1) - p) < top_p
    return [[set(idx[r, t][keep[r, t]].tolist()) for t in range(new_ids.shape[1])] for r in range(len(ids))]


def nucleus_top(model, ids, mask, new_ids) -> torch.Tensor:
    full = torch.cat([ids, new_ids], dim=1)
    full_mask = torch.cat([mask, torch.ones_like(new_ids)], dim=1)
    pos = (full_mask.cumsum(-1) - 1).clamp(min=0)
    with torch.inference_mode():
        logits = model(input_ids=full, attention_mask=full_mask, position_ids=pos).logits
    return logits[:, ids.shape[1] - 1 : -1].argmax(-1)


def test_sampling_stays_in_exact_nucleus_with_redraws(tiny):
    model, tok = tiny
    ids, mask = left_pad(tok, PROMPTS)
    sampler = NucleusSampler(temperature=0.3, top_p=0.6)
    sampler.TOP_K = 1  # the top-1 rarely holds 0.6 of the mass: most steps are redrawn exactly
    torch.manual_seed(0)
    got = FastDecoder(model).generate_ids(ids, mask, 40, pad_id=tok.pad_token_id, sampler=sampler)
    assert got.shape == (3, 40)
    assert sampler.fallbacks > 0
    sets = nucleus_sets(model, ids, mask, got, 0.3, 0.6)
    outside = [(r, t) for r in range(3) for t in range(40) if int(got[r, t]) not in sets[r][t]]
    assert outside == []
    # The nucleus really held several tokens, and the exact redraws did not always take the top one.
    assert max(len(s) for row in sets for s in row) > 1
    assert (got != nucleus_top(model, ids, mask, got))[:, 1:].any()


def test_unsupported_generation_settings_raise(tiny):
    model, tok = tiny
    ids, mask = left_pad(tok, PROMPTS[:1])
    model.generation_config.repetition_penalty = 1.3
    try:
        with pytest.raises(ValueError, match="repetition_penalty"):
            FastDecoder(model).generate_ids(ids, mask, 4, pad_id=tok.pad_token_id)
    finally:
        model.generation_config.repetition_penalty = 1.0


@pytest.mark.gpu
def test_cuda_graph_greedy_equals_generate(tiny):
    model, tok = tiny
    model = model.to("cuda")
    try:
        ids, mask = left_pad(tok, PROMPTS, "cuda")
        new = fastdecode.BUCKET + 20
        dec = FastDecoder(model)
        got = dec.generate_ids(ids, mask, new, pad_id=tok.pad_token_id, eos_ids=eos_of(model))
        assert len(dec.graphs) == 2  # one graph per cache bucket
        assert torch.equal(got, plain(model, ids, mask, new, tok.pad_token_id))
    finally:
        model.to("cpu")


def test_liger_kernels_are_refused_on_a_cpu(tiny_model_dir):
    from cai_bootstrap.engines.hf import HFEngine
    from cai_bootstrap.errors import UserError

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    with pytest.raises(UserError, match="model.liger_kernels needs a CUDA GPU"):
        HFEngine(model, AutoTokenizer.from_pretrained(tiny_model_dir), liger_kernels=True)


@pytest.mark.gpu
def test_liger_kernels_in_cuda_graphs_equal_generate(tiny_model_dir):
    """model.liger_kernels: Liger's Triton kernels captured in our graphs decode exactly as generate
    on the same patched model (float32). Last in this file: Liger patches Llama for the process."""
    from cai_bootstrap.engines.hf import HFEngine

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32, rope_parameters=ROPE)
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    engine = HFEngine(model.to("cuda").eval(), tok, liger_kernels=True)
    assert model.model.norm._get_name() == "LigerRMSNorm"  # Liger rebinds the instance's forward
    ids, mask = left_pad(tok, PROMPTS, "cuda")
    new = fastdecode.BUCKET + 20
    got = engine._fast.generate_ids(ids, mask, new, pad_id=tok.pad_token_id, eos_ids=eos_of(model))
    assert torch.equal(got, plain(model, ids, mask, new, tok.pad_token_id))
