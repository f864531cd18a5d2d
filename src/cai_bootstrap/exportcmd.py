"""`cai-bootstrap export RUN_DIR [--stage N] --to DIR [--push-to-hub REPO]`: a run's model where
researchers use models.

    DIR/model/   the stage's chosen merged model: weights, tokenizer with the frame's chat template,
                 generation config with the frame's stops, lineage.json, README.md (the card, with the
                 round's held-out and IFEval-format results)
    DIR/data/    the chosen round's training data in both TRL forms (completion and conversational)

DIR is built in a sibling temp folder and renamed into place, so a failed export leaves nothing
that looks finished. --push-to-hub uploads DIR/model to the model repo REPO and DIR/data to the
dataset repo REPO-data through huggingface_hub (its token: HF_TOKEN or `hf auth login`).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from .card import write_card
from .errors import StepFailed, UserError
from .log import log
from .results import StageResult, at
from .training.conversational import PAIRS_FILE, SFT_FILE

# The pairs step's training files (completion form, then conversational), as exported.
DATA_FILES = {
    "sft.jsonl": "SFT, completion form: prompt (the whole frame) / completion (answer + stop text)",
    "records.jsonl": "preference pairs, completion form: prompt / chosen / rejected (+ provenance)",
    SFT_FILE: "SFT, conversational form: messages = [user request, assistant answer]",
    PAIRS_FILE: "preference pairs, conversational form: prompt / chosen / rejected as message lists",
}
# Step bookkeeping of the run, meaningless outside it.
SKIP = {"manifest.json"}


def _stage_result(run_dir: Path, stage: int | None) -> StageResult:
    done = sorted(run_dir.glob("stage*/stage.json"), key=lambda p: int(p.parent.name.removeprefix("stage")))
    if stage is not None:
        done = [p for p in done if p.parent.name == f"stage{stage}"]
    if not done:
        which = f"stage {stage}" if stage is not None else "any stage"
        raise UserError(
            f"{run_dir} has no finished {which} (no stage.json)",
            "finish the stage with cai-bootstrap run first",
        )
    return StageResult.read(done[-1])


def _copy_model(src: Path, dest: Path, result: StageResult) -> None:
    if not (src / "lineage.json").is_file() or not list(src.glob("*.safetensors")):
        raise UserError(f"{src} is not a merged model folder (no lineage.json or weights)", "rerun the stage")
    dest.mkdir(parents=True)
    for path in sorted(src.iterdir()):
        if path.is_file() and not path.is_symlink() and path.name not in SKIP:
            shutil.copy2(path, dest / path.name)
    lineage = json.loads((src / "lineage.json").read_text())
    write_card(dest, lineage, result.chosen)


def _copy_data(pairs_dir: Path, dest: Path) -> None:
    dest.mkdir(parents=True)
    lines = ["# Training data", "", "The chosen round's training files, one JSON record per line:", ""]
    for name, what in DATA_FILES.items():
        if not (pairs_dir / name).is_file():
            raise UserError(
                f"{pairs_dir / name} is missing", "rerun the pairs step: cai-bootstrap run --force"
            )
        shutil.copy2(pairs_dir / name, dest / name)
        lines.append(f"- `{name}`: {what}")
    lines += [
        "",
        "Load with `datasets.load_dataset('json', data_files=...)`; both forms train in TRL as they are.",
    ]
    (dest / "README.md").write_text("\n".join(lines) + "\n")


def export(run_dir: Path, to: Path, stage: int | None = None, push_to_hub: str | None = None) -> Path:
    """Write the export folder `to` (see the module docstring) and push it if asked; return `to`."""
    result = _stage_result(run_dir, stage)
    to = Path(to)
    if to.exists() and (not to.is_dir() or any(to.iterdir())):
        raise UserError(f"{to} already exists and is not empty", "choose a new folder for --to")
    model = at(run_dir, result.chosen.model)
    tmp = to.with_name(f".{to.name}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    _copy_model(model, tmp / "model", result)
    _copy_data(model.parent / "pairs", tmp / "data")
    if to.exists():
        to.rmdir()
    os.replace(tmp, to)
    log.info("exported stage %d round %d to %s", result.stage, result.chosen_round, to)
    if push_to_hub:
        push(to, push_to_hub)
    return to


def push(folder: Path, repo: str) -> None:
    """Upload folder/model to the model repo `repo` and folder/data to the dataset repo `repo`-data."""
    from huggingface_hub import HfApi, constants

    api = HfApi()
    for sub, repo_id, kind in (("model", repo, "model"), ("data", f"{repo}-data", "dataset")):
        try:
            api.create_repo(repo_id, repo_type=kind, exist_ok=True)
            api.upload_folder(folder_path=str(folder / sub), repo_id=repo_id, repo_type=kind)
        # Any failure of the hub call: huggingface_hub raises its own HTTP errors, OSError subclasses and
        # its HTTP client's transport errors (httpx2 in huggingface_hub 2.5), which it does not re-export.
        except Exception as e:  # noqa: BLE001
            raise StepFailed(
                f"pushing {folder / sub} to the hub {kind} repo {repo_id} at {constants.ENDPOINT} failed: "
                f"{type(e).__name__}: {' '.join(str(e).split())[:200]}",
                f"the export in {folder} is complete; check the network and your token (HF_TOKEN), then rerun "
                "with a new --to, or upload it with `hf upload`",
            ) from e
        log.info("pushed %s to %s (%s)", sub, repo_id, kind)
