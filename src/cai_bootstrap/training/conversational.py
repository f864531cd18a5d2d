"""The pairs step's training data in TRL's conversational form, beside the completion form.

    write_conversational(pairs_folder, instructions, sft_examples, preference_pairs)
      -> sft_messages.jsonl    {"messages": [user, assistant]}                     (SFTTrainer)
      -> pairs_messages.jsonl  {"prompt": [user], "chosen": [assistant], "rejected": [assistant]}  (DPOTrainer)

The user message is the bare request (no shots, no "Instruction:"), the assistant message the
answer without the frame's stop text. Rendered through the frame's chat template (chat.py) they
give back the completion-form text exactly, so training from either form sees the same tokens
(tests/test_conversational.py checks it). `sft.dataset_form` / `dpo.dataset_form: conversational`
trains from these files through that template instead of the completion files.
"""

from __future__ import annotations

from pathlib import Path

from datasets import Dataset
from pydantic import BaseModel, ConfigDict, Field

from .. import frame
from ..errors import StepFailed
from ..records import Instruction, PreferencePair, SFTExample
from ..store import read_jsonl, write_jsonl
from .chat import install_frame
from .data import preference_dataset, sft_dataset

SFT_FILE = "sft_messages.jsonl"
PAIRS_FILE = "pairs_messages.jsonl"


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: str = Field(description="'user' or 'assistant'")
    content: str


class ChatSFTExample(BaseModel):
    """One SFT example as a conversation (TRL's conversational language-modeling form)."""

    model_config = ConfigDict(extra="forbid")
    id: str
    instruction_id: str
    messages: list[Message]


class ChatPreferencePair(BaseModel):
    """One preference pair in TRL's conversational form (implicit prompt split)."""

    model_config = ConfigDict(extra="forbid")
    id: str
    instruction_id: str
    reason: str = Field(description="why chosen beats rejected (copied from the pair)")
    prompt: list[Message]
    chosen: list[Message]
    rejected: list[Message]


def _request(prompt: str, instruction_id: str, by_id: dict[str, Instruction]) -> str:
    ins = by_id.get(instruction_id)
    if ins is None or frame.prompt(ins.prompt) != prompt:
        raise StepFailed(
            f"training record for instruction {instruction_id} is not in the frame of its instruction",
            "rerun the pairs step with --force",
        )
    return ins.prompt.strip()


def _answer(completion: str) -> str:
    """The answer inside frame.completion's text (its inverse)."""
    tail = f"\n\n{frame.INSTRUCTION}"
    if not completion.endswith(tail):
        raise StepFailed(f"completion does not end with the frame's stop text: {completion[-40:]!r}")
    return frame.clean(completion.removesuffix(tail))


def _user(text: str) -> list[Message]:
    return [Message(role="user", content=text)]


def _assistant(text: str) -> list[Message]:
    return [Message(role="assistant", content=text)]


def to_conversational(
    instructions: list[Instruction], sft: list[SFTExample], pairs: list[PreferencePair]
) -> tuple[list[ChatSFTExample], list[ChatPreferencePair]]:
    by_id = {i.id: i for i in instructions}
    chat_sft = [
        ChatSFTExample(
            id=ex.id,
            instruction_id=ex.instruction_id,
            messages=_user(_request(ex.prompt, ex.instruction_id, by_id))
            + _assistant(_answer(ex.completion)),
        )
        for ex in sft
    ]
    chat_pairs = [
        ChatPreferencePair(
            id=p.id,
            instruction_id=p.instruction_id,
            reason=p.reason,
            prompt=_user(_request(p.prompt, p.instruction_id, by_id)),
            chosen=_assistant(_answer(p.chosen)),
            rejected=_assistant(_answer(p.rejected)),
        )
        for p in pairs
    ]
    return chat_sft, chat_pairs


def write_conversational(
    folder: Path, instructions: list[Instruction], sft: list[SFTExample], pairs: list[PreferencePair]
) -> None:
    chat_sft, chat_pairs = to_conversational(instructions, sft, pairs)
    write_jsonl(Path(folder) / SFT_FILE, chat_sft)
    write_jsonl(Path(folder) / PAIRS_FILE, chat_pairs)


def _rows(records: list[BaseModel], columns: tuple[str, ...]) -> list[dict]:
    return [r.model_dump(mode="json", include=set(columns)) for r in records]


def sft_chat_dataset(examples: list[ChatSFTExample]) -> Dataset:
    """`messages` rows for SFTTrainer (it renders them through the tokenizer's chat template)."""
    return Dataset.from_list(_rows(examples, ("messages",)))


def preference_chat_dataset(pairs: list[ChatPreferencePair]) -> Dataset:
    """`prompt`/`chosen`/`rejected` message rows for DPOTrainer's own tokenisation."""
    return Dataset.from_list(_rows(pairs, ("prompt", "chosen", "rejected")))


def conversational(cfg) -> bool:
    """Whether a training step (SFTSettings or DPOSettings) trains from the conversational files."""
    return cfg.dataset_form == "conversational"


def read_sft(cfg, path: Path) -> list:
    return read_jsonl(Path(path), ChatSFTExample if conversational(cfg) else SFTExample)


def read_pairs(cfg, path: Path) -> list:
    return read_jsonl(Path(path), ChatPreferencePair if conversational(cfg) else PreferencePair)


def sft_train_dataset(cfg, examples: list, tok) -> Dataset:
    """The SFT rows: conversations rendered by TRL through the frame template (installed on `tok`
    here), or our own tokenisation of the completion form (data.py)."""
    if conversational(cfg):
        install_frame(tok)
        return sft_chat_dataset(examples)
    return sft_dataset(examples, tok, cfg.max_length)


def preference_train_dataset(cfg, pairs: list, tok) -> Dataset:
    if conversational(cfg):
        install_frame(tok)
        return preference_chat_dataset(pairs)
    return preference_dataset(pairs, tok, cfg.max_length)
