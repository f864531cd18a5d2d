"""Model references: local folders, unknown names, and a hub id that fails clearly offline."""

import pytest

from cai_bootstrap import models
from cai_bootstrap.errors import UserError
from tiny import tiny_canary


def test_local_folder_resolves(tiny_model_dir):
    assert models.resolve(str(tiny_model_dir)) == tiny_model_dir.resolve()


def test_unknown_embedded_name():
    with pytest.raises(UserError, match="unknown embedded model"):
        models.resolve("embedded:nope")


def test_folder_without_config(tmp_path):
    with pytest.raises(UserError, match="no config.json"):
        models.resolve(str(tmp_path))


def test_hub_id_offline_fails_clearly(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_OFFLINE", True)
    with pytest.raises(UserError, match="could not fetch 'someone/some-model'"):
        models.resolve("someone/some-model")


def test_not_a_reference():
    with pytest.raises(UserError, match="neither an embedded name"):
        models.resolve("./missing/folder/x")


def test_quantized_flags_are_cleared(tiny_model_dir):
    model, _ = models.load(tiny_model_dir, canary=tiny_canary())
    model.config.quantization_config = {"quant_method": "gguf"}
    model.hf_quantizer = object()
    models.clear_quantized_flags(model)
    assert model.hf_quantizer is None
    assert not hasattr(model.config, "quantization_config")
