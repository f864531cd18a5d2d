"""Models are evaluated one at a time: asking for a second model frees the first."""

import gc
import weakref

from cai_bootstrap.engines.holder import Engines, model_identity
from tiny import build_tiny_model, tiny_canary


def test_second_model_frees_the_first(tmp_path, tiny_model_dir):
    other = build_tiny_model(tmp_path / "other", seed=1)
    engines = Engines("float32", "cpu", 4, canary=tiny_canary())
    first = weakref.ref(engines.get(tiny_model_dir).model)
    assert engines.get(tiny_model_dir).model is first()  # same path: no reload
    engines.get(other)
    gc.collect()
    assert first() is None  # only one model alive at any time
    second = weakref.ref(engines.engine.model)
    engines.release()
    gc.collect()
    assert second() is None


def test_model_identity_tracks_weights(tmp_path, tiny_model_dir):
    other = build_tiny_model(tmp_path / "other", seed=1, hidden=32)
    assert model_identity(tiny_model_dir) == model_identity(tiny_model_dir)
    assert model_identity(tiny_model_dir) != model_identity(other)
