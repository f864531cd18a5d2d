import json

import pytest
from rich.console import Console

from cai_bootstrap.records import ConstraintSpec, Instruction, PreferencePair, Response
from cai_bootstrap.steps import pairs
from cai_bootstrap.steps.critique import CritiqueRecord, RejectReason, RevisionStatus, Verdict
from cai_bootstrap.steps.judge import Preference
from cai_bootstrap.steps.pair_stats import format_stats, pair_stats, pairs_stats_from_dir
from cai_bootstrap.steps.pairs import DropReason, PairSettings
from cai_bootstrap.store import write_jsonl
from cai_bootstrap.tasks import frame


def _instruction(iid: str, n_constraints: int) -> Instruction:
    cons = [ConstraintSpec(id=f"c{k}", text=f"rule {k}") for k in range(n_constraints)]
    return Instruction(
        id=iid,
        stage=1,
        split="train",
        prompt=f"Task {iid}.",
        task="t",
        task_kind="k",
        topic="t",
        constraints=cons,
    )


def _r(rid, iid, text, passed, sample=0, **kw) -> Response:
    return Response(
        id=rid, instruction_id=iid, sample=sample, text=text, passed=passed, all_passed=all(passed), **kw
    )


INSTRUCTIONS = [_instruction("i1", 2), _instruction("i2", 0)]
RESPONSES = [
    _r("s0", "i1", "alpha beta gamma delta", [True, True], 0),
    _r("s1", "i1", "one two three four five six", [True, False], 1),
    _r("s2", "i1", "one  two three four five\nsix", [True, False], 2),  # same as s1 up to whitespace
    _r("s3", "i1", "   ", [False, False], 3),
    _r("r0", "i1", "one two three four five seven", [True, True], 1, origin="revision", parent_id="s1"),
    _r("a", "i2", "The sea is wide and blue and calm.", [], 0),
    _r("b", "i2", "Short.", [], 1),
    _r("c", "i2", "The sea is very wide and very blue and calm today friends.", [], 2),
]
QUALITY = {"alpha beta gamma delta": 0.0, "one two three four five seven": 0.2, "Short.": -1.0}
QUALITY |= {RESPONSES[5].text: 1.0, RESPONSES[7].text: 2.0}


def scripted_judge(items):
    """A judge the code really calls: margin = quality(x) - quality(y)."""
    scripted_judge.seen += [(x.id, y.id) for _, x, y in items]
    return [Preference(QUALITY[x.text] - QUALITY[y.text], "judge", "p-test") for _, x, y in items]


def _run(**kw):
    scripted_judge.seen = []
    return pairs.run(PairSettings(**kw), INSTRUCTIONS, RESPONSES, scripted_judge)


def test_filters_order_and_cap_on_known_records():
    out = _run(pairs_per_instruction=2, min_margin=0.5, max_length_ratio=3.0)
    got = {(p.chosen_id, p.rejected_id): p.reason for p in out.pairs}
    assert got == {
        ("r0", "s1"): "verifier 2/2 vs 1/2",
        ("s0", "s2"): "verifier 2/2 vs 1/2",
        ("c", "a"): "judge margin 1.000 (p-test)",
    }
    reasons = sorted((d.a_id, d.b_id, d.reason) for d in out.dropped)
    empty = {(a, b) for a, b, why in reasons if why is DropReason.EMPTY}
    assert empty == {("s0", "s3"), ("s1", "s3"), ("s2", "s3"), ("s3", "r0")}
    by_reason = out.stats.dropped_by_reason
    assert by_reason == {
        "empty": 4,
        "identical": 1,
        "weak_margin": 1,
        "length_ratio": 2,
        "per_instruction_cap": 2,
    }
    assert out.stats.candidates == 13 and out.stats.pairs == 3
    assert ("s1", "s2", DropReason.IDENTICAL) in reasons
    assert ("s0", "r0", DropReason.WEAK_MARGIN) in reasons
    # only verifier ties reach the judge, once each
    assert sorted(scripted_judge.seen) == [("a", "b"), ("a", "c"), ("b", "c"), ("s0", "r0")]
    verifier = next(p for p in out.pairs if p.chosen_id == "r0")
    assert verifier.margin == pytest.approx(0.5) and verifier.chosen_origin == "revision"


