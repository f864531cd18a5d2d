"""Every bad input we know of gets one line naming the cause and the fix, and exit code 2.

Each row is a command line (placeholders in braces are files built by the `world` fixture) and a
piece of text the message must contain (the field, the valid choices or the fix). Every row runs
in-process through typer's CliRunner; `SUBPROCESS_ROWS` also run as the real `python -m cai_bootstrap`
in a fresh process, one per kind of input. Why not all in subprocesses: each fresh interpreter costs
about 0.65 s of CPU before it reads its arguments (Python, pydantic, rich, typer and the settings
modules); measured on the 2-core dev machine, the whole table as real processes took 95 s of CPU
(CAI_BAD_INPUTS_ALL_SUBPROCESS=1 runs it so, and it passes), this file as it is 19 s. The in-process
rows run the same code; the subprocess rows prove what only a real process shows (no traceback, the
exit status, stdout and stderr together form one line, torch is not imported first).
Add a row for every bad input you find.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shlex
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

import cai_bootstrap
from cai_bootstrap.cli import app

IFEVAL_ROW = {
    "key": 1,
    "prompt": "Write about tea. Do not use any commas.",
    "instruction_id_list": ["punctuation:no_comma"],
    "kwargs": [{}],
}

ROWS: list[tuple[str, str, str]] = [
    # (id, command line, text the one-line message must contain)
    # -- the command line itself (click's usage errors, made one line)
    ("unknown-command", "bogus", "No such command 'bogus'"),
    ("unknown-option", "run --bogus", "No such option: --bogus"),
    ("option-not-an-int", "run --from-stage x", "Invalid value for '--from-stage'"),
    ("eval-missing-ifeval", "eval --responses {answers}", "Missing option '--ifeval'"),
    ("status-missing-argument", "status", "Missing argument"),
    (
        "eval-batch-size-text",
        "eval --ifeval {ife_ok} --model embedded:gemma-3-270m --batch-size y",
        "'--batch-size'",
    ),
    # -- the recipe file
    ("recipe-missing", "run --recipe {missing}", "does not exist"),
    ("recipe-is-folder", "run --recipe {folder}", "is a folder, not a file"),
    ("recipe-not-utf8", "run --recipe {latin1}", "not UTF-8"),
    ("recipe-bad-yaml", "run --recipe {bad_yaml}", "not valid YAML at line"),
    ("recipe-is-list", "run --recipe {list_yaml}", "mapping at the top level"),
    ("recipe-is-scalar", "run --recipe {scalar_yaml}", "mapping at the top level"),
    ("recipe-duplicate-stage", "run --recipe {dup_stages}", "stage 1 appears 2 times"),
    ("recipe-stages-out-of-order", "run --recipe {unordered_stages}", "increasing order"),
    (
        "recipe-unknown-top-key",
        "run --recipe {unknown_key}",
        "valid keys there: run, model, constitution, stages",
    ),
    # -- --set syntax
    ("set-no-equals", "run --set foo", "is not KEY=VALUE"),
    ("set-unknown-top", "run --set bogus=1", "unknown key 'bogus'"),
    ("set-unknown-run-key", "run --set run.bogus=1", "valid keys there: name, run_dir, seed, timeouts"),
    ("set-unknown-nested", "run --set stages.0.responses.kay=1", "valid keys there: k, temperature"),
    ("set-bad-index", "run --set stages.x.stage=1", "'x' is not a list position"),
    ("set-index-past-end", "run --set stages.5.stage=2", "past the end of a list of 1"),
    ("set-under-a-value", "run --set stages.0.responses.k=2 --set stages.0.responses.k.x=1", "not a section"),
    ("set-bad-yaml-value", "run --set 'stages.0.responses.k=[1'", "not valid YAML"),
    ("set-empty-key-part", "run --set .a=1", "empty key name"),
    ("set-stages-not-list", "run --set stages=5", "'stages' = 5"),
    ("set-stages-empty", "run --set stages=[]", "give at least one stage"),
    (
        "ray-with-vllm",
        "run --set model.engine=vllm --set model.ray.workers=2",
        "vLLM shards over its own worker",
    ),
    ("ray-negative-workers", "run --set model.ray.workers=-1", "model.ray.workers"),
    ("set-stage-not-mapping", "run --set stages.0=5", "'stages.0' = 5"),
    # -- run settings and the run folder
    ("run-name-empty", "run --set run.name=", "'run.name'"),
    ("run-name-slash", "run --set run.name=a/b", "no '/'"),
    ("run-name-dotdot", "run --set run.name=../x", "'run.name' = '../x'"),
    ("run-seed-text", "run --set run.seed=abc", "'run.seed' = 'abc'"),
    ("run-timeout-zero", "run --set run.timeouts.training=0", "'run.timeouts.training' = 0"),
    (
        "run-timeout-unknown",
        "run --set run.timeouts.bogus=1",
        "valid keys there: generation, training, evaluation",
    ),
    ("run-dir-is-file", "run --set model.generator={fake_model} --set run.run_dir={afile}", "is a file"),
    (
        "run-dir-under-file",
        "run --set model.generator={fake_model} --set run.run_dir={afile}/sub",
        "which is a file",
    ),
    (
        "run-dir-unwritable",
        "run --set model.generator={fake_model} --set run.run_dir=/proc/cai-bootstrap-test/run",
        "cannot write the run folder",
    ),
    (
        "run-dir-foreign-folder",
        "run --set model.generator={fake_model} --set run.run_dir={not_a_run}",
        "is not a run folder",
    ),
    (
        "run-dir-locked",
        "run --set model.generator={fake_model} --set run.run_dir={locked_run}",
        "--set run.name=NAME",
    ),
    # -- model references
    (
        "model-unknown-embedded",
        "run --set model.generator=embedded:unknown",
        "choose one of: embedded:gemma-3-270m",
    ),
    ("model-missing-folder", "run --set model.generator={missing}", "neither an embedded model"),
    ("model-folder-no-config", "run --set model.generator={folder}", "has no config.json"),
    ("model-is-file", "run --set model.generator={afile}", "is a file, not a model folder"),
    ("model-bad-hub-id", "run --set model.generator=a/b/c", "hub id like Qwen/Qwen2.5-7B"),
    ("model-empty", "run --set 'model.generator=\"\"'", "model.generator is empty"),
    ("judge-unknown-embedded", "run --set model.judge=embedded:nope", "model.judge: unknown embedded model"),
    (
        "reward-model-missing",
        "run --set stages.0.judge.reward_model={missing}",
        "stages.0.judge.reward_model",
    ),
    ("model-dtype", "run --set model.dtype=float64", "'float32', 'bfloat16' or 'float16'"),
    ("model-train-dtype", "run --set model.train_dtype=float16", "'float32' or 'bfloat16'"),
    ("model-device", "run --set model.device=tpu", "use auto, cpu, cuda or cuda:N"),
    ("model-batch-size", "run --set model.batch_size=0", "'model.batch_size' = 0"),
    ("model-liger-not-bool", "run --set model.liger_kernels=maybe", "'model.liger_kernels'"),
    # -- the constitution
    ("constitution-missing", "run --set constitution={missing}", "constitution {missing} does not exist"),
    ("constitution-folder", "run --set constitution={folder}", "is a folder"),
    ("constitution-bad-yaml", "run --set constitution={bad_yaml}", "not valid YAML"),
    ("constitution-no-principles", "run --set constitution={con_empty}", "principles"),
    ("constitution-not-utf8", "run --set constitution={latin1}", "not UTF-8"),
    ("constitution-duplicate-id", "run --set constitution={con_dup}", "duplicate principle id"),
    # -- stage settings
    ("stage-number-7", "run --set stages.0.stage=7", "'stages.0.stage' = 7"),
    ("stage-number-0", "run --set stages.0.stage=0", "'stages.0.stage' = 0"),
    ("stage-duplicate-by-set", "run --set stages.1.stage=1", "stage 1 appears 2 times"),
    ("max-rounds-zero", "run --set stages.0.max_rounds=0", "'stages.0.max_rounds' = 0"),
    ("n-train-zero", "run --set stages.0.instructions.n_train=0", "n_train"),
    ("n-heldout-zero", "run --set stages.0.instructions.n_heldout=0", "n_heldout"),
    (
        "constraint-types-empty",
        "run --set stages.0.instructions.constraint_types=[]",
        "remove the key (null)",
    ),
    (
        "constraint-type-unknown",
        "run --set stages.0.instructions.constraint_types=[bogus:type]",
        "unknown constraint type 'bogus:type'",
    ),
    (
        "constraint-counts",
        "run --set stages.0.instructions.min_constraints=3",
        "min_constraints (3) is above",
    ),
    ("leakage-zero", "run --set stages.0.instructions.leakage_threshold=0", "leakage_threshold"),
    ("leakage-above-one", "run --set stages.0.instructions.leakage_threshold=1.5", "leakage_threshold"),
    ("responses-k-zero", "run --set stages.0.responses.k=0", "'stages.0.responses.k' = 0"),
    ("responses-temperature", "run --set stages.0.responses.temperature=-1", "temperature"),
    ("responses-top-p-zero", "run --set stages.0.responses.top_p=0", "top_p"),
    ("responses-chunk-zero", "run --set stages.0.responses.chunk=0", "chunk"),
    ("eval-tokens-zero", "run --set stages.0.eval.max_new_tokens=0", "eval.max_new_tokens"),
    (
        "ifeval-files-missing",
        "run --set stages.0.eval.ifeval_files=[{missing}]",
        "ifeval_files: {missing} does not exist",
    ),
    ("ifeval-files-folder", "run --set stages.0.eval.ifeval_files=[{folder}]", "is a folder"),
    (
        "ifeval-files-no-kwargs",
        "run --set stages.0.eval.ifeval_files=[{ife_no_kwargs}]",
        "field 'kwargs' is missing",
    ),
    (
        "ifeval-files-unknown-id",
        "run --set stages.0.eval.ifeval_files=[{ife_unknown_id}]",
        "unknown instruction id 'nope:nope'",
    ),
    ("ifeval-files-empty", "run --set stages.0.eval.ifeval_files=[{ife_empty}]", "has no prompts"),
    (
        "ifeval-files-same-name",
        "run --set stages.0.eval.ifeval_files=[{ife_ok},{ife_ok_twin}]",
        "two files are named ok.*",
    ),
    (
        "ifeval-files-duplicate-key",
        "run --set stages.0.eval.ifeval_files=[{ife_dup_key}]",
        "key 1 was already used on line 1",
    ),
    ("gate-metric", "run --set stages.0.gate.metric=accuracy", "'prompt_strict', 'prompt_loose'"),
    ("gate-min-success", "run --set stages.0.gate.min_success=1.5", "min_success"),
    ("gate-alpha", "run --set stages.0.gate.alpha=0", "alpha"),
    ("sft-lr-zero", "run --set stages.0.sft.learning_rate=0", "sft.learning_rate"),
    ("sft-scheduler", "run --set stages.0.sft.lr_scheduler=exp", "'linear'"),
    ("dpo-beta-zero", "run --set stages.0.dpo.beta=0", "dpo.beta"),
    ("dpo-loss-type", "run --set stages.0.dpo.loss_type=bogus", "'sigmoid'"),
    ("lora-rank-zero", "run --set stages.0.lora.r=0", "lora.r"),
    ("lora-dropout-one", "run --set stages.0.lora.dropout=1", "lora.dropout"),
    ("critique-rounds", "run --set stages.0.critique.rounds=9", "critique.rounds"),
    ("critique-select", "run --set stages.0.critique.select=bogus", "'all', 'failing'"),
    ("judge-principle-unknown", "run --set stages.0.judge.principle=no-such", "no principle 'no-such'"),
    ("pairs-per-instruction", "run --set stages.0.pairs.pairs_per_instruction=0", "pairs_per_instruction"),
    ("self-instruct-top-p", "run --set stages.0.instructions.self_instruct.top_p=0", "self_instruct.top_p"),
    ("safety-skip-unknown", "run --set stages.0.eval.safety.skip_principles=[nope]", "no principle 'nope'"),
    ("safety-tokens-zero", "run --set stages.0.eval.safety.max_new_tokens=0", "safety.max_new_tokens"),
    # -- stage selection
    ("stages-text", "run --stages abc", "is not like 1-6 or 1,2"),
    ("stages-backwards", "run --stages 3-1", "runs backwards (3 > 1) -> write --stages 1-3"),
    ("stages-seven", "run --stages 7", "outside 1-6"),
    ("stages-not-in-recipe", "run --stages 2", "the recipe has no stage 2 (its stages: 1)"),
    ("stages-open-range", "run --stages 1-", "is not like 1-6"),
    ("from-stage-not-in-recipe", "run --from-stage 3", "the recipe has no stage 3 (its stages: 1)"),
    (
        "from-stage-no-previous",
        "run --recipe {two_stages} --set model.generator={fake_model} --from-stage 2",
        "needs stage 1's result",
    ),
    (
        "from-stage-and-stages-disjoint",
        "run --recipe {two_stages} --stages 1 --from-stage 2",
        "leaves no stage",
    ),
    # -- --resume
    ("resume-missing", "run --resume {missing}", "does not exist"),
    ("resume-not-a-run", "run --resume {not_a_run}", "has no config.resolved.yaml"),
    ("resume-a-file", "run --resume {afile}", "is a file"),
    ("resume-and-recipe", "run --resume {run} --recipe {afile}", "--recipe cannot be given too"),
    ("resume-damaged-config", "run --resume {damaged_run}", "config.resolved.yaml is not valid YAML"),
    ("resume-locked", "run --resume {locked_run}", "another cai-bootstrap run"),
    # -- status, report, pairs-stats
    ("status-missing", "status {missing}", "does not exist"),
    ("status-not-a-run", "status {not_a_run}", "not a run folder"),
    ("status-a-file", "status {afile}", "is a file"),
    ("status-empty-folder", "status {empty}", "not a run folder"),
    ("report-missing", "report {missing}", "does not exist"),
    ("report-not-a-run", "report {not_a_run}", "not a run folder"),
    ("report-a-file", "report {afile}", "is a file"),
    ("pairs-stats-missing", "pairs-stats {missing}", "does not exist"),
    ("pairs-stats-empty-folder", "pairs-stats {empty}", "has no records.jsonl"),
    ("pairs-stats-a-file", "pairs-stats {afile}", "is a file"),
    # -- eval
    (
        "eval-ifeval-missing",
        "eval --ifeval {missing} --responses {answers}",
        "--ifeval {missing} does not exist",
    ),
    ("eval-ifeval-folder", "eval --ifeval {folder} --responses {answers}", "--ifeval {folder} is a folder"),
    ("eval-ifeval-bad-json", "eval --ifeval {ife_bad_json} --responses {answers}", "not valid JSON"),
    ("eval-ifeval-empty", "eval --ifeval {ife_empty} --responses {answers}", "has no prompts"),
    (
        "eval-ifeval-no-kwargs",
        "eval --ifeval {ife_no_kwargs} --responses {answers}",
        "field 'kwargs' is missing",
    ),
    (
        "eval-ifeval-unknown-id",
        "eval --ifeval {ife_unknown_id} --responses {answers}",
        "unknown instruction id",
    ),
    (
        "eval-ifeval-length-mismatch",
        "eval --ifeval {ife_mismatch} --responses {answers}",
        "one kwargs object per instruction id",
    ),
    (
        "eval-ifeval-bad-argument",
        "eval --ifeval {ife_bad_arg} --responses {answers}",
        "takes no argument 'colour'",
    ),
    ("eval-ifeval-not-utf8", "eval --ifeval {latin1} --responses {answers}", "not UTF-8"),
    ("eval-ifeval-row-not-object", "eval --ifeval {ife_list_row} --responses {answers}", "--ifeval"),
    ("eval-neither", "eval --ifeval {ife_ok}", "exactly one of --model"),
    (
        "eval-both",
        "eval --ifeval {ife_ok} --model embedded:gemma-3-270m --responses {answers}",
        "exactly one of --model",
    ),
    (
        "eval-responses-missing",
        "eval --ifeval {ife_ok} --responses {missing}",
        "--responses {missing} does not exist",
    ),
    (
        "eval-responses-folder",
        "eval --ifeval {ife_ok} --responses {folder}",
        "--responses {folder} is a folder",
    ),
    (
        "eval-responses-bad-json",
        "eval --ifeval {ife_ok} --responses {ife_bad_json}",
        "--responses {ife_bad_json}:1: not valid JSON",
    ),
    (
        "eval-responses-no-response-field",
        "eval --ifeval {ife_ok} --responses {ife_ok}",
        "field 'response' is missing",
    ),
    (
        "eval-responses-unanswered",
        "eval --ifeval {ife_ok} --responses {answers_other}",
        "no response for prompt",
    ),
    (
        "eval-model-unknown",
        "eval --ifeval {ife_ok} --model embedded:nope",
        "--model: unknown embedded model 'nope'",
    ),
    ("eval-model-missing", "eval --ifeval {ife_ok} --model {missing}", "neither an embedded model"),
    (
        "eval-dtype",
        "eval --ifeval {ife_ok} --responses {answers} --dtype float64",
        "use one of: float32, bfloat16, float16",
    ),
    (
        "eval-batch-size",
        "eval --ifeval {ife_ok} --model embedded:gemma-3-270m --batch-size 0",
        "--batch-size 0 must be at least 1",
    ),
    (
        "eval-max-new-tokens",
        "eval --ifeval {ife_ok} --model embedded:gemma-3-270m --max-new-tokens 0",
        "--max-new-tokens",
    ),
    (
        "eval-out-folder",
        "eval --ifeval {ife_ok} --responses {answers} --out {folder}",
        "--out {folder} is a folder",
    ),
    (
        "eval-out-under-file",
        "eval --ifeval {ife_ok} --responses {answers} --out {afile}/r.json",
        "which is a file",
    ),
    ("eval-out-device", "eval --ifeval {ife_ok} --responses {answers} --out {device}", "not a regular file"),
    ("eval-out-fifo", "eval --ifeval {ife_ok} --responses {answers} --out {fifo}", "not a regular file"),
    ("eval-out-symlink", "eval --ifeval {ife_ok} --responses {answers} --out {alink}", "is a symlink"),
    (
        "eval-answers-beside-out-symlink",
        "eval --ifeval {ife_ok} --model {fake_model} --out {linked_out}",
        "the answers file beside --out",
    ),
    ("calibrate-out-device", "calibrate --judge {fake_model} --out {device}", "not a regular file"),
    (
        "openai-key-env-hostile",
        "run --set model.engine=openai --set model.openai.api_key_env=AWS_SECRET_ACCESS_KEY",
        "--allow-key-env AWS_SECRET_ACCESS_KEY",
    ),
    # -- hostile values (issue 22): numbers that are not finite, seeds and timeouts out of range,
    # names and paths no file system takes, duplicate YAML keys, mistyped constitution fields
    ("recipe-duplicate-key", "run --recipe {dup_keys}", "the key 'run' is given twice at line 3"),
    ("set-duplicate-key", "run --set 'stages.0.responses={{k: 2, k: 3}}'", "not valid YAML"),
    ("run-name-300", "run --set run.name=" + "a" * 300, "at most 100 characters"),
    ("stages-huge-range", "run --stages 1-99999999", "names a stage outside 1-6"),
    ("temperature-inf", "run --set stages.0.responses.temperature=.inf", "must be a finite number"),
    ("temperature-nan", "run --set stages.0.responses.temperature=.nan", "responses.temperature"),
    ("sft-lr-inf", "run --set stages.0.sft.learning_rate=.inf", "must be a finite number"),
    ("sft-epochs-inf", "run --set stages.0.sft.epochs=.inf", "'stages.0.sft.epochs' = inf"),
    ("dpo-beta-inf", "run --set stages.0.dpo.beta=.inf", "must be a finite number"),
    ("sft-seed-negative", "run --set stages.0.sft.seed=-1", "a seed must be between 0 and 4294967295"),
    ("run-seed-huge", "run --set run.seed=99999999999999999999", "a seed must be between 0"),
    ("timeout-huge", "run --set run.timeouts.training=1e12", "a timeout must be at most 2592000 s"),
    ("timeout-inf", "run --set run.timeouts.generation=.inf", "must be a finite number"),
    ("openai-timeout-inf", "run --set model.openai.timeout=.inf", "model.openai.timeout"),
    ("run-dir-unknown-user", "run --set run.run_dir=~nosuchuser-cai/x", "names no user's home folder"),
    ("run-dir-nul", "run --recipe {nul_run_dir}", "holds a NUL byte"),
    ("run-dir-long-component", "run --set run.run_dir=" + "b" * 300 + "/x", "has a name of 300 bytes"),
    ("recipe-path-long", "run --recipe " + "c" * 300 + ".yaml", "--recipe"),
    ("constitution-principle-string", "run --set constitution={con_str}", "principles.0: Input should be"),
    ("constitution-weight-huge", "run --set constitution={con_huge}", "less than or equal to 1000000"),
    ("constitution-duplicate-key", "run --set constitution={con_dup_key}", "is given twice"),
    ("ifeval-files-kwargs-inf", "run --set stages.0.eval.ifeval_files=[{ife_inf}]", "= inf is not a finite"),
    ("eval-ifeval-kwargs-inf", "eval --ifeval {ife_inf} --responses {answers}", "= inf is not a finite"),
    ("eval-ifeval-kwargs-nan", "eval --ifeval {ife_nan} --responses {answers}", "= nan is not a finite"),
    ("model-config-empty", "run --set model.generator={m_empty_config}", "config.json is empty"),
    ("model-config-bad-json", "run --set model.generator={m_bad_config}", "config.json is not valid JSON"),
    ("model-config-list", "run --set model.generator={m_list_config}", "is not a JSON object"),
    ("model-config-no-type", "run --set model.generator={m_no_type}", "names no model_type"),
    ("model-remote-code", "run --set model.generator={m_remote}", "needs trust_remote_code"),
    ("model-pickle-legacy", "run --set model.generator={m_pickle}", "weights as pickles (pytorch_model.bin)"),
    ("model-pickle-zip", "run --set model.generator={m_zip}", "weights as pickles (model.pt)"),
    ("model-truncated-safetensors", "run --set model.generator={m_cut}", "header describes"),
    ("model-safetensors-garbage", "run --set model.generator={m_garbage}", "header length past the end"),
    ("lora-targets-empty-name", "run --set stages.0.lora.target_modules=['']", "no name may be empty"),
    ("lora-targets-empty-list", "run --set stages.0.lora.target_modules=[]", "at least one module"),
    (
        "lora-targets-no-such-module",
        "run --set model.generator={m_weights} --set stages.0.lora.target_modules=[q_proj]",
        "'q_proj' names no module of",
    ),
    (
        "lora-targets-regex-matches-nothing",
        "run --set model.generator={m_weights} --set stages.0.lora.target_modules=attn",
        "'attn' names no module",
    ),
    ("eval-model-pickle", "eval --ifeval {ife_ok} --model {m_pickle}", "--model: "),
    (
        "eval-out-too-long",
        "eval --ifeval {ife_ok} --responses {answers} --out " + "x" * 300 + "/r.json",
        "has a name of 300 bytes",
    ),
    (
        "eval-out-under-proc",
        "eval --ifeval {ife_ok} --responses {answers} --out /proc/cai-test/r.json",
        "--out /proc/cai-test/r.json cannot be written",
    ),
]

# One row per kind of input, run as a real process too (see the module docstring).
SUBPROCESS_ROWS = [
    "unknown-option",
    "recipe-is-folder",
    "recipe-not-utf8",
    "set-unknown-nested",
    "run-dir-under-file",
    "run-dir-unwritable",
    "run-dir-locked",
    "model-unknown-embedded",
    "constitution-missing",
    "constraint-types-empty",
    "stage-duplicate-by-set",
    "ifeval-files-missing",
    "stages-backwards",
    "from-stage-not-in-recipe",
    "resume-not-a-run",
    "status-not-a-run",
    "report-not-a-run",
    "eval-ifeval-folder",
    "eval-ifeval-no-kwargs",
    "recipe-duplicate-key",
    "timeout-huge",
    "eval-ifeval-kwargs-inf",
    "model-pickle-legacy",
]


def _jsonl(path: Path, rows: list) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def _mkdir(path: Path) -> Path:
    path.mkdir()
    return path


def _yaml(path: Path, data) -> str:
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return str(path)


def _fake_model(path: Path) -> str:
    """A folder that passes the model-reference check (config.json present); no weights are read
    before the checks these rows fail, so the table does not depend on the embedded packages."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text('{"model_type": "llama"}')
    return str(path)


