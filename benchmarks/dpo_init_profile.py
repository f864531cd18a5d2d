"""Where DPOTrainer's construction spends its time (TRL precomputes the reference log-probs there).

    PYTHONPATH=src python3 benchmarks/dpo_init_profile.py --model-dir /tmp/m05 --pairs 64

cProfile of build_dpo_trainer on a random model folder (benchmarks/random_model.py), twice in one
process: a fixed first-use cost (kernel compilation or autotuning) shows as a first build much slower
than the second.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import random
import time
from pathlib import Path

from transformers import AutoTokenizer

from cai_bootstrap.records import PreferencePair
from cai_bootstrap.training.config import DPOSettings, LoraSettings
from cai_bootstrap.training.dpo import build_dpo_trainer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model-dir", type=Path, required=True)
    ap.add_argument("--pairs", type=int, default=64)
    args = ap.parse_args()
    tok = AutoTokenizer.from_pretrained(args.model_dir)
    rng = random.Random(0)
    pairs = []
    for i in range(args.pairs):
        r = [rng.randrange(151000) for _ in range(768)]
        p, c, d = tok.decode(r[:256]), tok.decode(r[256:512]), tok.decode(r[512:])
        pairs.append(
            PreferencePair(
                id=f"p{i}", prompt=p, chosen=c, rejected=d, instruction_id=f"i{i}",
                chosen_id=f"c{i}", rejected_id=f"r{i}", reason="benchmark",
            )
        )  # fmt: skip
    cfg = DPOSettings(batch_size=8, max_length=1024, epochs=1, eval_fraction=0.0, bf16=True, save_steps=1000)
    for attempt in (1, 2):
        prof = cProfile.Profile()
        t0 = time.time()
        prof.enable()
        trainer = build_dpo_trainer(
            cfg, LoraSettings(), pairs, args.model_dir, None, Path(f"/tmp/dpo-prof{attempt}"), "bfloat16"
        )
        prof.disable()
        print(f"build {attempt}: {time.time() - t0:.1f} s", flush=True)
        pstats.Stats(prof).sort_stats("cumulative").print_stats(18)
        del trainer


if __name__ == "__main__":
    main()
