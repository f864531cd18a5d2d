"""Ray Data fan-out smoke test on CPU (skipped without the [ray] extra): a step's chunks over two
actors, each with its own HF engine on the tiny model, give exactly the records of the sequential
run, in item order, and a partly done step resumes from its shards."""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from cai_bootstrap.engines import Sampling  # noqa: E402
from cai_bootstrap.engines.hf import HFEngine  # noqa: E402
from cai_bootstrap.engines.ray import run_chunked_ray  # noqa: E402
from cai_bootstrap.records import Instruction, Response  # noqa: E402
from cai_bootstrap.store import Step, run_chunked  # noqa: E402
from tiny import tiny_canary  # noqa: E402


def answer_chunk(index: int, chunk: list[Instruction], engine) -> list[Response]:
    """A responses-like step: two answers per instruction, seeded by the chunk index."""
    s = Sampling(n=2, temperature=1.0, max_new_tokens=5, seed=index)
    out = engine.generate([i.prompt for i in chunk], s)
    return [
        Response(
            id=f"{i.id}-s{j}", instruction_id=i.id, sample=j, text=t, truncated=t.finish_reason == "length"
        )
        for i, texts in zip(chunk, out, strict=True)
        for j, t in enumerate(texts)
    ]


def ids_of(i: Instruction) -> list[str]:
    return [f"{i.id}-s{j}" for j in range(2)]


@pytest.fixture(scope="module")
def cluster():
    here = Path(__file__).parent
    old = os.environ.get("PYTHONPATH")
    # Actors import this module (answer_chunk) and the package from the worktree.
    os.environ["PYTHONPATH"] = os.pathsep.join([str(here.parent / "src"), str(here)] + ([old] if old else []))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()
    if old is None:
        os.environ.pop("PYTHONPATH")
    else:
        os.environ["PYTHONPATH"] = old


# slow: each actor imports torch and transformers and loads its engine (about 50 s on 2 busy cores).
@pytest.mark.slow
def test_chunks_over_two_actors_equal_the_sequential_run_and_resume(cluster, tiny_model_dir, tmp_path):
    items = [
        Instruction(
            id=f"i{k}",
            stage=1,
            split="train",
            prompt=f"Instruction {k}: write.\nResponse:",
            task="t",
            task_kind="k",
            topic="t",
        )
        for k in range(8)
    ]
    make = partial(HFEngine.from_path, tiny_model_dir, batch_size=4, canary=tiny_canary())
    want = run_chunked(Step(tmp_path / "seq", {}, {}), items, 2, Response, partial(_bound, make()), ids_of)

    part = Step(tmp_path / "ray", {}, {})
    run_chunked(part, items[:4], 2, Response, partial(_bound, make()), ids_of)  # a killed run's shards
    got = run_chunked_ray(part, items, 2, Response, answer_chunk, ids_of, make_engine=make, workers=2)
    assert [r.id for r in got] == [x for i in items for x in ids_of(i)]
    assert got == want
    assert len(part.load_shards(Response)) == 16  # the two finished chunks were not redone


def _bound(engine, index, chunk):
    return answer_chunk(index, chunk, engine)