def _safetensors(module: str) -> bytes:
    """A valid safetensors file holding one 4-float tensor, `module`.weight."""
    header = json.dumps({f"{module}.weight": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})
    return len(header.encode()).to_bytes(8, "little") + header.encode() + b"\0" * 16


def _bad_models(d: Path) -> dict[str, str]:
    """Model folders that must be refused from their files alone (config, code, weight formats)."""
    llama = '{"model_type": "llama"}'
    whole = _safetensors("w")
    folders = {
        "m_empty_config": {"config.json": ""},
        "m_bad_config": {"config.json": '{"model_type": '},
        "m_list_config": {"config.json": "[1]"},
        "m_no_type": {"config.json": "{}"},
        "m_remote": {"config.json": '{"model_type": "mine", "auto_map": {"AutoModel": "m.M"}}'},
        "m_pickle": {"config.json": llama, "pytorch_model.bin": b"\x80\x02}q\x00."},
        "m_zip": {"config.json": llama, "model.pt": b"PK\x03\x04 zip of pickles"},
        "m_cut": {"config.json": llama, "model.safetensors": whole[:-5]},
        "m_garbage": {"config.json": llama, "model.safetensors": b"\xff" * 64},
        "m_weights": {"config.json": llama, "model.safetensors": _safetensors("model.layers.0.mlp.up_proj")},
    }
    for name, files in folders.items():
        (d / name).mkdir()
        for file, data in files.items():
            target = d / name / file
            target.write_bytes(data) if isinstance(data, bytes) else target.write_text(data)
    return {name: str(d / name) for name in folders}


