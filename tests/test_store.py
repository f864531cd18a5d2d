"""Run store: atomic writes, validated reads, manifests, stale detection, lock, resume after SIGKILL."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from cai_bootstrap.errors import StepFailed, UserError
from cai_bootstrap.records import Record
from cai_bootstrap.store import RunLock, Step, atomic_write_text, read_jsonl, run_chunked, write_jsonl


class Item(Record):
    value: int


def test_atomic_write_leaves_no_temp(tmp_path):
    atomic_write_text(tmp_path / "a.txt", "hello")
    assert (tmp_path / "a.txt").read_text() == "hello"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_read_jsonl_names_the_bad_line(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"id": "a", "value": 1}\n{"id": "b", "value": "x"}\n')
    with pytest.raises(UserError, match=r"r.jsonl:2"):
        read_jsonl(path, Item)
    with pytest.raises(UserError, match="missing file"):
        read_jsonl(tmp_path / "none.jsonl", Item)


def test_step_states_and_stale_on_config_or_input_change(tmp_path):
    inp = tmp_path / "in.jsonl"
    write_jsonl(inp, [Item(id="a", value=1)])
    st = Step(tmp_path / "s", {"k": 1}, {"in": inp})
    assert st.state() == "not started"
    st.finish([Item(id="x", value=2)], {"n": 1})
    assert Step(tmp_path / "s", {"k": 1}, {"in": inp}).state() == "done"
    assert Step(tmp_path / "s", {"k": 2}, {"in": inp}).state() == "stale"
    write_jsonl(inp, [Item(id="a", value=9)])
    assert Step(tmp_path / "s", {"k": 1}, {"in": inp}).state() == "stale"
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert manifest["files"]["records.jsonl"]["size"] == (tmp_path / "s" / "records.jsonl").stat().st_size
    assert {
        "signature",
        "files",
        "counts",
        "seconds",
        "versions",
        "git_commit",
    } <= manifest.keys()


def test_zero_records_is_an_error_and_nothing_looks_done(tmp_path):
    st = Step(tmp_path / "s", {}, {})
    with pytest.raises(StepFailed, match="zero records"):
        st.finish([], {})
    assert st.state() == "not started"


def test_lock_stops_a_second_writer(tmp_path):
    with RunLock(tmp_path):
        with pytest.raises(UserError, match="another cai-bootstrap run"):
            with RunLock(tmp_path):
                pass


def _chunked_all(step, n, size, delay=0.0):
    def work(index, chunk):
        time.sleep(delay)
        return [Item(id=f"i{x}", value=x * 10 + index) for x in chunk]

    return run_chunked(step, list(range(n)), size, Item, work, lambda x: [f"i{x}"])


def test_run_chunked_is_in_order(tmp_path):
    out = _chunked_all(Step(tmp_path / "s", {}, {}), 7, 3)
    assert [r.id for r in out] == [f"i{x}" for x in range(7)]


SCRIPT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    sys.path.insert(0, {tests!r})
    from test_store import _chunked_all
    from cai_bootstrap.store import Step
    step = Step(Path({folder!r}), {{}}, {{}})
    _chunked_all(step, 40, 2, delay=0.05)
    """
)


def test_killed_step_resumes_without_duplicates_or_losses(tmp_path):
    folder = tmp_path / "s"
    code = SCRIPT.format(tests=os.path.dirname(__file__), folder=str(folder))
    proc = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.time() + 60
    while time.time() < deadline:
        shards = list((folder / "shards").glob("part-*.jsonl")) if (folder / "shards").exists() else []
        if shards and sum(len(p.read_text().splitlines()) for p in shards) >= 6:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    step = Step(folder, {}, {})
    assert step.state() == "failed" and step.state(running=True) == "running"
    out = _chunked_all(step, 40, 2)
    assert [r.id for r in out] == [f"i{x}" for x in range(40)]
    assert out == _chunked_all(Step(tmp_path / "fresh", {}, {}), 40, 2)
