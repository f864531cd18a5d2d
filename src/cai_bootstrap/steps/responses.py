"""Best-of-k answers: k sampled answers per training instruction in the instruction frame, each
checked by the constraint library (strict), so later steps can pair passing against failing answers."""

from __future__ import annotations

from functools import partial

from .. import health
from ..engines import Engine, Sampling
from ..records import Instruction, Response
from ..store import Step, run_chunked
from ..tasks import frame
from .critique import verify


def response_id(instruction_id: str, sample: int) -> str:
    return f"{instruction_id}-s{sample}"


def run(
    cfg, instructions: list[Instruction], engine: Engine | None, step: Step, seed: int, pool=None
) -> list[Response]:
    """k answers per instruction, resumable in chunks of cfg.chunk instructions. With an `ActorPool`
    (engines/ray.py, model.ray.workers > 0) the chunks go to Ray actors and `engine` is unused."""
    ids = partial(response_ids, cfg.k)
    if pool is None:
        out = run_chunked(
            step, instructions, cfg.chunk, Response, partial(answer_chunk, cfg, seed, engine=engine), ids
        )
    else:
        from ..engines.ray import run_chunked_ray

        out = run_chunked_ray(
            step, instructions, cfg.chunk, Response, partial(answer_chunk, cfg, seed), ids, pool
        )
    health.check_answers(out, cfg.max_truncated_fraction, cfg.max_same_answer_fraction, "responses")
    return out


def response_ids(k: int, ins: Instruction) -> list[str]:
    return [response_id(ins.id, j) for j in range(k)]


def answer_chunk(cfg, seed: int, index: int, chunk: list[Instruction], engine: Engine) -> list[Response]:
    """Chunk `index`'s k answers per instruction, sampled with a seed of its own (so the same on a
    resumed run, and in whichever process or actor answers it), each checked by the verifiers."""
    sampling = Sampling(
        n=cfg.k,
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        max_new_tokens=cfg.max_new_tokens,
        stop=frame.STOP,
        seed=seed * 100_003 + index,
    )
    texts = engine.generate([frame.prompt(i.prompt) for i in chunk], sampling)
    out = []
    for ins, samples in zip(chunk, texts, strict=True):
        for j, raw in enumerate(samples):
            text = frame.clean(raw)
            passed = verify(ins, text)
            out.append(
                Response(
                    id=response_id(ins.id, j),
                    instruction_id=ins.id,
                    sample=j,
                    text=text,
                    passed=passed,
                    all_passed=bool(passed) and all(passed),
                    truncated=raw.finish_reason == "length",  # the engine says why it ended
                )
            )
    return out


def pass_rates(instructions: list[Instruction], responses: list[Response]) -> dict:
    """Share of answers that pass all constraints, and share of instructions with at least one."""
    by_ins: dict[str, list[bool]] = {}
    for r in responses:
        by_ins.setdefault(r.instruction_id, []).append(r.all_passed)
    answers = [p for v in by_ins.values() for p in v]
    return {
        "answers": len(answers),
        "answer_pass_rate": sum(answers) / len(answers) if answers else 0.0,
        "instructions_with_a_pass": sum(any(v) for v in by_ins.values()),
        "instructions": len(instructions),
    }
