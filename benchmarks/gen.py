"""Generation throughput: plain `generate` (dynamic cache), our HFEngine, and static cache + compile.

Every path gets the same B prompts of P random tokens and must produce exactly T new tokens
(no EOS exists in the config, so no row stops early). Greedy outputs of the fast paths are compared
with plain generate's on the same inputs, row by row.
"""

from __future__ import annotations

import traceback

import torch
from shapes import PAD, Counts, decode_bound_tps, ids_to_text, random_ids
from timer import median, repeat, timed


def plain_generate(model, ids: torch.Tensor, new: int, **extra) -> torch.Tensor:
    out = model.generate(
        input_ids=ids,
        attention_mask=torch.ones_like(ids),
        max_new_tokens=new,
        min_new_tokens=new,
        do_sample=False,
        pad_token_id=PAD,
        **extra,
    )
    return out[:, ids.shape[1] :]


def compare(tok, reference: torch.Tensor, other: list[str]) -> dict:
    """Rows whose text equals the reference's decoded text, and for each other row the index of the
    first differing word (one word per token, special tokens dropped as the engine drops them)."""
    ref_texts = tok.batch_decode(reference, skip_special_tokens=True)
    first_diff = []
    for ref, got in zip(ref_texts, other, strict=True):
        if ref == got:
            continue
        rw, gw = ref.split(" "), got.split(" ")
        first_diff.append(
            next((i for i, (x, y) in enumerate(zip(rw, gw, strict=False)) if x != y), min(len(rw), len(gw)))
        )
    return {"rows": len(ref_texts), "rows_equal": len(ref_texts) - len(first_diff), "first_diff": first_diff}


def greedy_gaps(model, ids: torch.Tensor, new_ids: torch.Tensor, rows: int = 8) -> dict:
    """Teacher-forced check of a greedy path: one plain forward over prompt + its output, and at each
    new position the gap between the top logit and the logit of the token the path chose. A right
    greedy decoder has gaps of 0 (or within bf16 noise where near-ties flip); a wrong cache or wrong
    positions give gaps like a random token's (reported as random_token_gap)."""
    full = torch.cat([ids[:rows], new_ids[:rows].to(ids.device)], dim=1)
    new = new_ids.shape[1]
    with torch.inference_mode():
        logits = model(input_ids=full, logits_to_keep=new + 1).logits[:, :-1].float()
    top = logits.max(-1).values
    gap = top - logits.gather(-1, full[:, -new:, None])[..., 0]
    return {
        "rows": full.shape[0],
        "frac_exact_argmax": float((gap == 0).float().mean()),
        "frac_gap_le_0.125": float((gap <= 0.125).float().mean()),
        "max_gap": float(gap.max()),
        "random_token_gap": float((top[..., None] - logits).mean()),
    }


def rates(c: Counts, batch: int, prompt: int, new: int, t_total: float, t_prefill: float, bw: float) -> dict:
    bound = decode_bound_tps(c, batch, prompt, new, bw)
    e2e = batch * new / t_total
    decode = batch * (new - 1) / max(t_total - t_prefill, 1e-9)
    return {
        "seconds": t_total,
        "tokens_per_s": e2e,
        "decode_tokens_per_s": decode,
        "bound_tokens_per_s": bound,
        "pct_bound_e2e": 100 * e2e / bound,
        "pct_bound_decode": 100 * decode / bound,
        "ms_per_step": 1e3 * (t_total - t_prefill) / (new - 1),
        "bound_ms_per_step": 1e3 * batch / bound,
    }


def bench_plain(model, tok, ids, new: int, reps: int) -> tuple[dict, torch.Tensor]:
    t_pre, _ = repeat(lambda: plain_generate(model, ids, 1), warmup=1, reps=3)
    times, outs = repeat(lambda: plain_generate(model, ids, new), warmup=1, reps=reps)
    again = compare(tok, outs[0], tok.batch_decode(outs[-1], skip_special_tokens=True))
    check = greedy_gaps(model, ids, outs[0])
    return {"times": times, "prefill_times": t_pre, "repeat_equal": again, "greedy_check": check}, outs[0]


def bench_engine(model, tok, ids, new: int, reps: int, reference) -> dict:
    from cai_bootstrap.engines import Sampling
    from cai_bootstrap.engines.hf import HFEngine
    from cai_bootstrap.tasks.frame import STOP

    engine = HFEngine(model, tok, batch_size=ids.shape[0])
    texts = [ids_to_text(r) for r in ids.tolist()]
    if engine.input_ids_for(texts[0]) != ids[0].tolist():
        raise RuntimeError("word tokenizer does not reproduce the prompt ids")
    sampling = Sampling(max_new_tokens=new, stop=list(STOP))
    first_s, _ = timed(lambda: engine.generate(texts, sampling))  # includes stop-string table build
    times, outs = repeat(lambda: engine.generate(texts, sampling), warmup=0, reps=reps)
    got = [o[0] for o in outs[0]]
    words = sum(len(g.split(" ")) for g in got)
    # Rows whose text re-tokenises to exactly `new` ids (no special or repurposed id was generated).
    retok = [r for r in tok(got[:16], add_special_tokens=False).input_ids if len(r) == new][:8]
    check = greedy_gaps(model, ids, torch.tensor(retok), rows=len(retok)) if retok else {"rows": 0}
    return {
        "times": times,
        "first_call_s": first_s,
        "words": words,
        "vs_plain": compare(tok, reference, got),
        "greedy_check": check,
    }


