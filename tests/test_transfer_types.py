"""The transfer set (issue 26, item 3): our own constraint types, and the leave-types-out split."""

import random
from itertools import combinations

import pytest

from cai_bootstrap.config import InstructionSettings
from cai_bootstrap.errors import StepFailed, UserError
from cai_bootstrap.records import BaseTask, ConstraintSpec
from cai_bootstrap.steps import instructions as instructions_step
from cai_bootstrap.tasks import typegroups
from cai_bootstrap.tasks.composer import compose, constraint_types_default, load_base_tasks
from cai_bootstrap.tasks.constraints import CHECKERS, check
from cai_bootstrap.tasks.constraints.compat import specs_compatible, types_compatible
from cai_bootstrap.tasks.phrasings import PHRASINGS, sample_constraint
from transfer_cases import TRANSFER_CASES

TASK = "Explain how bees make honey in the summer garden."
NEW = list(typegroups.TRANSFER_TYPES)


def test_at_least_25_new_types_each_checked_worded_and_tested():
    assert len(NEW) >= 25 and len(set(NEW)) == len(NEW)
    outcomes = {(iid, expected) for iid, _, _, expected in TRANSFER_CASES}
    for iid in NEW:
        assert iid.startswith("cai:") and iid in CHECKERS and iid in PHRASINGS, iid
        assert (iid, True) in outcomes and (iid, False) in outcomes, iid


@pytest.mark.parametrize(("iid", "kwargs", "response", "expected"), TRANSFER_CASES)
def test_cases_strict_and_with_trailing_whitespace(iid, kwargs, response, expected):
    assert check(iid, kwargs, response) is expected
    if expected:  # trailing spaces and newlines never turn a pass into a fail
        assert check(iid, kwargs, response + "  \n\t\n")


@pytest.mark.parametrize("iid", NEW)
def test_edge_texts_never_raise_and_empty_follows_nothing(iid):
    kwargs = next(k for i, k, _, _ in TRANSFER_CASES if i == iid)
    fn = CHECKERS[iid].fn
    for text in ["", " \n\t", "\u200b", "\U0001f41d\U0001f36f", "\u00e9t\u00e9 \u00e0 Z\u00fcrich", "?" * 50]:
        assert fn(text, **kwargs) in (True, False)
    assert fn("", **kwargs) is False
    assert check(iid, kwargs, "   \n") is False and check(iid, kwargs, "", loose=True) is False


def _spelled(k):
    return "-".join(k["spell_word"])


# A response built to meet the sampled arguments, one per new type.
BUILDERS = {
    "cai:no_letter": lambda k: "A calm bee hums.",
    "cai:max_chars": lambda k: "Bees make honey.",
    "cai:ascii_only": lambda k: "Bees make honey.",
    "cai:max_word_length": lambda k: "Bees make honey.",
    "cai:exclaim_end": lambda k: "Bees make honey!",
    "cai:sentences_capitalized": lambda k: "Bees fly. They make honey.",
    "cai:alliteration": lambda k: " ".join([k["letter"] + "ees"] * k["min_words"]),
    "cai:exact_sentences": lambda k: " ".join(["Bees fly."] * k["num_sentences"]),
    "cai:sentence_max_words": lambda k: "Bees fly. They hum.",
    "cai:max_word_repeats": lambda k: "Bees make honey.",
    "cai:exact_commas": lambda k: "Bees" + ", bees" * k["num_commas"] + ".",
    "cai:question_count": lambda k: " ".join(["Why?"] * k["num_questions"]),
    "cai:line_count": lambda k: "\n".join(["Bees fly."] * k["num_lines"]),
    "cai:digit_numbers": lambda k: " ".join(str(i) for i in range(k["min_numbers"])),
    "cai:keyword_first_sentence": lambda k: f"The {k['keyword']} is here. Bees fly.",
    "cai:keyword_last_sentence": lambda k: f"Bees fly. The {k['keyword']} is here.",
    "cai:keyword_order": lambda k: f"{k['first']} then {k['second']}.",
    "cai:nth_word": lambda k: " ".join(["bee"] * (k["position"] - 1) + [k["word"]]),
    "cai:same_first_last_word": lambda k: "Bees make honey, busy bees.",
    "cai:acrostic": lambda k: "\n".join(f"{c}ees fly." for c in k["letters"]),
    "cai:labeled_lines": lambda k: "\n".join(f"{x}: bees." for x in k["labels"]),
    "cai:markdown_headings": lambda k: "\n".join(["# Bees\nThey fly."] * k["num_headings"]),
    "cai:parenthetical": lambda k: "Bees (mostly) fly.",
    "cai:quoted_phrases": lambda k: " ".join(['"bees"'] * k["num_quotes"]),
    "cai:step_lines": lambda k: "\n".join(f"Step {i}: fly." for i in range(1, k["num_steps"] + 1)),
    "cai:keyword_caps": lambda k: f"The {k['keyword'].upper()} hums.",
    "cai:spelled_out": lambda k: f"It is {_spelled(k)}.",
    "cai:bracketed_keyword": lambda k: f"See [{k['keyword']}].",
    "cai:same_first_last_sentence": lambda k: "Bees fly. They hum. Bees fly.",
    "cai:either_keyword": lambda k: f"Only {k['keywords'][0]}.",
}