def test_pairs_use_the_generation_frame_and_load_with_datasets(tmp_path):
    out = _run()
    pair = next(p for p in out.pairs if p.chosen_id == "c")
    assert pair.prompt == frame.prompt("Task i2.")
    assert pair.chosen == frame.completion(RESPONSES[7].text)
    assert pair.rejected == frame.completion(RESPONSES[5].text)
    path = tmp_path / "records.jsonl"
    write_jsonl(path, out.pairs)
    from datasets import Dataset

    ds = Dataset.from_json(str(path))
    assert len(ds) == len(out.pairs)
    assert {"prompt", "chosen", "rejected"} <= set(ds.column_names)
    assert ds[0]["prompt"].endswith("Response:")


def test_thresholds_change_the_outcome():
    loose = _run(pairs_per_instruction=10, min_margin=0.1, max_length_ratio=None)
    assert loose.stats.dropped_by_reason == {"empty": 4, "identical": 1}
    assert loose.stats.pairs == 8
    strict_sim = _run(max_jaccard=0.7)  # s1 vs r0 share 5 of 7 words: 0.71
    near = [d for d in strict_sim.dropped if d.reason is DropReason.NEAR_IDENTICAL]
    assert {(d.a_id, d.b_id) for d in near} >= {("s1", "r0"), ("s2", "r0"), ("a", "c")}
    keep_identical = _run(drop_identical=False, pairs_per_instruction=10, max_length_ratio=None)
    assert "identical" not in keep_identical.stats.dropped_by_reason
    # s1 and s2 are a verifier tie with the same text: Jaccard 1.0 still drops them
    assert any(
        d.reason is DropReason.NEAR_IDENTICAL and {d.a_id, d.b_id} == {"s1", "s2"}
        for d in keep_identical.dropped
    )


def test_without_a_judge_ties_are_dropped_not_guessed():
    out = pairs.run(PairSettings(pairs_per_instruction=10), INSTRUCTIONS, RESPONSES, None)
    assert all(p.reason.startswith("verifier") for p in out.pairs)
    assert out.stats.dropped_by_reason["tie_no_judge"] == 4


def test_judge_budget_caps_judged_ties():
    out = _run(max_judged_per_instruction=1)
    assert out.stats.dropped_by_reason["judge_budget"] == 2  # i2 has 3 ties, 1 judged
    assert len(scripted_judge.seen) == 2


def test_sft_examples_pick_the_best_passing_answer():
    ex = {e.instruction_id: e for e in pairs.sft_examples(INSTRUCTIONS, RESPONSES)}
    assert ex["i1"].completion == frame.completion("one two three four five seven")  # the revision
    assert ex["i2"].completion == frame.completion(RESPONSES[5].text)  # first sample
    assert ex["i1"].prompt == frame.prompt("Task i1.")
    none = pairs.sft_examples([INSTRUCTIONS[0]], [RESPONSES[1]])
    assert none == []


def test_sft_from_chosen_fills_only_instructions_without_a_passing_answer():
    failing = RESPONSES[1]
    pair = PreferencePair(
        id="p",
        prompt="P",
        chosen=frame.completion(failing.text),
        rejected="x",
        instruction_id=failing.instruction_id,
        chosen_id=failing.id,
        rejected_id="other",
        reason="judge margin 1",
    )
    got = pairs.sft_examples([INSTRUCTIONS[0]], [failing], [pair])
    assert [e.completion for e in got] == [frame.completion(failing.text)]
    # Where a passing answer exists it wins over the chosen one.
    ex = {e.instruction_id: e for e in pairs.sft_examples(INSTRUCTIONS, RESPONSES, [pair])}
    assert ex["i1"].completion == frame.completion("one two three four five seven")


def _pair(n, chosen, rejected, c_origin="sample", r_origin="sample", reason="judge margin 1", margin=1.0):
    return PreferencePair(
        id=f"p{n}",
        prompt="P",
        chosen=frame.completion(chosen),
        rejected=frame.completion(rejected),
        instruction_id="i",
        chosen_id=f"c{n}",
        rejected_id=f"r{n}",
        reason=reason,
        margin=margin,
        chosen_origin=c_origin,
        rejected_origin=r_origin,
    )


