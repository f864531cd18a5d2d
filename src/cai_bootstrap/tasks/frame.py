"""The prompt frame, re-exported: it lives in the base floor (cai_bootstrap/frame.py) because
training/ (the chat template, conversational SFT rows) builds on it too and may not import tasks/."""

from ..frame import INSTRUCTION, RESPONSE, SHOTS, STOP, clean, completion, prompt  # noqa: F401
