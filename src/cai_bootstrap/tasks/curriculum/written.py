"""Task sources that scale, written by the stage's input model (stages 2 and 3). The packaged lists
are the few-shot seeds; the model writes new material in completion mode, and code keeps only the
items whose check computes, recording why each other one was dropped:

- stage 2: a short passage on a topic, a question on it and its answer; kept when the answer is a
  span of the passage (whole words) and not already in the question, so `cai:contains_answer` decides.
- stage 3: words ("use the word Z", "write a question about Z") and categories with examples
  ("give an example of Y"); kept when the word or each example is a plain word or two, so the
  checks of stage3.Family apply as they do to the packaged seeds.

A written item's split is a hash of its topic (stage 2) or subject (stage 3), like the packaged
ones, so held-out and training items never share one; repeats are dropped."""

from __future__ import annotations

import random
import re

from pydantic import BaseModel, ConfigDict, Field

from ...engines import Engine, Sampling
from ..constraints.curriculum import contains_answer
from ..leakage import NearDupIndex, normalise
from .common import load_data, split_of
from .stage2 import QAItem
from .stage3 import Family, Seed, plurals

STOP = ["\n\n\n", "Topic:", "List:"]
WORD = re.compile(r"^[A-Za-z][A-Za-z\- ]{1,24}$")


class WrittenItem(BaseModel):
    """One thing the model wrote, kept or dropped (with the reason)."""

    model_config = ConfigDict(extra="forbid")
    id: str
    stage: int
    source: str = Field(description="passage_question, word or category")
    topic: str = Field(description="the topic or list the model was given")
    raw: str = Field(description="the model's text as written")
    kept: bool
    reason: str = Field("", description="why it was dropped; empty when kept")
    prompt: str = Field("", description="stage 2: passage, blank line, question")
    answers: list[str] = Field(default_factory=list, description="stage 2: the span; stage 3: forms")
    x: str = Field("", description="stage 3: the word or category")


def topics() -> list[str]:
    """Stage 2's topic list: the base tasks' topics and stage 3's question subjects (packaged)."""
    from ..composer import load_base_tasks

    base = {t.topic for t in load_base_tasks("train") + load_base_tasks("heldout")}
    subjects = {s["x"] for s in load_data("stage3.yaml")["question"]["seeds"]}
    return sorted(base | subjects)


def passage_prompt(topic: str, rng: random.Random, shots: int) -> str:
    """Few-shot completion prompt: packaged passages with one question each, then the new topic."""
    passages = rng.sample(load_data("stage2.yaml")["passages"], shots)
    blocks = []
    for p in passages:
        q = rng.choice(p["questions"])
        text = " ".join(p["text"].split())
        blocks.append(f"Topic: {p['id']}\nPassage: {text}\nQuestion: {q['q']}\nAnswer: {q['a'][0]}\n")
    return "\n".join(blocks) + f"\nTopic: {topic}\nPassage:"


def _field(text: str, name: str) -> str:
    m = re.search(rf"^{name}:\s*(.+)$", text, re.MULTILINE)
    return m.group(1).strip() if m else ""


def parse_passage(raw: str, topic: str) -> tuple[QAItem | None, str]:
    """A stage-2 item from the model's continuation, or None and why it was dropped."""
    passage = raw.split("\n", 1)[0].strip()
    question, answer = _field(raw, "Question"), _field(raw, "Answer").rstrip(".")
    if not passage or not question or not answer:
        return None, "not in the passage/question/answer form"
    if not 12 <= len(passage.split()) <= 90:
        return None, "passage length outside 12-90 words"
    if not question.endswith("?"):
        return None, "question does not end with '?'"
    if len(answer.split()) > 5:
        return None, "answer longer than 5 words"
    if not contains_answer(passage, answers=[answer]):
        return None, "answer is not a span of the passage"
    if contains_answer(question, answers=[answer]):
        return None, "answer is already in the question"
    item = QAItem(prompt=f"{passage}\n\n{question}", answers=[answer], kind="passage_question", topic=topic)
    return item, ""


def list_prompt(family: Family, rng: random.Random, shots: int) -> str:
    """Few-shot prompt for a list: words (question and sentence families) or a category and examples."""
    seeds = load_data("stage3.yaml")[family.value]["seeds"]
    if family is Family.EXAMPLE:
        shown = rng.sample(seeds, shots)
        blocks = [f"Category: {s['x']}\nExamples: {', '.join(s['forms'][:4])}\n" for s in shown]
        return "\n".join(blocks) + "\nCategory:"
    words = [s["x"] for s in rng.sample(seeds, min(len(seeds), 3 * shots))]
    return "List: words a child knows\n" + "".join(f"- {w}\n" for w in words) + "-"


def parse_words(raw: str) -> list[str]:
    """The listed words of a word-list continuation (one per '- ' line), as written."""
    lines = ("-" + raw).splitlines()
    return [ln.removeprefix("-").strip() for ln in lines if ln.startswith("-")]


