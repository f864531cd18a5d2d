"""Integrity holes (issue 29): writes never destroy what is at a user-given path and never report a
failed write as success; checkpoints and shards are checked by sha256 before use; stage.json is
vouched for; adapter configs are deterministic; deleting never follows a symlink out of the run
folder; read-only folders and full disks end in one line."""

from __future__ import annotations

import errno
import json
import os

import pytest
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


SFT_CHILD = """
import sys
from pathlib import Path
from cai_bootstrap.records import SFTExample
from cai_bootstrap.store import write_jsonl
from cai_bootstrap.training.config import LoraSettings, SFTSettings
from cai_bootstrap.training.sft import run_sft

model, out = Path(sys.argv[1]), Path(sys.argv[2])
ex = [SFTExample(id=f"e{i}", instruction_id=f"i{i}", prompt=f"Instruction: say {i}.\\nResponse:",
                 completion=f" {i}.") for i in range(4)]
write_jsonl(out.parent / "sft.jsonl", ex)
run_sft(SFTSettings(epochs=1, batch_size=4, max_length=32, seed=1), LoraSettings(r=2),
        out.parent / "sft.jsonl", model, out, "float32")
"""


@pytest.mark.slow  # two training processes (~60 s on 2 busy CPU cores)
def test_adapter_config_is_the_same_in_every_process(tiny_model_dir, tmp_path):
    """PEFT orders target_modules by the process's hash seed; two processes with other seeds must
    write byte-identical adapter configs (else DPO and the merge are redone after any SFT redo)."""
    import subprocess
    import sys

    from cai_bootstrap.runner import model_identity

    configs = []
    for seed in ("1", "2"):  # two hash seeds: the set order of the modules differs
        out = tmp_path / seed / "train"
        out.parent.mkdir()
        env = {**os.environ, "PYTHONHASHSEED": seed}
        res = subprocess.run(
            [sys.executable, "-c", SFT_CHILD, str(tiny_model_dir), str(out)],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert res.returncode == 0, res.stderr[-2000:]
        configs.append(out / "adapter")
    a, b = ((c / "adapter_config.json").read_bytes() for c in configs)
    assert len(json.loads(a)["target_modules"]) == 14  # all-linear: 7 projections in each of 2 layers
    assert a == b
    assert model_identity(configs[0]) == model_identity(configs[1])


def test_flipped_byte_in_a_checkpoint_is_discarded_not_resumed_from(tiny_model_dir, tmp_path, caplog):
    """A run stopped after checkpoint 4 whose checkpoint-4 then had one byte flipped resumes from
    checkpoint 2 (saying why), and ends with the uninterrupted run's loss."""
    import shutil

    from cai_bootstrap.store import write_jsonl
    from cai_bootstrap.training.config import LoraSettings, SFTSettings
    from cai_bootstrap.training.sft import run_sft
    from test_training_resume import CFG, LORA, examples

    data = tmp_path / "sft.jsonl"
    write_jsonl(data, examples())
    cfg, lora = SFTSettings(**CFG, keep_checkpoints=3), LoraSettings(**LORA)
    full = run_sft(cfg, lora, data, tiny_model_dir, tmp_path / "full", "float32")
    out = tmp_path / "stopped"
    shutil.copytree(tmp_path / "full", out)
    # As if killed just after checkpoint 4 was sealed: no checkpoint 6, no final adapter.
    for name in ("complete.json", "adapter", "checkpoints/checkpoint-6"):
        p = out / name
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    weights = out / "checkpoints" / "checkpoint-4" / "adapter_model.safetensors"
    data_bytes = bytearray(weights.read_bytes())
    data_bytes[-5] ^= 0x40
    weights.write_bytes(bytes(data_bytes))
    with caplog.at_level("WARNING", logger="cai_bootstrap"):
        resumed = run_sft(cfg, lora, data, tiny_model_dir, out, "float32")
    assert resumed.resumed_from == 2 and resumed.steps == 6
    assert "discarded checkpoint-4: adapter_model.safetensors does not match its seal" in caplog.text
    assert weights.read_bytes() != bytes(data_bytes)  # checkpoint 4 was made again, intact
    assert resumed.final_loss == pytest.approx(full.final_loss, rel=1e-4, abs=1e-5)


def test_altered_shard_line_is_redone_not_carried(tmp_path, caplog):
    """A killed step's shard line altered into other valid JSON is discarded (logged) and its chunk
    redone: the final records equal an uninterrupted run's."""
    from cai_bootstrap.records import Record
    from cai_bootstrap.store import Step, run_chunked

    class Item(Record):
        text: str

    items = [f"i{x}" for x in range(8)]
    done: list[int] = []

    def work(index, chunk, stop_after=None):
        if stop_after is not None and index >= stop_after:
            raise KeyboardInterrupt  # as if killed here
        done.append(index)
        return [Item(id=x, text=f"answer-{x}") for x in chunk]

    step = Step(tmp_path / "s", {}, {})
    try:
        run_chunked(step, items, 2, Item, lambda i, c: work(i, c, stop_after=2), lambda x: [x])
    except KeyboardInterrupt:
        pass
    (shard,) = step.shard_dir.glob("part-*.jsonl")
    text = shard.read_text()
    assert "answer-i2" in text and "answer-i4" not in text
    shard.write_text(text.replace("answer-i2", "answer-XX"))  # still valid JSON, same length
    done.clear()
    with caplog.at_level("WARNING", logger="cai_bootstrap"):
        out = run_chunked(Step(tmp_path / "s", {}, {}), items, 2, Item, work, lambda x: [x])
    assert [r.text for r in out] == [f"answer-i{x}" for x in range(8)]
    assert done == [1, 2, 3]  # chunk 1 (holding i2) redone, chunk 0 kept
    assert "1 shard line(s) cut off or not matching their sha256 were discarded" in caplog.text


def _no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _sft_setup(tmp_path, **cfg):
    from cai_bootstrap.store import write_jsonl
    from cai_bootstrap.training.config import LoraSettings, SFTSettings
    from test_training_resume import CFG, LORA, examples

    data = tmp_path / "sft.jsonl"
    write_jsonl(data, examples())
    return data, SFTSettings(**{**CFG, **cfg}), LoraSettings(**LORA)


def test_full_disk_at_a_checkpoint_is_one_line_and_resume_after_works(tiny_model_dir, tmp_path, monkeypatch):
    import torch

    from cai_bootstrap.errors import StepFailed
    from cai_bootstrap.training.sft import run_sft

    data, cfg, lora = _sft_setup(tmp_path, keep_checkpoints=3)
    full = run_sft(cfg, lora, data, tiny_model_dir, tmp_path / "full", "float32")
    real_save = torch.save

    def save(obj, f, *a, **kw):  # the disk fills up while checkpoint 4 is written
        if "checkpoint-4" in str(f):
            _no_space()
        return real_save(obj, f, *a, **kw)

    monkeypatch.setattr(torch, "save", save)
    out = tmp_path / "full_disk"
    with pytest.raises(StepFailed) as err:
        run_sft(cfg, lora, data, tiny_model_dir, out, "float32")
    line = err.value.one_line()
    assert "could not write a training checkpoint or the adapter" in line and "No space left" in line
    assert "--resume" in line and "\n" not in line
    monkeypatch.setattr(torch, "save", real_save)  # space freed
    resumed = run_sft(cfg, lora, data, tiny_model_dir, out, "float32")
    assert resumed.resumed_from == 2 and resumed.steps == 6
    assert resumed.final_loss == pytest.approx(full.final_loss, rel=1e-4, abs=1e-5)


def test_full_disk_at_the_adapter_and_the_merge(tiny_model_dir, tmp_path, monkeypatch):
    from cai_bootstrap.errors import StepFailed
    from cai_bootstrap.training.merge import merge_adapter
    from cai_bootstrap.training.sft import run_sft

    data, cfg, lora = _sft_setup(tmp_path, save_steps=100, epochs=1)
    out = tmp_path / "sft"
    monkeypatch.setattr("peft.peft_model.safe_save_file", _no_space)
    with pytest.raises(StepFailed, match="could not write a training checkpoint or the adapter"):
        run_sft(cfg, lora, data, tiny_model_dir, out, "float32")
    assert not (out / "adapter.partial").exists() and not (out / "complete.json").exists()
    monkeypatch.undo()
    res = run_sft(cfg, lora, data, tiny_model_dir, out, "float32")
    merged = tmp_path / "merged"
    monkeypatch.setattr("transformers.modeling_utils.safe_save_file", _no_space)
    with pytest.raises(StepFailed, match="could not write the merged model") as err:
        merge_adapter(tiny_model_dir, res.adapter, merged, {})
    assert "No space left on device" in err.value.one_line()
    assert not merged.exists() and not list(tmp_path.glob(".merged.partial-*"))
    monkeypatch.undo()
    assert (merge_adapter(tiny_model_dir, res.adapter, merged, {}) / "lineage.json").is_file()


def test_reset_through_a_linked_round_folder_is_refused(tmp_path):
    """Step.reset on run/stage1/round1/responses, where round1 links outside: refused, nothing deleted
    (shutil.rmtree through the link deleted the files it points at)."""
    from cai_bootstrap.errors import UserError
    from cai_bootstrap.store import Step

    run = tmp_path / "run"
    (run / "stage1").mkdir(parents=True)
    (run / "config.resolved.yaml").write_text("run: {}\n")
    outside = tmp_path / "elsewhere"
    (outside / "responses").mkdir(parents=True)
    (outside / "responses" / "records.jsonl").write_text("mine\n")
    (run / "stage1" / "round1").symlink_to(outside, target_is_directory=True)
    step = Step(run / "stage1" / "round1" / "responses")
    for act in (step.reset, step.begin):
        with pytest.raises(UserError, match="stage1/round1 is a symlink"):
            act()
    assert (outside / "responses" / "records.jsonl").read_text() == "mine\n"
    assert sorted(p.name for p in (outside / "responses").iterdir()) == ["records.jsonl"]