@pytest.mark.parametrize("type_id", NEW)
def test_sampled_arguments_are_satisfiable_and_worded_per_split(type_id):
    rng = random.Random(type_id)
    for _ in range(20):
        split = rng.choice(["train", "heldout"])
        spec = sample_constraint(rng, type_id, split, task=TASK)
        response = BUILDERS[type_id](spec.kwargs)
        assert check(spec.id, spec.kwargs, response), (spec, response)
    assert not set(PHRASINGS[type_id].train) & set(PHRASINGS[type_id].heldout)


def test_composed_transfer_constraints_are_pairwise_compatible():
    tasks = load_base_tasks("train")
    types = [*constraint_types_default(), *NEW]
    out = compose(random.Random(3), tasks, 400, "train", types, min_constraints=2, max_constraints=3)
    for inst in out:
        for a, b in combinations(inst.constraints, 2):
            assert specs_compatible(a, b), (a.id, b.id)
    assert {c.id for i in out for c in i.constraints} >= set(NEW)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("cai:exact_commas", "punctuation:no_comma"),
        ("cai:exact_sentences", "cai:numbered_list"),
        ("cai:exact_sentences", "length_constraints:number_sentences"),
        ("cai:acrostic", "cai:start_with"),
        ("cai:line_count", "cai:step_lines"),
        ("cai:same_first_last_word", "cai:end_with_question"),
        ("cai:exclaim_end", "startend:quotation"),
        ("cai:digit_numbers", "cai:no_digits"),
        ("cai:keyword_caps", "change_case:english_lowercase"),
        ("cai:ascii_only", "language:response_language"),
        ("cai:max_chars", "cai:max_words"),
    ],
)
def test_incompatible_transfer_types(a, b):
    assert not types_compatible(a, b) and not types_compatible(b, a)


def _spec(iid: str, **kwargs) -> ConstraintSpec:
    return ConstraintSpec(id=iid, kwargs=kwargs, text="")


def test_argument_clashes_of_transfer_types():
    no_z = _spec("cai:no_letter", letter="z")
    assert not specs_compatible(no_z, _spec("keywords:existence", keywords=["zebra"]))
    assert specs_compatible(no_z, _spec("keywords:existence", keywords=["garden"]))
    short = _spec("cai:max_word_length", max_letters=5)
    assert not specs_compatible(short, _spec("cai:keyword_first_sentence", keyword="patience"))
    either = _spec("cai:either_keyword", keywords=["rain", "sun"])
    assert not specs_compatible(either, _spec("cai:keyword_order", first="rain", second="sun"))
    assert specs_compatible(either, _spec("cai:bracketed_keyword", keyword="rain"))
    one_comma = _spec("cai:exact_commas", num_commas=1)
    assert not specs_compatible(one_comma, _spec("startend:end_checker", end_phrase="Yes, no, maybe."))


