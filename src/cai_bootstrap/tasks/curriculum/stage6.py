"""Stage 6, constitutional integration: ordinary helpfulness requests plus red-team requests that the
model writes itself, all without constraints (the model's own judge ranks their answers under the
constitution).

Red-team requests: `redteam_prompt_request(topic)` is a few-shot completion prompt (data/stage6.yaml)
that ends on "Request:" for a topic of data/redteam_topics.yaml; generate with REDTEAM_STOP and read
each continuation with `parse_redteam`. The parsed requests go to `build(..., generated=...)`, which
drops repeats and any request near a held-out safety-evaluation prompt.

Stage 6 is evaluated on stage 1's held-out instructions and the safety evaluation; its own held-out
split holds helpfulness requests only.
"""

from __future__ import annotations

import random
import re
from functools import cache

from pydantic import BaseModel, ConfigDict, Field

from ...errors import UserError
from ...log import log
from ...records import Instruction, Split
from ..leakage import NearDupIndex, normalise
from ..safety_prompts import SafetyKind, load_eval_prompts, load_redteam_topics
from .common import check_split, load_data, make_instruction, select, split_of

STAGE = 6
TOPIC, REQUEST = "Topic:", "Request:"
# A request is one line; the next shot would start with a blank line and "Topic:". parse_redteam
# keeps the first non-empty line, so a stray leading newline costs nothing.
REDTEAM_STOP = ["\n\n", "\nTopic:"]
MIN_WORDS, MAX_WORDS = 4, 80
# Same near-duplicate bar as the stage-1 leakage check between held-out and training tasks.
LEAKAGE_THRESHOLD = 0.6
FRAME_MARKERS = (TOPIC, REQUEST, "Instruction:", "Response:")


class HelpPrompt(BaseModel):
    model_config = ConfigDict(extra="forbid")
    topic: str = Field(description="a coarse area, for reports")
    prompt: str = Field(min_length=1, description="the request as the user writes it")


@cache
def help_prompts() -> tuple[HelpPrompt, ...]:
    items = tuple(HelpPrompt.model_validate(e) for e in load_data("stage6.yaml")["help"])
    if len({normalise(i.prompt) for i in items}) != len(items):
        raise UserError("stage-6 data repeats a helpfulness prompt", "remove the copy")
    return items


def help_split(split: Split) -> list[HelpPrompt]:
    return [p for p in help_prompts() if split_of(p.prompt, "stage6") == check_split(split)]


def redteam_prompt_request(topic: str) -> str:
    """A few-shot completion prompt that ends on 'Request:' for `topic`; the model continues it with
    a user request about the topic (one line)."""
    if not topic.strip():
        raise UserError("a red-team topic is empty", "give a topic from data/redteam_topics.yaml")
    raw = load_data("stage6.yaml")["redteam_request"]
    shots = "".join(f"{TOPIC} {s['topic']}\n{REQUEST} {s['request']}\n\n" for s in raw["shots"])
    return f"{' '.join(raw['header'].split())}\n\n{shots}{TOPIC} {' '.join(topic.split())}\n{REQUEST}"


def redteam_topics() -> list[str]:
    """The topic texts of data/redteam_topics.yaml, in file order."""
    return [t.topic for t in load_redteam_topics()]


class RedteamParse(BaseModel):
    """A parsed model-written request: `request` is None when the text was unusable, with `reason`."""

    model_config = ConfigDict(extra="forbid")
    raw: str
    request: str | None = None
    reason: str | None = None


def parse_redteam(text: str) -> RedteamParse:
    """Read one continuation of `redteam_prompt_request`; never raises. Keeps the first line, with
    surrounding quotes removed; rejects empty, too short or long lines and frame markers."""
    line = next((ln for ln in text.splitlines() if ln.strip()), "")
    line = line.strip().strip("\"'\u201c\u201d").strip()
    n_words = len(line.split())
    if not line:
        reason = "empty"
    elif any(m.lower() in line.lower() for m in FRAME_MARKERS):
        reason = "frame_marker"
    elif n_words < MIN_WORDS:
        reason = "too_short"
    elif n_words > MAX_WORDS:
        reason = "too_long"
    elif not re.search(r"[A-Za-z]", line):
        reason = "no_letters"
    else:
        return RedteamParse(raw=text, request=line)
    return RedteamParse(raw=text, reason=reason)


@cache
def _eval_index() -> NearDupIndex:
    """The held-out safety prompts (harmful and benign), which no training request may come near."""
    prompts = [p.prompt for kind in SafetyKind for p in load_eval_prompts(kind)]
    return NearDupIndex(LEAKAGE_THRESHOLD, 0.9, prompts)


def redteam_instructions(generated: list[str]) -> list[Instruction]:
    """Training instructions from model-written requests: repeats and requests near a held-out
    safety prompt are dropped (logged)."""
    texts = list(dict.fromkeys(" ".join(g.split()) for g in generated if g.strip()))
    near = _eval_index().match_many(texts)
    kept = [t for t, m in zip(texts, near, strict=True) if m is None]
    if len(kept) < len(texts):
        log.warning(
            "stage 6: dropped %d red-team requests near held-out safety prompts", len(texts) - len(kept)
        )
    return [make_instruction(STAGE, "train", t, t, "redteam", "redteam", []) for t in kept]


def build(split: Split, n: int, rng: random.Random, generated: list[str] | None = None) -> list[Instruction]:
    """Up to n stage-6 instructions. Train: about half model-written red-team requests (`generated`),
    the rest helpfulness requests, either side filling in when the other runs short. Held-out:
    helpfulness requests only; passing red-team requests for it is an error."""
    check_split(split)
    helps = [
        make_instruction(STAGE, split, p.prompt, p.prompt, "help", p.topic, []) for p in help_split(split)
    ]
    if split == "heldout":
        if generated:
            raise UserError("stage 6 held-out takes no generated red-team requests", "pass them for train")
        return select([[h] for h in helps], n, rng, "stage 6 heldout")
    red = redteam_instructions(generated or [])
    rng.shuffle(red)
    rng.shuffle(helps)
    n_red = min(len(red), max(n - len(helps), (n + 1) // 2))
    chosen = red[:n_red] + helps[: n - n_red]
    return select([[i] for i in chosen], n, rng, "stage 6 train")
