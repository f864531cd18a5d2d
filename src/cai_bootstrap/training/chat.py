"""The project's prompt frame as a transformers chat template, so a merged model works with messages.

    install_frame(tokenizer)   # tokenizer.chat_template renders messages into frame.py's frame
    frame_generation_config(model_dir, max_new_tokens)  # greedy, with the frame's stop strings

Rendering (the same text `frame.prompt` and `frame.completion` build, checked in tests):
- BOS first when the tokenizer has one (apply_chat_template tokenises without special tokens, and
  `engines.input_ids_for` puts exactly one BOS in front), then an optional system message as a
  preamble paragraph (the project's own runs never use one), then the three fixed shots;
- a user message -> "Instruction: <text>\\n", the generation prompt -> "Response:";
- an assistant message -> "Response: <text>\\n\\nInstruction:", the frame's stop text, inside
  `{% generation %}` so TRL's assistant-only loss trains the model to end its answer there; a user
  message right after it then renders " <text>\\n" (the "Instruction:" is already written).
Why hand-written: transformers has no frame-to-template converter; the template is built from
frame.SHOTS so the two cannot drift apart.
"""

from __future__ import annotations

from pathlib import Path

from transformers import GenerationConfig

from .. import frame

_HEAD = (
    "{%- if bos_token %}{{ bos_token }}{% endif -%}"
    "{%- if messages and messages[0]['role'] == 'system' -%}"
    "{{ messages[0]['content'] | trim }}{{ '\\n\\n' }}"
    "{%- set turns = messages[1:] -%}{%- else -%}{%- set turns = messages -%}{%- endif -%}"
)
_TURNS = (
    "{%- for m in turns -%}"
    "{%- if m['role'] == 'user' -%}"
    "{%- if loop.first or turns[loop.index0 - 1]['role'] != 'assistant' -%}{{ 'INSTRUCTION' }}{%- endif -%}"
    "{{ ' ' + (m['content'] | trim) + '\\n' }}"
    "{%- elif m['role'] == 'assistant' -%}"
    "{{ 'RESPONSE' }}{% generation %}{{ ' ' + (m['content'] | trim) + '\\n\\nINSTRUCTION' }}{% endgeneration %}"
    "{%- else -%}"
    "{{ raise_exception('the frame has user, assistant and a leading system message only, not ' + m['role']) }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt %}{{ 'RESPONSE' }}{% endif -%}"
)


def _shots() -> str:
    """frame.SHOTS as a raw block (they contain no Jinja delimiters; checked)."""
    text = "".join(f"{frame.INSTRUCTION} {q}\n{frame.RESPONSE} {a}\n\n" for q, a in frame.SHOTS)
    if any(d in text for d in ("{%", "%}", "{{", "}}", "{#", "#}")):
        raise ValueError("a frame shot contains a Jinja delimiter; escape it before building the template")
    return "{% raw %}" + text + "{% endraw %}"


def frame_template() -> str:
    """The chat template (Jinja) that renders messages into the frame; see the module docstring."""
    turns = _TURNS.replace("INSTRUCTION", frame.INSTRUCTION).replace("RESPONSE", frame.RESPONSE)
    return _HEAD + _shots() + turns


def install_frame(tokenizer):
    """`tokenizer` with the frame as its chat template (in place; also returned)."""
    tokenizer.chat_template = frame_template()
    return tokenizer


def frame_generation_config(model_dir: Path, max_new_tokens: int) -> GenerationConfig:
    """The model folder's generation config set to the held-out eval's decoding: greedy, cut at the
    frame's stop strings. transformers applies `stop_strings` only when generate() is given the
    tokenizer: a pipeline needs `pipe(messages, tokenizer=pipe.tokenizer)` (model card)."""
    try:
        cfg = GenerationConfig.from_pretrained(model_dir)
    except OSError:  # no generation_config.json: start from the model config's ids
        cfg = GenerationConfig.from_model_config(_model_config(model_dir))
    cfg.do_sample = False
    cfg.temperature, cfg.top_p, cfg.top_k = None, None, None  # greedy: sampling knobs would only warn
    cfg.max_new_tokens = max_new_tokens
    cfg.stop_strings = list(frame.STOP)
    return cfg


def _model_config(model_dir: Path):
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(model_dir)
