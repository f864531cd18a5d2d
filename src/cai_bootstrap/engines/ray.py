"""Ray Data fan-out (optional extra `[ray]`): a step's chunks processed by a pool of actors, each
holding its own engine (HF on one GPU, or an openai client), over one machine or a Ray cluster.

It is `store.run_chunked` with the loop handed to Ray: the same fixed chunks (seeded by index), the
same "done" test (every id of a chunk is in the step's shards), and only this process writes the
shards, appending each chunk as it comes back, in whatever order. So a killed run resumes from its
shards, with or without Ray, and the records come back in item order with their ids.

    pool = ActorPool(make_engine=partial(HFEngine.from_path, path), workers=4, gpus_per_worker=1)
    records = run_chunked_ray(step, items, 16, Response, answer_chunk, ids_of, pool)

`work(index, chunk, engine)` and `make_engine()` must pickle (module-level functions, partials).
In a run, `model.ray.workers > 0` fans the responses step (k answers per training instruction, most
of a round's generation) out this way; see steps/responses.py.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from ..errors import UserError
from ..log import progress
from ..store import chunked_records, pending_chunks


class RaySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    workers: int = Field(
        0,
        ge=0,
        description="actors, each with its own engine, that answer the responses step's chunks; 0: no Ray "
        "(the step runs in this process). Results are the same either way: chunks are seeded by index",
    )
    gpus_per_worker: float = Field(
        0, ge=0, description="GPUs Ray gives each actor (1: one model copy per GPU; 0: CPU actors)"
    )
    address: str | None = Field(
        None, description="Ray cluster to join ('auto', 'ray://host:10001'); null: a local Ray starts"
    )


@dataclass(frozen=True)
class ActorPool:
    """What a step needs to fan its chunks out: how each actor builds its engine, and how many."""

    make_engine: Callable
    workers: int
    gpus_per_worker: float = 0
    address: str | None = None


def require_ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as e:
        raise UserError(f"Ray Data cannot be imported ({e})", 'pip install "cai-bootstrap[ray]"') from e
    return ray


class _ChunkWorker:
    """One actor: builds its engine once, then turns (index, pickled chunk) rows into JSON records."""

    def __init__(self, make_engine: Callable, work: Callable):
        self.engine = make_engine()
        self.work = work

    def __call__(self, batch: dict) -> dict:
        import numpy as np

        indexes, records = [], []
        for index, blob in zip(batch["index"], batch["chunk"], strict=True):
            out = self.work(int(index), pickle.loads(blob), self.engine)
            indexes.append(int(index))
            records.append(json.dumps([r.model_dump(mode="json") for r in out]))
        return {"index": np.array(indexes), "records": np.array(records, dtype=object)}


def run_chunked_ray(
    step,
    items: list,
    size: int,
    schema,
    work: Callable,
    ids_of: Callable,
    pool: ActorPool,
) -> list:
    """Like store.run_chunked, with the chunks not yet in the shards spread over the pool's actors."""
    ray = require_ray()
    todo = pending_chunks(step, items, size, schema, ids_of)
    if todo:
        if not ray.is_initialized():
            ray.init(address=pool.address, include_dashboard=False, log_to_driver=False)
        rows = [{"index": i, "chunk": pickle.dumps(c)} for i, c in todo]
        # One chunk per task: a chunk is the unit of resume, so a finished chunk is written at once.
        ds = ray.data.from_items(rows, override_num_blocks=len(rows)).map_batches(
            _ChunkWorker,
            fn_constructor_kwargs={"make_engine": pool.make_engine, "work": work},
            batch_size=1,
            concurrency=pool.workers,
            num_gpus=pool.gpus_per_worker,
        )
        with progress(f"{step.folder.name} (ray x{pool.workers})", len(todo)) as advance:
            for row in ds.iter_rows():
                step.append([schema.model_validate(r) for r in json.loads(row["records"])])
                advance(1)
    return chunked_records(step, items, schema, ids_of)