# ---------------------------------------------------------------- leave-types-out
def _cfg(**kw) -> InstructionSettings:
    base = {"constraint_types": ["group:stage1-default", "group:transfer-all"], "n_heldout": 30}
    return InstructionSettings(**{**base, "heldout_only_types": ["group:transfer-heldout"], **kw})


def test_groups_and_the_default_leaves_quickstart_alone():
    assert typegroups.training_types(InstructionSettings()) == constraint_types_default()
    assert InstructionSettings().heldout_only_types == []
    held = set(typegroups.HELDOUT_DEFAULT)
    assert 8 <= len(held) <= 10 and held <= set(NEW)
    families = {CHECKERS[t].fn.__module__.rsplit(".", 1)[-1] for t in held}
    assert families == {"chars", "counting", "positions", "structure", "copying"}
    with pytest.raises(UserError, match="unknown constraint type group"):
        typegroups.expand_types(["group:nope"])


def test_heldout_set_has_trained_and_heldout_type_items_disjoint_from_training(monkeypatch):
    cfg = _cfg(n_heldout_types=25, n_train=40)
    held = instructions_step.heldout(cfg, 0, 1)
    banned = set(typegroups.heldout_only_types(cfg))
    kinds = [{c.id in banned for c in h.constraints} for h in held]
    assert len(held) == 55 and kinds[:30] == [{False}] * 30 and kinds[30:] == [{True}] * 25
    # Listing only the trained types instead gives the same first part: the split only adds items.
    trained_only = ["group:stage1-default", "group:transfer-train"]
    plain = instructions_step.heldout(
        cfg.model_copy(update={"heldout_only_types": [], "constraint_types": trained_only}), 0, 1
    )
    assert [h.id for h in plain] == [h.id for h in held[:30]]
    no_si = cfg.model_copy(update={"self_instruct": cfg.self_instruct.model_copy(update={"enabled": False})})
    out = instructions_step.run(no_si, 0, 1, 1, None, held)
    assert out.instructions and not {c.id for i in out.instructions for c in i.constraints} & banned


def test_a_heldout_only_type_in_training_fails_the_round():
    cfg = _cfg()
    types = typegroups.heldout_only_types(cfg)
    tasks = [BaseTask(id="t1", text="Describe a busy beehive.", kind="describe", topic="bees")]
    leaked = compose(random.Random(0), tasks, 1, "train", ["cai:keyword_caps"])
    with pytest.raises(StepFailed, match="held-out-only constraint type in training data"):
        typegroups.assert_types_apart(leaked, types)
    # Its wording alone, inside a task text, is caught too.
    worded = compose(random.Random(0), tasks, 1, "train", ["punctuation:no_comma"])
    worded[0] = worded[0].model_copy(
        update={"prompt": worded[0].prompt + ' Leave out the letter "z" completely.'}
    )
    with pytest.raises(StepFailed, match="leave out the letter"):
        typegroups.assert_types_apart(worded, types)
    clean = compose(random.Random(0), tasks, 1, "train", ["cai:bracketed_keyword"])
    typegroups.assert_types_apart(clean, types)


def test_no_wording_of_another_type_or_task_reads_as_a_heldout_type():
    for t in NEW:
        pieces = typegroups.fragments([t])
        assert pieces, t  # every new type has wording a training prompt can be searched for
        for other in PHRASINGS:
            if other != t:
                for w in (*PHRASINGS[other].train, *PHRASINGS[other].heldout):
                    assert typegroups.wording_hit(w, pieces) is None, (t, other, w)
        for task in load_base_tasks("train") + load_base_tasks("heldout"):
            assert typegroups.wording_hit(task.text, pieces) is None, (t, task.text)


def test_type_settings_are_checked_before_any_model_runs():
    typegroups.check_type_settings(_cfg(), "stages.0.instructions")
    with pytest.raises(UserError, match="heldout_only_types: unknown constraint type group"):
        typegroups.check_type_settings(_cfg(heldout_only_types=["group:x"]), "stages.0.instructions")
    with pytest.raises(UserError, match="every training constraint type is in heldout_only_types"):
        typegroups.check_type_settings(
            _cfg(constraint_types=["cai:no_letter"], heldout_only_types=["cai:no_letter"]), "s"
        )