def _critique(n, reason=None, raw="x"):
    status = RevisionStatus.REJECTED if reason else RevisionStatus.REVISED
    return CritiqueRecord(
        id=f"k{n}",
        response_id=f"r{n}",
        instruction_id="i",
        round=1,
        principle_id="no-padding" if n % 2 else "no-fabrication",
        critique="c",
        verdict=Verdict.PROBLEM,
        revision_raw=raw,
        status=status,
        reject_reason=reason,
    )


def _hand_made():
    final = [_pair(n, f"answer {n} is good", f"answer {n} bad", margin=float(n)) for n in range(7)]
    final.append(_pair(7, "same words here", "same  words here"))  # identical in the final set
    final.append(_pair(8, "revised text wins", "old", c_origin="revision"))
    final.append(_pair(9, "sample wins", "revised text loses", r_origin="revision"))
    final.append(
        _pair(10, "sample wins again", "another revision", r_origin="revision", reason="verifier 1/1 vs 0/1")
    )
    dropped = [pairs._drop(_r("x", "i", "t", []), _r("y", "i", "t", []), DropReason.IDENTICAL)] * 3
    critiques = [_critique(0, RejectReason.META_COMMENTARY), _critique(1), _critique(2), _critique(3)]
    critiques.append(_critique(4, RejectReason.NO_VERDICT, raw=None))  # no revision was attempted
    return final, dropped, critiques


def test_pair_stats_on_hand_made_records():
    final, dropped, critiques = _hand_made()
    s = pair_stats(final, dropped, critiques)
    assert (s.pairs, s.candidates, s.identical_in_final) == (11, 14, 1)
    assert s.identical_rate == pytest.approx(4 / 14)
    assert s.revision_pairs == 3 and s.revised_chosen_rate == pytest.approx(1 / 3)
    assert s.order_sources == {"judge": 10, "verifier": 1}
    assert s.margin_quantiles["judge"]["max"] == 6.0 and s.margin_quantiles["judge"]["min"] == 0.0
    assert s.margin_quantiles["judge"]["p50"] == pytest.approx(1.5)  # of 0,1,1,1,1,2,3,4,5,6
    assert s.meta_commentary_rate == pytest.approx(1 / 4)
    assert s.principle_usage == {"no-fabrication": 3, "no-padding": 2}
    assert s.funnel[0].filter == "empty" and s.funnel[1].remaining == 11
    assert len(s.warnings) == 2
    assert "identical" in s.warnings[0] and "revisions win only 33%" in s.warnings[1]
    json.loads(s.model_dump_json())  # JSON-serialisable


def test_no_warnings_when_revisions_win_and_nothing_is_identical():
    s = _run().stats
    assert s.identical_in_final == 0 and s.revised_chosen_rate == 1.0
    assert s.warnings == []


def test_pairs_stats_from_dir_reads_the_step_folders(tmp_path):
    final, dropped, critiques = _hand_made()
    folder = tmp_path / "round1" / "pairs"
    write_jsonl(folder / "records.jsonl", final)
    write_jsonl(folder / "dropped.jsonl", dropped)
    write_jsonl(tmp_path / "round1" / "critique" / "critiques.jsonl", critiques)
    s = pairs_stats_from_dir(folder)
    assert s == pair_stats(final, dropped, critiques)
    console = Console(record=True, width=140)
    console.print(format_stats(s))
    text = console.export_text()
    assert "meta-commentary rate" in text and "25.0%" in text and "warning" in text


def test_an_answer_cut_off_at_the_token_limit_is_never_chosen_nor_an_sft_target():
    ins = [_instruction("i1", 1)]
    cut = _r("cut", "i1", "one two three four five six seven", [True], 0, truncated=True)
    done = _r("done", "i1", "one two three", [True], 1)
    bad = _r("bad", "i1", "uno dos tres cuatro cinco seis", [False], 2)
    scripted_judge.seen = []
    out = pairs.run(PairSettings(pairs_per_instruction=5), ins, [cut, done, bad], None)
    kept = {(p.chosen_id, p.rejected_id) for p in out.pairs}
    assert kept == {("done", "bad")}
    truncated = [d for d in out.dropped if d.reason is pairs.DropReason.TRUNCATED_CHOSEN]
    assert len(truncated) == 1  # cut > bad by the verifier, but cut is unfinished
    assert [e.completion for e in pairs.sft_examples(ins, [cut, bad])] == []
    assert [e.completion for e in pairs.sft_examples(ins, [cut, done])] == [frame.completion("one two three")]
