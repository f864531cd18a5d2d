"""One behaviour, every engine: n, stop strings, finish reasons, ordering, scoring by text and ids.
`hf` runs the tiny model in-process; `openai` runs the same model behind tests/fake_openai.py, an
in-process server that also injects faults (429, 500, slow replies, dropped connections)."""

from __future__ import annotations

import pytest

import cai_bootstrap.engines.openai as openai_engine  # needs the dev extra's openai client
from cai_bootstrap.engines import Completion, Sampling
from cai_bootstrap.errors import StepFailed, UserError
from fake_openai import FakeOpenAI
from tiny import tiny_canary

PROMPTS = ["Instruction: Write a note.\nResponse:", "The sea", "List three fruits. Response: apple", "Answer"]


@pytest.fixture(scope="module")
def hf(tiny_model_dir):
    from cai_bootstrap.engines.hf import HFEngine

    return HFEngine.from_path(tiny_model_dir, batch_size=4, canary=tiny_canary())


def _openai(server: FakeOpenAI, tok, cache_dir=None, **settings):
    s = openai_engine.OpenAISettings(**({"base_url": server.url, "max_retries": 4, "timeout": 20} | settings))
    return openai_engine.OpenAIEngine(s, tok, cache_dir)


@pytest.fixture(scope="module", params=["hf", "openai"])
def engine(request, hf):
    if request.param == "hf":
        yield hf
        return
    with FakeOpenAI(hf) as server:
        yield _openai(server, hf.tok)


def test_n_samples_are_completions_with_finish_reasons(engine):
    s = Sampling(n=3, temperature=1.0, top_p=0.9, max_new_tokens=6, seed=3)
    out = engine.generate(PROMPTS, s)
    assert [len(x) for x in out] == [3] * len(PROMPTS)
    assert all(isinstance(c, Completion) and c.finish_reason in ("stop", "length") for r in out for c in r)
    assert engine.generate(PROMPTS, s) == out  # seeded: the same call gives the same text
    assert any(len(set(r)) > 1 for r in out)  # samples differ (a random model at temperature 1)


def test_answers_come_back_in_prompt_order(engine):
    s = Sampling(max_new_tokens=8)
    assert engine.generate(PROMPTS, s) == [engine.generate([p], s)[0] for p in PROMPTS]


def test_stop_strings_cut_and_say_stop(engine):
    free = engine.generate(PROMPTS[:1], Sampling(max_new_tokens=12))[0][0]
    assert free.finish_reason == "length" and len(free) > 3
    stop = free[1:3]
    cut = engine.generate(PROMPTS[:1], Sampling(max_new_tokens=12, stop=[stop]))[0][0]
    assert stop not in cut and free.startswith(cut) and cut.finish_reason == "stop"


def test_scores_match_the_in_process_model_by_text_and_by_ids(engine, hf):
    prompts, conts = PROMPTS[:2] * 2, [" apple", " B", " the sea is blue", " A"]
    ref = hf.logprobs(prompts, conts)
    assert engine.logprobs(prompts, conts) == pytest.approx(ref, abs=1e-4)
    ids = (
        [engine.input_ids_for(p) for p in prompts],
        [hf.tok(c, add_special_tokens=False).input_ids for c in conts],
    )
    assert engine.logprobs(*ids) == pytest.approx(ref, abs=1e-4)
    assert engine.capabilities.prompt_logprobs and engine.count_tokens(" apple") == hf.count_tokens(" apple")


# -- the openai engine against servers that fail or lack features ---------------------------------


def test_faults_are_retried_and_change_nothing(hf):
    s = Sampling(n=2, temperature=1.0, max_new_tokens=5, seed=1)
    with FakeOpenAI(hf) as clean:
        want = _openai(clean, hf.tok).generate(PROMPTS, s)
    with FakeOpenAI(hf, delay=0.01) as server:
        engine = _openai(server, hf.tok)
        server.faults.extend(["429", "500", "drop", "slow", "", "429", "drop"])
        assert engine.generate(PROMPTS, s) == want
        assert not server.faults and server.requests > server.answered


def test_requests_in_flight_are_bounded(hf):
    with FakeOpenAI(hf, native_n=False, delay=0.2) as server:
        engine = _openai(server, hf.tok, max_in_flight=3)
        assert not engine.capabilities.native_n
        server.max_in_flight = 0
        engine.generate(PROMPTS * 2, Sampling(n=2, temperature=1.0, max_new_tokens=3))
        assert 2 <= server.max_in_flight <= 3


def test_n_is_emulated_by_seeded_requests_when_the_server_ignores_it(hf):
    with FakeOpenAI(hf, native_n=False) as server:
        engine = _openai(server, hf.tok)
        server.bodies.clear()
        out = engine.generate(PROMPTS[:2], Sampling(n=3, temperature=1.0, max_new_tokens=6, seed=5))
        assert [len(r) for r in out] == [3, 3] and all(len(set(r)) > 1 for r in out)
        assert len(server.bodies) == 6 and len({b["seed"] for b in server.bodies}) == 6
        assert all(b["n"] == 1 for b in server.bodies)