# ---------------------------------------------------------------- the transfer comparison
def _item(tag: str, iid: str, ids: list[str], strict: list[bool], loose: list[bool] | None = None):
    from cai_bootstrap.records import EvalItem

    loose = strict if loose is None else loose
    return EvalItem(
        id=f"{tag}:{iid}",
        model_tag=tag,
        instruction_id=iid,
        prompt="p",
        response="r",
        constraint_ids=ids,
        passed_strict=strict,
        passed_loose=loose,
        all_strict=all(strict),
        all_loose=all(loose),
    )


def _scripted():
    """Scripted held-out records: 20 trained-type items (4 -> 18 passes), 20 held-out-type items
    (10 -> 10, but different ones), one mixed item."""
    held = ["cai:no_letter", "cai:keyword_caps"]
    trained_ids, held_ids, mixed_ids = (
        ["cai:max_words"],
        ["cai:no_letter", "cai:keyword_caps"],
        held[:1] + ["cai:max_words"],
    )
    base, after = [], []
    for i in range(20):  # trained types: 4 -> 18 passes (gain); held-out types: 10 -> 10 (none)
        base.append(_item("base", f"t{i}", trained_ids, [i < 4]))
        after.append(_item("trained", f"t{i}", trained_ids, [i < 18]))
        base.append(_item("base", f"h{i}", held_ids, [i < 10, True], loose=[True, True]))
        after.append(_item("trained", f"h{i}", held_ids, [i >= 10, True], loose=[True, True]))
    base.append(_item("base", "m0", mixed_ids, [False, False]))
    after.append(_item("trained", "m0", mixed_ids, [True, True]))
    return base, after, held


def test_transfer_comparison_counts_each_group_apart_and_mixed_in_neither():
    from cai_bootstrap.transfer import TypeGroup, transfer_comparison

    base, after, held = _scripted()
    result = transfer_comparison(base, after, held)
    assert result.n_mixed == 1 and [g.group for g in result.groups] == [TypeGroup.TRAINED, TypeGroup.HELDOUT]
    tr, ho = result.groups
    assert (
        tr.n_items == 20 and tr.prompt_strict.base.successes == 4 and tr.prompt_strict.trained.successes == 18
    )
    assert tr.prompt_strict.mcnemar.p_value < 0.001
    assert ho.n_items == 20 and ho.prompt_strict.base.successes == ho.prompt_strict.trained.successes == 10
    assert ho.prompt_strict.mcnemar.b == 10 and ho.prompt_strict.mcnemar.c == 10
    assert (
        ho.prompt_loose.trained.rate == 1.0
        and ho.prompt_strict.base.ci_low < 0.5 < ho.prompt_strict.base.ci_high
    )
    assert {r.type for r in ho.prompt_strict.per_type} == set(held)
    assert transfer_comparison(base, after, []) is None


def test_report_shows_the_transfer_section_in_markdown_and_html(tmp_path):
    from datetime import datetime

    from cai_bootstrap.report import ReportData, StageReport, render
    from cai_bootstrap.transfer import transfer_comparison
    from test_report import check_html

    base, after, held = _scripted()
    result = transfer_comparison(base, after, held)
    stage = StageReport(stage=1, transfer=result)
    md, html = render(
        ReportData(run_name="t", model="m", created=datetime(2026, 1, 1), stages=[stage]), tmp_path
    )
    text = md.read_text()
    assert "### Transfer: trained vs never-trained constraint types" in text
    assert "| trained types | 20 | prompt strict | 20.0% [" in text and "| +70.0 pts | 0 / 14 |" in text
    assert "| held-out types | 20 | prompt strict | 50.0% [" in text and "| +0.0 pts | 10 / 10 |" in text
    assert "1 mixed item(s) count in neither" in text and "| cai:no_letter | 20 | 50.0% | 50.0% |" in text
    check_html(html)
    assert "Transfer: trained vs never-trained" in html.read_text()
    render(
        ReportData(run_name="t", model="m", created=datetime(2026, 1, 1), stages=[StageReport(stage=1)]),
        tmp_path,
    )
    assert "Transfer:" not in md.read_text()