def bench_plain_stop(model, tok, ids, new: int, reps: int, reference) -> dict:
    """Plain generate plus the frame's stop strings: the one generate argument our engine adds."""
    from cai_bootstrap.tasks.frame import STOP

    def run():
        return plain_generate(model, ids, new, stop_strings=list(STOP), tokenizer=tok)

    times, outs = repeat(run, warmup=1, reps=reps)
    return {
        "times": times,
        "vs_plain": compare(tok, reference, tok.batch_decode(outs[0], skip_special_tokens=True)),
    }


def bench_static(model, tok, ids, new: int, reps: int, reference) -> dict:
    first_s, out = timed(lambda: plain_generate(model, ids, new, cache_implementation="static"))
    times, outs = repeat(
        lambda: plain_generate(model, ids, new, cache_implementation="static"), warmup=0, reps=reps
    )
    return {
        "times": times,
        "first_call_s": first_s,
        "compile_s_est": first_s - median(times),
        "compiled": getattr(model, "_compiled_call", None) is not None,
        "vs_plain": compare(tok, reference, tok.batch_decode(outs[0], skip_special_tokens=True)),
        "greedy_check": greedy_gaps(model, ids, outs[0]),
    }


def bench_graph(model, tok, ids, new: int, reps: int, reference) -> dict:
    from graphloop import GraphDecoder

    dec = GraphDecoder(model, ids.shape[0], ids.shape[1] + new)
    first_s, _ = timed(lambda: dec.generate(ids, new))
    times, outs = repeat(lambda: dec.generate(ids, new), warmup=0, reps=reps)
    return {
        "times": times,
        "first_call_s": first_s,
        "compile_s_est": first_s - median(times),
        "vs_plain": compare(tok, reference, tok.batch_decode(outs[0], skip_special_tokens=True)),
        "greedy_check": greedy_gaps(model, ids, outs[0]),
    }


def bench_ours(model, tok, ids, new: int, reps: int, reference, mode: str) -> dict:
    """cai_bootstrap.engines.fastdecode: static slot cache, one CUDA graph per 128-slot cache bucket,
    grouped-query heads folded onto their K/V head. mode: greedy, sample (temperature 1, top_p 1:
    Gumbel-max in the graph) or stop (greedy plus the frame's stop strings checked every 16 steps)."""
    from cai_bootstrap.engines.fastdecode import FastDecoder, TextStop
    from cai_bootstrap.engines.hf import NucleusSampler
    from cai_bootstrap.tasks.frame import STOP

    dec = FastDecoder(model)
    mask = torch.ones_like(ids)
    sampler = NucleusSampler(1.0, 1.0) if mode == "sample" else None
    stop = TextStop(tok, list(STOP)) if mode == "stop" else None

    def run(n=new):
        return dec.generate_ids(ids, mask, n, pad_id=PAD, sampler=sampler, stop=stop)

    first_s, _ = timed(run)
    t_pre, _ = repeat(lambda: run(1), warmup=1, reps=3)
    times, outs = repeat(run, warmup=0, reps=reps)
    res = {
        "times": times,
        "first_call_s": first_s,
        "capture_s_est": first_s - median(times),
        "graphs": len(dec.graphs),
        "own_prefill_times": t_pre,
        "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30,
        "vs_plain": compare(tok, reference, tok.batch_decode(outs[0], skip_special_tokens=True)),
    }
    if mode != "sample":
        res["greedy_check"] = greedy_gaps(model, ids, outs[0])
    return res


def _path(fn, need_s: float, deadline, rate_of) -> dict:
    """One optional path: skipped when time is short; an error is recorded (and printed), not raised,
    so the other paths of the same batch keep their numbers."""
    if not deadline.allows(need_s):
        return {"skipped": f"time: {deadline.left():.0f}s left, needs ~{need_s:.0f}s"}
    try:
        r = fn()
    except Exception as e:  # recorded in the results and printed; the benchmark goes on
        traceback.print_exc()
        torch.cuda.empty_cache()
        return {"error": f"{type(e).__name__}: {e}"[:2000]}
    return r | rate_of(median(r["times"]))


def run_generation(model, tok, c: Counts, batch: int, prompt: int, new: int, paths, bw, deadline) -> dict:
    """Plain generate, then each requested path at one batch size."""
    ids = random_ids(batch, prompt, seed=batch).cuda()
    res: dict = {"batch": batch, "prompt": prompt, "new": new}
    plain, ref = bench_plain(model, tok, ids, new, reps=3)
    t_pre = median(plain["prefill_times"])
    res["plain"] = plain | rates(c, batch, prompt, new, median(plain["times"]), t_pre, bw)
    est = median(plain["times"])
    todo = {
        "stop": ("plain_stop_strings", lambda: bench_plain_stop(model, tok, ids, new, 3, ref), 5 * est),
        "engine": ("engine", lambda: bench_engine(model, tok, ids, new, 3, ref), 5 * est + 30),
        "static": ("static_compile", lambda: bench_static(model, tok, ids, new, 2, ref), 3 * est + 150),
        "graph": ("graph_loop", lambda: bench_graph(model, tok, ids, new, 3, ref), 2 * est + 120),
    }
    for mode in ("greedy", "sample", "stop"):
        key = "ours" if mode == "greedy" else f"ours_{mode}"
        todo[key] = (key, lambda mode=mode: bench_ours(model, tok, ids, new, 3, ref, mode), est + 60)
    for key, (name, fn, need) in todo.items():
        if key in paths:
            print(f"-- {name} b{batch}", flush=True)
            res[name] = _path(fn, need, deadline, lambda t: rates(c, batch, prompt, new, t, t_pre, bw))
    return res
