"""The model canary: three cheap checks on every loaded model before it does any work.

A model that loads without error can still be useless: transformers 5.17 converts the embedded Gemma
GGUF's tokenizer wrongly (the weights are fine, the token ids are not), and such a model answers every
prompt with "1. 2. 3. ..." while the pipeline happily trains on it. The checks:

(a) tokenizer round trip: decode(encode(text)) == text on a paragraph with punctuation, digits,
    newlines and non-ASCII;
(b) for the embedded models, the exact token ids of a fixed string, recorded from a known-good
    conversion (transformers 5.18-5.24);
(c) the mean per-token negative log-likelihood of a fixed English answer in the generation frame,
    which must stay under `max_nll` (a working model scores far below it, a broken one far above).
"""

from __future__ import annotations

import math
import os

from pydantic import BaseModel, ConfigDict, Field

from .errors import UserError
from .tasks import frame

ROUND_TRIP_TEXT = (
    'On 3 May 2024, at 07:45, the café\'s naïve owner wrote: "Prices rise 12.5% — sorry!"\n'
    "  Items: apples (x2), pears; über-fresh [#1] {ok} <b>50 €</b> 日本語 ✓\n\n"
    "Done? Yes... 100%."
)

IDS_TEXT = "Instruction: Name two colours of the rainbow.\nResponse: Red and blue, 2 of 7 (café)."

# Token ids of IDS_TEXT (no special tokens), from a known-good conversion (transformers 5.18.0, 5.20.0,
# 5.22.0 and 5.24.0 agree). transformers 5.17.0 converts the Gemma GGUF into a tokenizer that gives
# 43 ids for this string; its text still round-trips, so only this check catches it for sure.
EMBEDDED_IDS: dict[str, list[int]] = {
    "gemma-3-270m": [
        74279,
        236787,
        7343,
        1156,
        22640,
        529,
        506,
        30591,
        236761,
        107,
        6126,
        236787,
        4855,
        532,
        3730,
        236764,
        236743,
        236778,
        529,
        236743,
        236832,
        568,
        123125,
        236859,
        769,
    ],
    "smollm2-135m-instruct": [
        25464,
        42,
        10181,
        827,
        14797,
        282,
        260,
        24594,
        30,
        198,
        12463,
        42,
        3950,
        284,
        4461,
        28,
        216,
        34,
        282,
        216,
        39,
        365,
        83,
        1939,
        2756,
        595,
    ],
}

NLL_INSTRUCTION = "Describe what a library is for in two sentences."
NLL_ANSWER = (
    "A library is a place where people can borrow books, read newspapers and use computers for free. "
    "It helps everyone in the community to learn new things and to find information they need."
)


class CanarySettings(BaseModel):
    """The load-time model check. Only random-weight test models should ever loosen it."""

    model_config = ConfigDict(extra="forbid")
    # Measured (bf16): embedded Gemma-3-270M 1.71-1.72, SmolLM2-135M 1.82; the same Gemma after 1-3 rounds
    # of stage-1 training on the GPU 1.86-3.94 (DPO moves likelihood away from plain prose); fresh random
    # weights 10.8-12.7; scrambled weights 22-32. Gemma with the tokenizer transformers 5.17 converts
    # scores 4.02, which is why embedded models also have their token ids checked (EMBEDDED_IDS). A first
    # bound of 3.0 refused a working trained model (3.42, 28.4% on the held-out set): 5.0 sits between
    # every trained model and every broken one we measured.
    max_nll: float | None = Field(
        5.0,
        gt=0,
        description="bound on the mean per-token NLL (nats) of a fixed English answer in the frame; "
        "null skips this check (random-weight test models only)",
    )
    round_trip: bool = Field(True, description="check decode(encode(text)) == text")


def check(model, tok, settings: CanarySettings, embedded: str | None, where: str) -> dict:
    """Run the checks; raise UserError with one line naming what failed, the value, the bound and the
    likely fix. Returns the measured values (for logs and manifests)."""
    if settings.round_trip:
        _round_trip(tok, where)
    if embedded in EMBEDDED_IDS:
        _known_ids(tok, embedded, where)
    out = {}
    if settings.max_nll is not None:
        nll = answer_nll(model, tok)
        out["nll"] = round(nll, 3)
        if not nll <= settings.max_nll:  # NaN fails too
            raise UserError(
                f"model canary failed for {where}: mean NLL {nll:.2f} nats/token on a fixed English answer "
                f"(bound {settings.max_nll})",
                _fix_hint(embedded)
                + " If this is a random-weight test model, set model.canary.max_nll: null.",
            )
    return out


def _fix_hint(embedded: str | None) -> str:
    import transformers

    if embedded:
        return (
            f"transformers {transformers.__version__} may have converted the embedded GGUF wrongly: "
            "pip install 'transformers>=5.18', then delete the model's cache folder "
            "(cai-bootstrap models shows it) so it is converted again."
        )
    return "the weights or tokenizer files are broken or do not belong together: check the model folder."


def _round_trip(tok, where: str) -> None:
    ids = tok(ROUND_TRIP_TEXT, add_special_tokens=False).input_ids
    back = tok.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
    if back != ROUND_TRIP_TEXT:
        at = len(os.path.commonprefix([back, ROUND_TRIP_TEXT]))
        raise UserError(
            f"model canary failed for {where}: the tokenizer does not round-trip text "
            f"(first difference at character {at}: {ROUND_TRIP_TEXT[at : at + 12]!r} became {back[at : at + 12]!r})",
            "the tokenizer files are broken or do not belong to this model: check the model folder",
        )


def _known_ids(tok, embedded: str, where: str) -> None:
    import transformers

    ids = tok(IDS_TEXT, add_special_tokens=False).input_ids
    want = EMBEDDED_IDS[embedded]
    if ids != want:
        raise UserError(
            f"model canary failed for {where}: the tokenizer gives {len(ids)} token ids for a fixed string "
            f"where a correct conversion of embedded:{embedded} gives {len(want)} "
            f"(transformers {transformers.__version__} converts this GGUF tokenizer wrongly)",
            "pip install 'transformers>=5.18', then delete the model's cache folder "
            "(cai-bootstrap models shows it) so it is converted again",
        )


def answer_nll(model, tok) -> float:
    """Mean per-token NLL of NLL_ANSWER after its instruction, in the generation frame (the same ids
    the engines feed: [bos] + prompt + completion, no other special tokens)."""
    import torch

    prompt = tok(frame.prompt(NLL_INSTRUCTION), add_special_tokens=False).input_ids
    answer = tok(frame.completion(NLL_ANSWER), add_special_tokens=False).input_ids
    bos = [tok.bos_token_id] if tok.bos_token_id is not None else []
    ids = torch.tensor([bos + prompt + answer], device=next(model.parameters()).device)
    labels = ids.clone()
    labels[0, : len(bos) + len(prompt)] = -100
    with torch.inference_mode():
        loss = model(input_ids=ids, labels=labels).loss
    value = float(loss.float())
    return value if math.isfinite(value) else float("inf")