def test_a_tiny_run_with_heldout_only_types_records_the_transfer(tmp_path, tiny_model_dir):
    """One stage on the tiny random model: held-out-only items exist, no training instruction
    carries their type, stage.json and the report show both groups."""
    import json

    import yaml
    from typer.testing import CliRunner

    from cai_bootstrap.cli import app
    from cai_bootstrap.records import Instruction
    from cai_bootstrap.store import read_jsonl
    from test_pipeline import _recipe

    path = _recipe(tmp_path, tiny_model_dir)
    recipe = yaml.safe_load(open(path))
    ins = recipe["stages"][0]["instructions"]
    ins.update(heldout_only_types=["cai:exclaim_end"], n_heldout_types=3)
    ins["constraint_types"] += ["cai:exclaim_end"]  # listed for training too: removed from it
    recipe["stages"][0]["eval"]["ifeval_files"] = []
    open(path, "w").write(yaml.safe_dump(recipe))
    result = CliRunner().invoke(app, ["run", "--recipe", path, "--quiet"])
    assert result.exit_code in (0, 3), result.output
    run = tmp_path / "run" / "stage1"
    held = read_jsonl(run / "heldout" / "records.jsonl", Instruction)
    assert [i.constraints[0].id for i in held[-3:]] == ["cai:exclaim_end"] * 3 and len(held) == 8
    train = read_jsonl(run / "round1" / "instructions" / "records.jsonl", Instruction)
    assert train and all(c.id != "cai:exclaim_end" for i in train for c in i.constraints)
    transfer = json.loads((run / "stage.json").read_text())["rounds"][0]["transfer"]
    assert transfer["heldout_only_types"] == ["cai:exclaim_end"] and transfer["n_mixed"] == 0
    assert [(g["group"], g["n_items"]) for g in transfer["groups"]] == [
        ("trained types", 5),
        ("held-out types", 3),
    ]
    assert (
        "### Transfer: trained vs never-trained constraint types"
        in (tmp_path / "run" / "report.md").read_text()
    )


def test_preflight_names_a_bad_heldout_only_setting():
    from cai_bootstrap.config import load_recipe
    from cai_bootstrap.constitution import load_constitution
    from cai_bootstrap.preflight import check_names

    con = load_constitution(None)
    ok = load_recipe(None, ["stages.0.instructions.heldout_only_types=[group:transfer-heldout]"])
    check_names(ok, con)
    for value, message in [
        ("[bogus:type]", "heldout_only_types: unknown constraint type 'bogus:type'"),
        ("[group:nope]", "heldout_only_types: unknown constraint type group"),
    ]:
        recipe = load_recipe(None, [f"stages.0.instructions.heldout_only_types={value}"])
        with pytest.raises(UserError, match=message):
            check_names(recipe, con)


def test_a_model_written_task_that_words_a_heldout_type_never_trains(monkeypatch):
    from cai_bootstrap.tasks.selfinstruct import SelfInstructOutput

    bad = BaseTask(
        id="si-1", text='Write a note. Leave out the letter "z" completely.', kind="letter", topic="x"
    )
    good = BaseTask(id="si-2", text="Write a note to a neighbour about a lost cat.", kind="letter", topic="x")
    monkeypatch.setattr(
        instructions_step.selfinstruct, "run", lambda *a, **k: SelfInstructOutput(tasks=[bad, good])
    )
    cfg = _cfg(n_train=200)
    out = instructions_step.run(cfg, 0, 1, 1, None, instructions_step.heldout(cfg, 0, 1))
    assert out.stats["self_instruct_dropped_heldout_wording"] == 1
    tasks = {i.task for i in out.instructions}
    assert bad.text not in tasks and good.text in tasks
