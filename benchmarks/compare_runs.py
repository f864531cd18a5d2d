"""Compare what two runs of the same recipe wrote (e.g. model.engine hf against openai): the files of
every step (shards, checkpoints and the engine's request cache aside), the keys of stage.json, the
report's headings and table row labels. Prints the differences; exit 1 when there are any.

    python benchmarks/compare_runs.py RUN_DIR_A RUN_DIR_B
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

SKIP = ("shards", "engine_cache", "judge_calibration")


def files(run: Path) -> set[str]:
    out = set()
    for p in run.rglob("*"):
        rel = p.relative_to(run)
        if (
            p.is_file()
            and not any(s in rel.parts for s in SKIP)
            and not any(x.startswith("checkpoint") for x in rel.parts)
        ):
            out.add(str(rel))
    return out


def keys(obj, prefix: str = "") -> set[str]:
    """Every key path of a JSON value (list items share one path)."""
    if isinstance(obj, dict):
        return {prefix + k for k in obj} | {x for k, v in obj.items() for x in keys(v, prefix + k + ".")}
    if isinstance(obj, list):
        return {x for v in obj for x in keys(v, prefix + "[].")}
    return set()


def report_shape(run: Path) -> list[str]:
    """Headings and the first cell of each table row: the report's structure without its numbers."""
    lines = (run / "report.md").read_text(encoding="utf-8").replace(run.name, "RUN").splitlines()
    return [re.sub(r"\d+(\.\d+)?", "#", ln.split("|")[1].strip()) if ln.startswith("|") else ln
            for ln in lines if ln.startswith(("#", "|"))]  # fmt: skip


def main(a: Path, b: Path) -> int:
    diffs = []
    fa, fb = files(a), files(b)
    diffs += [f"only in {a.name}: {f}" for f in sorted(fa - fb)] + [
        f"only in {b.name}: {f}" for f in sorted(fb - fa)
    ]
    ka = keys(json.loads((a / "stage1" / "stage.json").read_text()))
    kb = keys(json.loads((b / "stage1" / "stage.json").read_text()))
    diffs += [f"stage.json key only in {a.name}: {k}" for k in sorted(ka - kb)]
    diffs += [f"stage.json key only in {b.name}: {k}" for k in sorted(kb - ka)]
    ra, rb = report_shape(a), report_shape(b)
    if ra != rb:
        diffs += [
            f"report.md: {x!r} (in {a.name}) != {y!r} (in {b.name})"
            for x, y in zip(ra, rb, strict=False)
            if x != y
        ]
        diffs += [f"report.md: {len(ra)} vs {len(rb)} headings/rows"] if len(ra) != len(rb) else []
    for d in diffs:
        print(d)
    print(f"{len(fa)} files, {len(ka)} stage.json keys, {len(ra)} report headings/rows compared: "
          + ("same structure" if not diffs else f"{len(diffs)} differences"))  # fmt: skip
    return 1 if diffs else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_a", type=Path, help="a run folder, e.g. runs/quickstart-hf")
    parser.add_argument("run_b", type=Path, help="the other run folder of the same recipe")
    ns = parser.parse_args()
    for run in (ns.run_a, ns.run_b):
        if not run.is_dir():
            parser.error(f"{run} is not a folder")
    sys.exit(main(ns.run_a, ns.run_b))