def _run_folder(path: Path) -> str:
    """A folder shaped like a finished run: config.resolved.yaml, constitution copy, one step."""
    from cai_bootstrap.config import Recipe, dump

    path.mkdir(parents=True)
    model = _fake_model(path.parent / "fake_model")
    recipe = Recipe.model_validate({"run": {"run_dir": str(path)}, "model": {"generator": model}})
    (path / "config.resolved.yaml").write_text(dump(recipe))
    (path / "constitution.yaml").write_text("name: x\n")
    step = path / "stage1" / "heldout"
    step.mkdir(parents=True)
    (step / "records.jsonl").write_text('{"id": "a"}\n')
    (step / "manifest.json").write_text('{"step": "heldout"}')
    return str(path)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The files the rows refer to, and a run folder whose lock another 'run' holds."""
    d = tmp_path_factory.mktemp("bad")
    (d / "folder").mkdir()
    (d / "empty").mkdir()
    (d / "not_a_run").mkdir()
    (d / "not_a_run" / "notes.txt").write_text("mine\n")
    (d / "afile.txt").write_text("just text\n")
    (d / "latin1.yaml").write_bytes("run:\n  name: caf\xe9\n".encode("latin-1"))
    (d / "bad.yaml").write_text("run: [unclosed\n")
    (d / "wrong.jsonl").write_text("{not json\n")
    paths = {
        "missing": str(d / "missing" / "nothing.yaml"),
        "folder": str(d / "folder"),
        "fake_model": _fake_model(d / "fake_model"),
        "empty": str(d / "empty"),
        "not_a_run": str(d / "not_a_run"),
        "afile": str(d / "afile.txt"),
        "latin1": str(d / "latin1.yaml"),
        "bad_yaml": str(d / "bad.yaml"),
        "list_yaml": _yaml(d / "list.yaml", [1, 2]),
        "scalar_yaml": _yaml(d / "scalar.yaml", "hello"),
        "unknown_key": _yaml(d / "unknown.yaml", {"runn": {}}),
        "dup_stages": _yaml(d / "dup.yaml", {"stages": [{"stage": 1}, {"stage": 1}]}),
        "unordered_stages": _yaml(d / "unordered.yaml", {"stages": [{"stage": 2}, {"stage": 1}]}),
        "two_stages": _yaml(
            d / "two.yaml", {"run": {"run_dir": str(d / "two_run")}, "stages": [{"stage": 1}, {"stage": 2}]}
        ),
        "con_empty": _yaml(d / "con_empty.yaml", {"name": "x", "principles": []}),
        "con_dup": str(d / "con_dup.yaml"),
        "ife_ok": _jsonl(d / "ok.jsonl", [IFEVAL_ROW]),
        "ife_ok_twin": _jsonl(_mkdir(d / "twin") / "ok.jsonl", [IFEVAL_ROW]),
        "ife_dup_key": _jsonl(d / "dupkey.jsonl", [IFEVAL_ROW, {**IFEVAL_ROW, "prompt": "Another prompt."}]),
        "ife_no_kwargs": _jsonl(d / "nokw.jsonl", [{k: v for k, v in IFEVAL_ROW.items() if k != "kwargs"}]),
        "ife_unknown_id": _jsonl(d / "unk.jsonl", [{**IFEVAL_ROW, "instruction_id_list": ["nope:nope"]}]),
        "ife_mismatch": _jsonl(d / "mis.jsonl", [{**IFEVAL_ROW, "kwargs": [{}, {}]}]),
        "ife_bad_arg": _jsonl(d / "arg.jsonl", [{**IFEVAL_ROW, "kwargs": [{"colour": "red"}]}]),
        "ife_list_row": _jsonl(d / "listrow.jsonl", [[1, 2]]),
        "ife_empty": _jsonl(d / "empty.jsonl", []),
        "ife_bad_json": str(d / "wrong.jsonl"),
        "answers": _jsonl(
            d / "answers.jsonl", [{"prompt": IFEVAL_ROW["prompt"], "response": "Tea is warm."}]
        ),
        "answers_other": _jsonl(d / "other.jsonl", [{"prompt": "something else", "response": "x"}]),
        "dup_keys": str(d / "dupkeys.yaml"),
        "nul_run_dir": _yaml(d / "nul.yaml", {"run": {"run_dir": "a\x00b"}}),
        "con_str": str(d / "con_str.yaml"),
        "con_huge": str(d / "con_huge.yaml"),
        "con_dup_key": str(d / "con_dup_key.yaml"),
        "ife_inf": str(d / "inf.jsonl"),
        "ife_nan": str(d / "nan.jsonl"),
        **_bad_models(d),
        "run": _run_folder(d / "run"),
        "locked_run": _run_folder(d / "locked_run"),
        "damaged_run": _run_folder(d / "damaged_run"),
    }
    os.mkfifo(d / "fifo")
    paths["fifo"] = str(d / "fifo")
    # A node like /dev/null in the test's own folder (never the real one: a regression run as root
    # would replace it); without the right to make one, the fifo stands in.
    try:
        os.mknod(d / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        paths["device"] = str(d / "null")
    except PermissionError:
        paths["device"] = paths["fifo"]
    (d / "alink").symlink_to(d / "afile.txt")
    paths["alink"] = str(d / "alink")
    # --out r.json with --model also writes r.responses.jsonl, here a symlink to a file of the user's
    (d / "r.responses.jsonl").symlink_to(d / "afile.txt")
    paths["linked_out"] = str(d / "r.json")
    packaged = Path(cai_bootstrap.__file__).parent / "data" / "constitution.yaml"
    con = yaml.safe_load(packaged.read_text())
    _yaml(d / "con_dup.yaml", {**con, "principles": [*con["principles"], con["principles"][0]]})
    (d / "dupkeys.yaml").write_text("run:\n  name: a\nrun:\n  name: b\n")
    _yaml(d / "con_str.yaml", {**con, "principles": ["a string", *con["principles"][1:]]})
    huge = [{**con["principles"][0], "weight": 1e308}, *con["principles"][1:]]
    _yaml(d / "con_huge.yaml", {**con, "principles": huge})
    (d / "con_dup_key.yaml").write_text("name: a\nname: b\nprinciples: []\n")
    counts = {"instruction_id_list": ["length_constraints:number_words"], "kwargs": None}
    for name, number in (("inf", "Infinity"), ("nan", "NaN")):
        row = json.dumps({**IFEVAL_ROW, **counts}).replace(
            '"kwargs": null', f'"kwargs": [{{"relation": "at least", "num_words": {number}}}]'
        )
        (d / f"{name}.jsonl").write_text(row + "\n")
    (d / "damaged_run" / "config.resolved.yaml").write_text("run: {name: [\n")
    # Another run holds the lock (flock conflicts between two open files, even in one process).
    fd = os.open(d / "locked_run" / ".lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.write(fd, b"4242")
    cwd = d / "cwd"  # the rows' current directory, so default run folders land in the test's space
    cwd.mkdir()
    yield {"paths": paths, "cwd": cwd}
    os.close(fd)


def _argv(command: str, paths: dict) -> list[str]:
    return shlex.split(command.format(**paths))


def _check_one_line(output: str, expected: str) -> None:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line, got {len(lines)}:\n{output}"
    assert lines[0].startswith("error: "), lines[0]
    assert " -> " in lines[0], f"no fix given: {lines[0]}"
    assert expected in lines[0], f"{expected!r} not in: {lines[0]}"
    assert "Traceback" not in output and "--run-dir" not in output


@pytest.mark.parametrize(("command", "expected"), [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_bad_input_in_process(world, command, expected, monkeypatch):
    monkeypatch.chdir(world["cwd"])
    before = sorted(world["cwd"].rglob("*"))
    res = CliRunner().invoke(app, _argv(command, world["paths"]))
    assert res.exit_code == 2, (res.exit_code, res.output, res.exception)
    _check_one_line(res.output, expected.format(**world["paths"]))
    assert sorted(world["cwd"].rglob("*")) == before  # a refused command writes nothing


_BY_ID = {r[0]: r[1:] for r in ROWS}
if os.environ.get("CAI_BAD_INPUTS_ALL_SUBPROCESS"):  # the whole table in real processes (~80 s more CPU)
    SUBPROCESS_ROWS = list(_BY_ID)


@pytest.mark.parametrize("row", SUBPROCESS_ROWS)
def test_bad_input_real_process(world, row):
    command, expected = _BY_ID[row]
    env = {**os.environ, "PYTHONPATH": str(Path(cai_bootstrap.__file__).parents[1])}
    # -X importtime shows whether torch was imported before the error (it must not be).
    argv = [sys.executable, "-X", "importtime", "-m", "cai_bootstrap", *_argv(command, world["paths"])]
    res = subprocess.run(argv, cwd=world["cwd"], env=env, capture_output=True, text=True, timeout=120)
    importtime = [x for x in res.stderr.splitlines() if x.startswith("import time:")]
    output = res.stdout + "\n".join(x for x in res.stderr.splitlines() if not x.startswith("import time:"))
    assert res.returncode == 2, output
    _check_one_line(output, expected.format(**world["paths"]))
    assert not any(x.rstrip().endswith(("| torch", "| transformers")) for x in importtime)


def test_table_size():
    assert len(ROWS) >= 80 and len({r[0] for r in ROWS}) == len(ROWS)
    assert set(SUBPROCESS_ROWS) <= set(_BY_ID)


def _tree_digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        for p in sorted(folder.rglob("*"))
    }


@pytest.mark.parametrize(
    "extra",
    [
        ["--set", "model.generator=embedded:unknown"],
        ["--set", "stages.0.responses.kay=1"],
        ["--set", "stages.0.eval.ifeval_files=[/nonexistent.jsonl]"],
        ["--stages", "3-1"],
        ["--set", "stages.0.instructions.constraint_types=[]"],
    ],
    ids=["unknown-model", "bad-key", "missing-ifeval-file", "bad-stages", "empty-constraint-types"],
)
def test_refused_run_leaves_a_finished_run_byte_identical(tmp_path, monkeypatch, extra):
    """`run --set run.name=x ...` on the finished run x, refused: every file of x is as it was."""
    monkeypatch.chdir(tmp_path)
    run = Path(_run_folder(tmp_path / "runs" / "x"))
    (run / "config.resolved.yaml").write_text(
        (run / "config.resolved.yaml")
        .read_text()
        .replace(f"run_dir: {run}", "run_dir: null")
        .replace("name: quickstart", "name: x")
    )
    before = _tree_digest(tmp_path)
    for argv in (["run", "--set", "run.name=x", *extra], ["run", "--resume", str(run), *extra]):
        res = CliRunner().invoke(app, argv)
        assert res.exit_code == 2, res.output
        assert _tree_digest(tmp_path) == before


@pytest.mark.parametrize(
    ("cache", "expected"),
    [("{afile}", "is a file, not a folder"), ("/proc/cai-cache", "cannot be written"), ("", "is empty")],
    ids=["a-file", "unwritable", "empty"],
)
@pytest.mark.parametrize("command", ["run", "eval --ifeval {ife_ok} --responses {answers}"])
def test_bad_cache_folder(world, monkeypatch, cache, expected, command):
    """CAI_BOOTSTRAP_CACHE that is a file or cannot be written: one line before any step."""
    monkeypatch.chdir(world["cwd"])
    monkeypatch.setenv("CAI_BOOTSTRAP_CACHE", cache.format(**world["paths"]))
    res = CliRunner().invoke(app, _argv(command, world["paths"]))
    assert res.exit_code == 2, (res.output, res.exception)
    _check_one_line(res.output, f"CAI_BOOTSTRAP_CACHE={cache.format(**world['paths'])}")
    assert expected in res.output
