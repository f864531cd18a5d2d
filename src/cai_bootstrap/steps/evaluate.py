"""Held-out evaluation: greedy answers in the instruction frame, checked strict and loose.

Every compared model is evaluated with the same frame, precision, decoding and items; the caller
loads one model at a time and frees it after (models.free).
"""

from __future__ import annotations

from ..engines import Engine, Sampling
from ..records import EvalItem, Instruction
from ..store import Step, run_chunked
from ..tasks import frame
from ..tasks.constraints import check_instruction

CHUNK = 16


def run(
    instructions: list[Instruction], engine: Engine, model_tag: str, max_new_tokens: int, step: Step
) -> list[EvalItem]:
    """One EvalItem per instruction, resumable in chunks."""

    def work(_index: int, chunk: list[Instruction]) -> list[EvalItem]:
        sampling = Sampling(n=1, temperature=0.0, max_new_tokens=max_new_tokens, stop=frame.STOP)
        texts = engine.generate([frame.prompt(i.prompt) for i in chunk], sampling)
        out = []
        for ins, (raw,) in zip(chunk, texts, strict=True):
            text = frame.clean(raw)
            strict, loose = check_instruction(ins, text), check_instruction(ins, text, loose=True)
            out.append(
                EvalItem(
                    id=f"{model_tag}:{ins.id}",
                    model_tag=model_tag,
                    instruction_id=ins.id,
                    prompt=ins.prompt,
                    response=text,
                    constraint_ids=[c.id for c in ins.constraints],
                    passed_strict=strict,
                    passed_loose=loose,
                    all_strict=all(strict),
                    all_loose=all(loose),
                )
            )
        return out

    return run_chunked(step, instructions, CHUNK, EvalItem, work, lambda i: [f"{model_tag}:{i.id}"])


def accuracies(items: list[EvalItem]) -> dict[str, float]:
    """IFEval's four numbers: prompt- and instruction-level accuracy, strict and loose."""
    n = len(items)
    inst_s = [p for it in items for p in it.passed_strict]
    inst_l = [p for it in items for p in it.passed_loose]
    return {
        "prompt_strict": sum(it.all_strict for it in items) / n if n else 0.0,
        "prompt_loose": sum(it.all_loose for it in items) / n if n else 0.0,
        "instruction_strict": sum(inst_s) / len(inst_s) if inst_s else 0.0,
        "instruction_loose": sum(inst_l) / len(inst_l) if inst_l else 0.0,
        "n_prompts": n,
        "n_instructions": len(inst_s),
    }


def paired(base: list[EvalItem], trained: list[EvalItem], metric: str):
    """Paired outcomes on the same items: overall (prompt-level or per-instruction) and per constraint type."""
    b_by = {it.instruction_id: it for it in base}
    t_by = {it.instruction_id: it for it in trained}
    common = [k for k in b_by if k in t_by]
    loose = metric.endswith("loose")
    field = "passed_loose" if loose else "passed_strict"
    if metric.startswith("prompt"):
        overall_b = [all(getattr(b_by[k], field)) for k in common]
        overall_t = [all(getattr(t_by[k], field)) for k in common]
    else:
        overall_b = [p for k in common for p in getattr(b_by[k], field)]
        overall_t = [p for k in common for p in getattr(t_by[k], field)]
    by_type: dict[str, tuple[list[bool], list[bool]]] = {}
    for k in common:
        for cid, pb, pt in zip(
            b_by[k].constraint_ids, getattr(b_by[k], field), getattr(t_by[k], field), strict=True
        ):
            lists = by_type.setdefault(cid, ([], []))
            lists[0].append(pb)
            lists[1].append(pt)
    return overall_b, overall_t, by_type