def test_generation_turns_server_side_sampling_filters_off_unless_told_not_to(hf):
    """llama-cpp-python's server applies top_k 40, min_p 0.05, repeat_penalty 1.1 by default: every
    generation request says 'off' so the server samples what the recipe says; {} sends nothing."""
    s = Sampling(n=2, temperature=1.0, max_new_tokens=4, seed=1)
    with FakeOpenAI(hf) as server:
        server.bodies.clear()
        _openai(server, hf.tok).generate(PROMPTS[:1], s)
        sent = server.bodies[-1]
        assert (sent["top_k"], sent["min_p"], sent["repeat_penalty"], sent["repetition_penalty"]) == (
            0,
            0,
            1,
            1,
        )
        server.bodies.clear()
        _openai(server, hf.tok, sampling_fields={}).generate(PROMPTS[:1], s)
        assert not {"top_k", "min_p", "repeat_penalty"} & set(server.bodies[-1])


def test_a_killed_step_resumes_from_the_cache_without_resending(hf, tmp_path):
    s = Sampling(n=2, temperature=1.0, max_new_tokens=4, seed=2)
    with FakeOpenAI(hf) as server:
        want = _openai(server, hf.tok).generate(PROMPTS, s)
        first = _openai(server, hf.tok, tmp_path, max_retries=0, max_in_flight=1)
        server.faults.extend(["", "", "500"])
        with pytest.raises(StepFailed, match="re-run resumes"):
            first.generate(PROMPTS, s)
        cached = len(first.cache.data)
        assert cached == 2
        again = _openai(server, hf.tok, tmp_path)
        server.bodies.clear()
        assert again.generate(PROMPTS, s) == want
        assert len([b for b in server.bodies if b["prompt"] in PROMPTS]) == len(PROMPTS) - cached


def test_a_server_with_another_tokenizer_is_refused(hf, other_tokenizer):
    with FakeOpenAI(hf, tokenizer=other_tokenizer) as server, pytest.raises(UserError, match="tokenizer"):
        _openai(server, hf.tok)


def test_a_server_that_cannot_score_is_refused_unless_scoring_is_off(hf):
    with FakeOpenAI(hf, echo=False) as server:
        with pytest.raises(UserError, match="does not return prompt logprobs") as e:
            _openai(server, hf.tok)
        assert "judge.enabled: false" in e.value.one_line()
        engine = _openai(server, hf.tok, scoring=False)
        assert engine.generate(PROMPTS[:1], Sampling(max_new_tokens=3))[0][0].finish_reason == "length"
        with pytest.raises(UserError, match="prompt logprobs"):
            engine.logprobs(["a"], [" b"])


def test_text_scoring_without_token_id_prompts(hf):
    with FakeOpenAI(hf, token_ids=False) as server:
        engine = _openai(server, hf.tok)
        assert not engine.capabilities.token_ids
        ref = hf.logprobs(PROMPTS[:2], [" apple", " B"])
        assert engine.logprobs(PROMPTS[:2], [" apple", " B"]) == pytest.approx(ref, abs=1e-4)


@pytest.fixture(scope="module")
def other_tokenizer():
    """A byte-level BPE tokenizer with other merges: counts the probe text differently."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<pad>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(["Tokenizer probe: naive cafe, see https://example.org done."] * 8, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>")


def test_the_holder_builds_the_configured_engine(hf, tiny_model_dir, tmp_path):
    """model.engine: openai serves model.generator; a model the run trained, and evaluation, run
    in-process (or stop the run)."""
    from cai_bootstrap.config import load_recipe
    from cai_bootstrap.engines.hf import HFEngine
    from cai_bootstrap.engines.holder import Engines
    from tiny import build_tiny_model

    trained = build_tiny_model(tmp_path / "trained", seed=1)
    with FakeOpenAI(hf) as server:
        sets = [
            f"model.generator={tiny_model_dir}",
            "model.canary.max_nll=null",  # random weights: exempt from the canary's likelihood bound
            "model.engine=openai",
            f"model.openai.base_url={server.url}",
        ]
        m = load_recipe(None, sets).model
        engines = Engines("float32", "cpu", 4, settings=m, cache_dir=tmp_path / "cache")
        assert isinstance(engines.get(tiny_model_dir), openai_engine.OpenAIEngine)
        assert isinstance(engines.get(trained), HFEngine)
        assert isinstance(engines.get(tiny_model_dir, evaluation=True), HFEngine)  # same engine as trained
        strict = load_recipe(None, [*sets, "model.openai.trained_models=error"]).model
        with pytest.raises(UserError, match="trained_models"):
            Engines("float32", "cpu", 4, settings=strict).get(trained)


def test_the_request_cache_survives_a_torn_last_line(tmp_path):
    path = tmp_path / "c.jsonl"
    cache = openai_engine.ResultCache(path)
    cache.put("a", [["x", "stop"]])
    with path.open("a") as f:
        f.write('{"key": "b", "val')  # killed mid-write
    again = openai_engine.ResultCache(path)
    assert again.data == {"a": [["x", "stop"]]}
    again.put("c", 1.5)
    assert openai_engine.ResultCache(path).data == {"a": [["x", "stop"]], "c": 1.5}
