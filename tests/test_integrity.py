"""Integrity holes (issue 29): writes never destroy what is at a user-given path and never report a
failed write as success; checkpoints and shards are checked by sha256 before use; stage.json is
vouched for; adapter configs are deterministic; deleting never follows a symlink out of the run
folder; read-only folders and full disks end in one line."""

from __future__ import annotations

import errno
import json
import os

from typer.testing import CliRunner

from cai_bootstrap.cli import app

IFEVAL_ROW = {
    "key": 1,
    "prompt": "Write about tea. Do not use any commas.",
    "instruction_id_list": ["punctuation:no_comma"],
    "kwargs": [{}],
}


def _eval_files(tmp_path):
    ife = tmp_path / "ife.jsonl"
    ife.write_text(json.dumps(IFEVAL_ROW) + "\n")
    answers = tmp_path / "answers.jsonl"
    answers.write_text(json.dumps({"prompt": IFEVAL_ROW["prompt"], "response": "Tea is warm."}) + "\n")
    return ife, answers


def test_eval_out_full_disk_is_a_failure_not_success(tmp_path, monkeypatch):
    """`eval --out` on a full disk (as on /dev/full): one line, exit 1, no 'results:' line, no file."""
    ife, answers = _eval_files(tmp_path)
    out = tmp_path / "r.json"

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("cai_bootstrap.store.os.fsync", full)
    res = CliRunner().invoke(
        app, ["eval", "--ifeval", str(ife), "--responses", str(answers), "--out", str(out)]
    )
    assert res.exit_code == 1, res.output
    lines = [x for x in res.output.splitlines() if x.strip()]
    assert lines[-1].startswith("error: could not write") and "No space left on device" in lines[-1]
    assert "results:" not in res.output
    assert not out.exists() and not list(tmp_path.glob(".r.json.tmp-*"))


def test_eval_out_symlink_leaves_its_target_alone(tmp_path):
    ife, answers = _eval_files(tmp_path)
    target = tmp_path / "precious.txt"
    target.write_text("mine\n")
    link = tmp_path / "r.json"
    link.symlink_to(target)
    res = CliRunner().invoke(
        app, ["eval", "--ifeval", str(ife), "--responses", str(answers), "--out", str(link)]
    )
    assert res.exit_code == 2 and "is a symlink" in res.output
    assert link.is_symlink() and target.read_text() == "mine\n"
