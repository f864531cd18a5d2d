"""The HF engine on a tiny random model: completion-mode token ids, seeds, stops, n, batching, scores."""

import pytest
import torch

from cai_bootstrap.engines import Sampling
from cai_bootstrap.engines.hf import HFEngine, cut_at_stop
from tiny import tiny_canary

PROMPTS = [
    "Instruction: Write a note.\nResponse:",
    "The sea",
    "List three fruits in lowercase. Response: apple",
]


@pytest.fixture(scope="module")
def engine(tiny_model_dir):
    return HFEngine.from_path(tiny_model_dir, batch_size=2, canary=tiny_canary())


def test_prompt_ids_are_bos_plus_plain_ids(engine):
    """No chat template, no EOS, nothing added but the explicit BOS."""
    text = "Instruction: hi\nResponse:"
    plain = engine.tok(text, add_special_tokens=False).input_ids
    assert engine.input_ids_for(text) == [engine.tok.bos_token_id] + plain
    assert engine.tok.eos_token_id not in engine.input_ids_for(text)


def test_same_seed_same_text_and_n_samples(engine):
    s = Sampling(n=3, temperature=1.0, top_p=0.9, max_new_tokens=12, seed=7)
    a = engine.generate(PROMPTS, s)
    b = engine.generate(PROMPTS, s)
    assert a == b
    assert [len(x) for x in a] == [3, 3, 3]
    c = engine.generate(PROMPTS, s.model_copy(update={"seed": 8}))
    assert c != a


def test_greedy_batched_equals_batch_size_one(tiny_model_dir):
    s = Sampling(n=1, temperature=0.0, max_new_tokens=10)
    batched = HFEngine.from_path(tiny_model_dir, batch_size=3, canary=tiny_canary()).generate(PROMPTS, s)
    single = HFEngine.from_path(tiny_model_dir, batch_size=1, canary=tiny_canary()).generate(PROMPTS, s)
    assert batched == single


def test_stop_strings_cut_the_text(engine):
    free = engine.generate(PROMPTS[:1], Sampling(max_new_tokens=20))[0][0]
    assert len(free) > 2
    stop = free[1:3]
    cut = engine.generate(PROMPTS[:1], Sampling(max_new_tokens=20, stop=[stop]))[0][0]
    assert stop not in cut
    assert free.startswith(cut)


def test_cut_at_stop_takes_the_earliest():
    assert cut_at_stop("abc\nInstruction: x\n\n\n\n", ["\n\n\n\n", "\nInstruction:"]) == "abc"
    assert cut_at_stop("no stop here", ["\nInstruction:"]) == "no stop here"


@pytest.mark.parametrize(
    "prompts, conts",
    [
        (["The sea is", "Instruction: hi\nResponse:"], [" wide and blue", " ok"]),
        # One-token continuations of one prompt share a forward; mixed with a longer one and a repeat.
        (["Pick: A or B? ", "Pick: A or B? ", "The sea is ", "Pick: A or B? "], ["A", "B", "A", "A"]),
    ],
)
def test_logprobs_match_a_full_forward(engine, prompts, conts):
    rows = []
    hook = engine.model.register_forward_pre_hook(
        lambda m, a, kw: rows.append(kw["input_ids"].shape[0]), with_kwargs=True
    )
    try:
        got = engine.logprobs(prompts, conts)
    finally:
        hook.remove()
    one = [
        p
        for p, c in zip(prompts, conts, strict=True)
        if len(engine.tok(c, add_special_tokens=False).input_ids) == 1
    ]
    assert sum(rows) == len(prompts) - len(one) + len(set(one))
    for p, c, g in zip(prompts, conts, got, strict=True):
        p_ids = engine.input_ids_for(p)
        c_ids = engine.tok(c, add_special_tokens=False).input_ids
        ids = torch.tensor([p_ids + c_ids])
        with torch.no_grad():
            logp = torch.log_softmax(engine.model(ids).logits[0, :-1].float(), -1)
        want = sum(logp[len(p_ids) - 1 + i, t].item() for i, t in enumerate(c_ids))
        assert g == pytest.approx(want, abs=1e-4)


def test_count_tokens_matches_the_ids_a_continuation_gets(engine):
    text = " wide and blue"
    assert engine.count_tokens(text) == len(engine.tok(text, add_special_tokens=False).input_ids) > 0


def test_finish_reason_says_length_only_when_the_budget_ran_out(engine):
    from cai_bootstrap.engines import Completion

    free = engine.generate(PROMPTS, Sampling(max_new_tokens=6))
    assert all(isinstance(c, Completion) and c.finish_reason == "length" for row in free for c in row)
    stop = free[0][0][1:3]
    cut = engine.generate(PROMPTS[:1], Sampling(max_new_tokens=6, stop=[stop]))[0][0]
    assert cut.finish_reason == "stop" and stop not in cut


def test_scoring_token_ids_equals_scoring_their_text(engine):
    p, c = PROMPTS[0], " apple pie"
    ids_p, ids_c = engine.input_ids_for(p), engine.tok(c, add_special_tokens=False).input_ids
    text = engine.logprobs([p, p], [c, " B"])
    ids = engine.logprobs([ids_p, ids_p], [ids_c, engine.tok(" B", add_special_tokens=False).input_ids])
    assert ids == pytest.approx(text, abs=1e-5)
    assert engine.tokenizer is engine.tok and engine.capabilities.prompt_logprobs


def test_no_ray_pool_without_workers(tiny_model_dir):
    """model.ray.workers 0 (the default): the step runs in this process, Ray is never imported."""
    from cai_bootstrap.config import ModelSettings
    from cai_bootstrap.engines.holder import Engines

    holder = Engines("float32", "cpu", 4, settings=ModelSettings(generator=str(tiny_model_dir)))
    assert holder.actor_pool(tiny_model_dir) is None


def test_ray_actors_on_cuda_need_gpus(tiny_model_dir):
    """Ray gives an actor that asks for no GPU none at all: refused before any actor starts."""
    import pytest

    from cai_bootstrap.config import ModelSettings
    from cai_bootstrap.engines.holder import Engines
    from cai_bootstrap.errors import UserError

    settings = ModelSettings(generator=str(tiny_model_dir), ray={"workers": 2})
    with pytest.raises(UserError, match="gpus_per_worker is 0"):
        Engines("float32", "cuda", 4, settings=settings).actor_pool(tiny_model_dir)
    settings = ModelSettings(generator=str(tiny_model_dir), ray={"workers": 2, "gpus_per_worker": 1})
    assert Engines("float32", "cuda", 4, settings=settings).actor_pool(tiny_model_dir).gpus_per_worker == 1