def parse_category(raw: str) -> tuple[str, list[str], str]:
    """(category, examples, why dropped) from a category continuation."""
    category = raw.split("\n", 1)[0].strip().rstrip(".")
    examples = [e.strip().rstrip(".") for e in _field(raw, "Examples").split(",") if e.strip()]
    if not category or not WORD.match(category.replace(",", "")) and len(category.split()) > 8:
        return category, [], "no readable category"
    if len(examples) < 3:
        return category, [], "fewer than 3 examples"
    if not all(WORD.match(e) for e in examples):
        return category, [], "an example is not a plain word or two"
    return category, examples, ""


def write(
    engine: Engine, stage: int, samples: int, shots: int, sampling: Sampling, seed: int
) -> list[WrittenItem]:
    """Everything the model writes for stage 2 or 3, kept and dropped, in a fixed order."""
    rng = random.Random(f"written-{seed}-{stage}")
    if stage == 2:
        jobs = [
            ("passage_question", t, passage_prompt(t, rng, shots)) for t in topics() for _ in range(samples)
        ]
    else:
        jobs = [(f.value, f.value, list_prompt(f, rng, shots)) for f in Family for _ in range(samples)]
    outs = engine.generate([p for _, _, p in jobs], sampling.model_copy(update={"stop": STOP}))
    items: list[WrittenItem] = []
    seen: set[str] = set()
    for n, ((source, topic, _), (raw,)) in enumerate(zip(jobs, outs, strict=True)):
        items += _keep(stage, source, topic, str(raw), seen, f"w{stage}-{n}")
    return keep_apart(items) if stage == 2 else items


# Stricter than the instructions step's leakage check (0.6 on tasks, containment 0.9), so the items
# kept here never trip it: a model often writes near-copies of one passage under different topics.
APART_JACCARD, APART_CONTAINMENT = 0.5, 0.8


def keep_apart(items: list[WrittenItem]) -> list[WrittenItem]:
    """Drop kept stage-2 training items that nearly repeat a kept held-out one (different topics)."""
    held = [w for w in items if w.kept and split_of(f"written:{w.topic}", "stage2") == "heldout"]
    index = NearDupIndex(APART_JACCARD, APART_CONTAINMENT, [w.prompt for w in held])
    train = [w for w in items if w.kept and split_of(f"written:{w.topic}", "stage2") == "train"]
    near = {w.id for w, m in zip(train, index.match_many([w.prompt for w in train]), strict=True) if m}
    return [w.model_copy(update={"kept": False, "reason": "near a held-out item"}) if w.id in near else w
            for w in items]  # fmt: skip


def _keep(stage: int, source: str, topic: str, raw: str, seen: set[str], key: str) -> list[WrittenItem]:
    base = {"stage": stage, "topic": topic, "raw": raw}
    if stage == 2:
        item, why = parse_passage(raw, topic)
        if item is None or normalise(item.prompt) in seen:
            return [WrittenItem(id=key, source=source, kept=False, reason=why or "repeat", **base)]
        seen.add(normalise(item.prompt))
        return [
            WrittenItem(id=key, source=source, kept=True, prompt=item.prompt, answers=item.answers, **base)
        ]
    if source == Family.EXAMPLE.value:
        category, examples, why = parse_category(raw)
        if not why and normalise(f"{source}|{category}") in seen:
            why = "repeat"
        seen.add(normalise(f"{source}|{category}"))
        return [WrittenItem(id=key, source="category", kept=not why, reason=why, answers=examples, x=category,
                            **base)]  # fmt: skip
    out = []
    for i, word in enumerate(parse_words(raw)):
        why = "" if WORD.match(word) and len(word.split()) <= 2 else "not a plain word or two"
        if not why and normalise(f"{source}|{word}") in seen:
            why = "repeat"
        seen.add(normalise(f"{source}|{word}"))
        out.append(WrittenItem(id=f"{key}-{i}", source="word", kept=not why, reason=why, x=word,
                               answers=plurals(_core(word)), **{**base, "raw": word}))  # fmt: skip
    return out


def _core(word: str) -> str:
    """The word without a leading article ("the ocean" -> "ocean"): what an answer has to contain."""
    return re.sub(r"^(?:the|a|an)\s+", "", word, flags=re.IGNORECASE)


def qa_items(written: list[WrittenItem]) -> list[QAItem]:
    """Stage 2: the kept passage questions, split by their topic (a topic is wholly in one split)."""
    return [
        QAItem(prompt=w.prompt, answers=w.answers, kind="passage_question", topic=f"written:{w.topic}")
        for w in written
        if w.kept and w.stage == 2
    ]


def seeds(written: list[WrittenItem]) -> list[tuple[Family, Seed]]:
    """Stage 3: the kept words and categories as seeds of their family, like the packaged ones."""
    out = []
    for w in written:
        if w.kept and w.stage == 3:
            out.append((Family(w.topic), Seed(x=w.x, forms=w.answers)))
    return out
