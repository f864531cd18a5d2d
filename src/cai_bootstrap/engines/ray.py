"""Ray Data fan-out (optional extra `[ray]`): a step's chunks processed by a pool of actors, each
holding its own engine (HF on one GPU, or an openai client), over one machine or a Ray cluster.

It is `store.run_chunked` with the loop handed to Ray: the same fixed chunks (seeded by index), the
same "done" test (every id of a chunk is in the step's shards), and only this process writes the
shards, appending each chunk as it comes back, in whatever order. So a killed run resumes from its
shards, with or without Ray, and the records come back in item order with their ids.

    records = run_chunked_ray(step, items, 16, Response, answer_chunk, ids_of,
                              make_engine=partial(HFEngine.from_path, path), workers=4, gpus_per_worker=1)

`work(index, chunk, engine)` and `make_engine()` must pickle (module-level functions, partials).
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable

from ..errors import UserError
from ..log import progress


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
    make_engine: Callable,
    workers: int,
    gpus_per_worker: float = 0,
) -> list:
    """Like store.run_chunked, with the chunks not yet in the shards spread over `workers` actors."""
    ray = require_ray()
    step.begin()
    have = {r.id for r in step.load_shards(schema)}
    chunks = [items[i : i + size] for i in range(0, len(items), size)]
    todo = [(i, c) for i, c in enumerate(chunks) if not all(x in have for it in c for x in ids_of(it))]
    if todo:
        if not ray.is_initialized():
            ray.init(include_dashboard=False, log_to_driver=False)
        rows = [{"index": i, "chunk": pickle.dumps(c)} for i, c in todo]
        # One chunk per task: a chunk is the unit of resume, so a finished chunk is written at once.
        ds = ray.data.from_items(rows, override_num_blocks=len(rows)).map_batches(
            _ChunkWorker,
            fn_constructor_kwargs={"make_engine": make_engine, "work": work},
            batch_size=1,
            concurrency=workers,
            num_gpus=gpus_per_worker,
        )
        with progress(f"{step.folder.name} (ray x{workers})", len(todo)) as advance:
            for row in ds.iter_rows():
                step.append([schema.model_validate(r) for r in json.loads(row["records"])])
                advance(1)
    by_id = {r.id: r for r in step.load_shards(schema)}
    return [by_id[x] for it in items for x in ids_of(it)]
