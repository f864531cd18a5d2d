"""The prompt frame every model sees for instructions: generation, SFT, DPO and evaluation alike.

A base model runs in completion mode, so the frame is a 3-shot "Instruction:/Response:" transcript
(no chat template, no special tokens). The same functions build the training records, so a model
is trained in exactly the frame it is generated and evaluated in.
"""

from __future__ import annotations

# Written for this project; none is an IFEval prompt. Each shows a constraint being met exactly.
# Kept short: on a CPU every token of the frame is paid for in every generation and training step.
SHOTS: list[tuple[str, str]] = [
    (
        "Name three animals that live in the ocean. Answer in lowercase letters only.",
        "dolphins, octopuses and sea turtles.",
    ),
    (
        "Why do we see lightning before we hear thunder? Answer in one sentence and do not use any commas.",
        "Light travels much faster than sound so the flash reaches us first.",
    ),
    (
        'Give two tips for sleeping well. Use exactly 2 markdown bullet points and end with "Sleep well."',
        "* Go to bed at the same time every night.\n* Keep your bedroom dark and cool.\nSleep well.",
    ),
]

INSTRUCTION = "Instruction:"
RESPONSE = "Response:"
# A base model ends an answer by starting the next transcript entry; we cut there.
STOP = [f"\n{INSTRUCTION}", "\n\n\n\n"]


def prompt(instruction: str) -> str:
    """The full completion-mode prompt for one instruction; it ends right after 'Response:'."""
    shots = "".join(f"{INSTRUCTION} {q}\n{RESPONSE} {a}\n\n" for q, a in SHOTS)
    return f"{shots}{INSTRUCTION} {instruction.strip()}\n{RESPONSE}"


def completion(response: str) -> str:
    """The training target for a response: the answer, then the start of the next entry.

    Generation cuts at STOP[0] ("\\nInstruction:"), so training the model to emit it teaches it to stop.
    """
    return f" {response.strip()}\n\n{INSTRUCTION}"


def clean(generated: str) -> str:
    """A generated continuation (already cut at a stop string) as the answer text."""
    return generated.strip()
