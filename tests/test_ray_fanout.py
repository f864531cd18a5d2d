"""Ray Data fan-out smoke test on CPU (skipped without the [ray] extra): the responses step's chunks
over two actors, each with its own HF engine on the tiny model (the pool a run builds from
model.ray), give exactly the records of the in-process run, in item order, and a partly done step
resumes from its shards."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from cai_bootstrap.config import ModelSettings, ResponseSettings  # noqa: E402
from cai_bootstrap.engines.holder import Engines  # noqa: E402
from cai_bootstrap.records import Instruction  # noqa: E402
from cai_bootstrap.steps import responses  # noqa: E402
from cai_bootstrap.store import Step  # noqa: E402
from tiny import tiny_canary  # noqa: E402


@pytest.fixture(scope="module")
def cluster():
    here = Path(__file__).parent
    old = os.environ.get("PYTHONPATH")
    # Actors import the package from the worktree (a pip-installed package needs nothing).
    os.environ["PYTHONPATH"] = os.pathsep.join([str(here.parent / "src"), str(here)] + ([old] if old else []))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()
    if old is None:
        os.environ.pop("PYTHONPATH")
    else:
        os.environ["PYTHONPATH"] = old


def _instructions(n: int) -> list[Instruction]:
    return [
        Instruction(
            id=f"i{k}",
            stage=1,
            split="train",
            prompt=f"Instruction {k}: write.",
            task="t",
            task_kind="k",
            topic="t",
        )
        for k in range(n)
    ]


# slow: each actor imports torch and transformers and loads its engine (about 20 s on 2 cores).
@pytest.mark.slow
def test_responses_over_two_actors_equal_the_in_process_run_and_resume(cluster, tiny_model_dir, tmp_path):
    cfg = ResponseSettings(
        k=2, max_new_tokens=5, chunk=2, max_truncated_fraction=1, max_same_answer_fraction=1
    )
    items = _instructions(8)
    settings = ModelSettings(generator=str(tiny_model_dir), ray={"workers": 2})
    holder = Engines("float32", "cpu", 4, settings=settings, canary=tiny_canary())
    pool = holder.actor_pool(tiny_model_dir)
    assert pool is not None and pool.workers == 2
    engine = holder.get(tiny_model_dir)
    want = responses.run(cfg, items, engine, Step(tmp_path / "seq", {}, {}), seed=3)

    part = Step(tmp_path / "ray", {}, {})
    responses.run(cfg, items[:4], engine, part, seed=3)  # a killed run's shards: chunks 0 and 1
    holder.release()
    got = responses.run(cfg, items, None, part, seed=3, pool=pool)
    assert [r.id for r in got] == [x for i in items for x in responses.response_ids(2, i)]
    assert got == want
    assert len(part.load_shards(type(got[0]))) == 16  # the two finished chunks were not redone


@pytest.mark.slow
def test_a_stage_with_model_ray_workers_answers_as_the_in_process_stage(
    cluster, tiny_model_dir, tmp_path, monkeypatch
):
    """The wiring: `model.ray.workers: 2` sends the responses step to actors; the answers are the
    in-process run's (sampled, seeded per chunk), and so is every later step's input."""
    from typer.testing import CliRunner

    from cai_bootstrap.cli import app
    from cai_bootstrap.engines import ray as fanout
    from cai_bootstrap.records import Response
    from cai_bootstrap.store import read_jsonl
    from test_pipeline import _recipe

    pools = []
    real = fanout.run_chunked_ray
    monkeypatch.setattr(fanout, "run_chunked_ray", lambda *a: pools.append(a[-1]) or real(*a))
    answers = {}
    for name, sets in (("hf", []), ("ray", ["--set=model.ray.workers=2"])):
        (tmp_path / name).mkdir()
        recipe = _recipe(tmp_path / name, tiny_model_dir)
        result = CliRunner().invoke(app, ["run", "--recipe", recipe, "--quiet", *sets])
        assert result.exit_code == 0, result.output
        folder = tmp_path / name / "run" / "stage1" / "round1" / "responses"
        answers[name] = read_jsonl(folder / "records.jsonl", Response)
    assert [p.workers for p in pools] == [2]  # the ray run's responses step, and nothing else
    assert answers["ray"] == answers["hf"] and len(answers["hf"]) > 0
