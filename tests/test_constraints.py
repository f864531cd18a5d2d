"""Checkers of every IFEval type and our cai: types: pass, fail, edge cases, loose mode, no crashes."""

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cai_bootstrap.errors import UserError
from cai_bootstrap.tasks.constraints import CHECKERS, check, loose_variants
from cai_bootstrap.tasks.phrasings import PHRASINGS, sample_constraint
from transfer_cases import TRANSFER_CASES

LONG = "The river runs past the mill. " * 3000  # 18,000 words, 3,000 sentences

# (instruction id, kwargs, response, expected in strict mode)
CASES = [
    (
        "change_case:capital_word_frequency",
        {"capital_frequency": 2, "capital_relation": "at least"},
        "This is VERY IMPORTANT.",
        True,
    ),
    (
        "change_case:capital_word_frequency",
        {"capital_frequency": 2, "capital_relation": "at least"},
        "This is Very important.",
        False,
    ),
    (
        "change_case:capital_word_frequency",
        {"capital_frequency": 2, "capital_relation": "less than"},
        "Only ONE loud word.",
        True,
    ),
    ("change_case:english_capital", {}, "THE SUN IS A STAR AT THE CENTRE OF OUR SOLAR SYSTEM.", True),
    ("change_case:english_capital", {}, "THE SUN IS A STAR, not a planet.", False),
    (
        "change_case:english_capital",
        {},
        # langdetect reads capitalised French as English, and the reference asks it about the text as is.
        "LE SOLEIL EST UNE ÉTOILE AU CENTRE DE NOTRE SYSTÈME SOLAIRE.",
        True,
    ),
    ("change_case:english_capital", {}, "12345 !!!", False),
    ("change_case:english_lowercase", {}, "bees make honey from the nectar of flowers.", True),
    ("change_case:english_lowercase", {}, "Bees make honey from the nectar of flowers.", False),
    (
        "combination:repeat_prompt",
        {"prompt_to_repeat": "Explain why it rains."},
        "explain why it rains. Water vapour cools.",
        True,
    ),
    (
        "combination:repeat_prompt",
        {"prompt_to_repeat": "Explain why it rains."},
        "explain why it  rains. Water vapour cools.",  # the reference compares spacing too
        False,
    ),
    (
        "combination:repeat_prompt",
        {"prompt_to_repeat": "Explain why it rains."},
        "Sure. Explain why it rains.",
        False,
    ),
    ("combination:two_responses", {}, "Cats purr when happy.\n******\nCats purr to heal.", True),
    ("combination:two_responses", {}, "Same answer.\n******\nSame answer.", False),
    ("combination:two_responses", {}, "One.\n******\n******\nTwo.", False),
    ("combination:two_responses", {}, "Only one answer.", False),
    (
        "detectable_content:number_placeholders",
        {"num_placeholders": 2},
        "Dear [name], see you in [city].",
        True,
    ),
    ("detectable_content:number_placeholders", {"num_placeholders": 2}, "Dear [name], see you [ ].", True),
    (
        "detectable_content:number_placeholders",
        {"num_placeholders": 2},
        "Dear [name], see you [soon\nthen].",
        False,
    ),
    ("detectable_content:postscript", {"postscript_marker": "P.S."}, "Hello.\n\nP.S. Bring a coat.", True),
    ("detectable_content:postscript", {"postscript_marker": "P.S."}, "Hello.\n\np. s. bring a coat.", True),
    ("detectable_content:postscript", {"postscript_marker": "P.P.S"}, "Hello.\nP.S. one\nP.P.S two", True),
    ("detectable_content:postscript", {"postscript_marker": "P.P.S"}, "Hello.\nP.S. only one", False),
    ("detectable_content:postscript", {"postscript_marker": "P.S."}, "Hello. See the P.S. below.", True),
    ("detectable_content:postscript", {"postscript_marker": "P.S."}, "Hello. See the PS below.", False),
    ("detectable_format:constrained_response", {}, "My answer is yes.", True),
    ("detectable_format:constrained_response", {}, "My answer is probably.", False),
    ("detectable_format:json_format", {}, '{"a": [1, 2], "b": "x"}', True),
    ("detectable_format:json_format", {}, '```json\n{"a": 1}\n```', True),
    ("detectable_format:json_format", {}, 'Here it is: {"a": 1}', False),
    ("detectable_format:json_format", {}, "[" * 100000, False),
    (
        "detectable_format:multiple_sections",
        {"section_spliter": "SECTION", "num_sections": 2},
        "SECTION 1\nA\nSECTION 2\nB",
        True,
    ),
    (
        "detectable_format:multiple_sections",
        {"section_spliter": "SECTION", "num_sections": 3},
        "SECTION 1\nA\nSECTION 2\nB",
        False,
    ),
    ("detectable_format:number_bullet_lists", {"num_bullets": 2}, "Tips:\n* one\n- two", True),
    ("detectable_format:number_bullet_lists", {"num_bullets": 2}, "* one\n* two\n* three", False),
    ("detectable_format:number_bullet_lists", {"num_bullets": 1}, "**bold** line\n* one", True),
    # The reference counts any line that opens with '-' as a bullet, a '---' rule included.
    ("detectable_format:number_bullet_lists", {"num_bullets": 1}, "**bold** line\n---\n* one", False),
    (
        "detectable_format:number_highlighted_sections",
        {"num_highlights": 2},
        "A *first* and **second** one.",
        True,
    ),
    (
        "detectable_format:number_highlighted_sections",
        {"num_highlights": 2},
        "A *first* and ** ** one.",
        False,
    ),
    ("detectable_format:title", {}, "<<The Quiet Sea>>\nWaves roll in.", True),
    ("detectable_format:title", {}, "<< >>\nWaves roll in.", False),
    ("keywords:existence", {"keywords": ["river", "stone"]}, "A River runs over a stone.", True),
    # Keywords match inside longer words, as in the reference.
    ("keywords:existence", {"keywords": ["river", "stone"]}, "A river runs over stones.", True),
    ("keywords:existence", {"keywords": ["river", "stone"]}, "A river runs over rocks.", False),
    ("keywords:forbidden_words", {"forbidden_words": ["very"]}, "Everything is fine.", True),
    ("keywords:forbidden_words", {"forbidden_words": ["very"]}, "It is Very good.", False),
    (
        "keywords:frequency",
        {"keyword": "sea", "frequency": 2, "relation": "at least"},
        "The sea, the Sea!",
        True,
    ),
    (
        "keywords:frequency",
        {"keyword": "sea", "frequency": 2, "relation": "less than"},
        "The sea, the Sea!",
        False,
    ),
    (
        "keywords:frequency",
        {"keyword": "sea", "frequency": 2, "relation": "less than"},
        "Seas and seashells.",
        False,
    ),
    (
        "keywords:letter_frequency",
        {"letter": "z", "let_frequency": 2, "let_relation": "less than"},
        "A lazy cat.",
        True,
    ),
    (
        "keywords:letter_frequency",
        {"letter": "e", "let_frequency": 3, "let_relation": "at least"},
        "Eee",
        True,
    ),
    (
        "keywords:letter_frequency",
        {"letter": "e", "let_frequency": 3, "let_relation": "at least"},
        "Bee",
        False,
    ),
    (
        "language:response_language",
        {"language": "fr"},
        "Le soleil est une étoile au centre de notre système solaire.",
        True,
    ),
    (
        "language:response_language",
        {"language": "fr"},
        "The sun is a star at the centre of our solar system.",
        False,
    ),
    ("language:response_language", {"language": "ja"}, "太陽は太陽系の中心にある恒星です。", True),
    ("language:response_language", {"language": "fr"}, "12345 !!!", True),  # undetectable: followed
    (
        "length_constraints:nth_paragraph_first_word",
        {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "however"},
        'Bees fly.\n\n"However, wasps sting.',
        True,
    ),
    (
        "length_constraints:nth_paragraph_first_word",
        {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "however"},
        "Bees fly.\n\nWasps sting.",
        False,
    ),
    (
        "length_constraints:nth_paragraph_first_word",
        {"num_paragraphs": 3, "nth_paragraph": 2, "first_word": "however"},
        "Bees fly.\n\nHowever wasps sting.",
        False,
    ),
    ("length_constraints:number_paragraphs", {"num_paragraphs": 2}, "One.\n***\nTwo.", True),
    ("length_constraints:number_paragraphs", {"num_paragraphs": 2}, "One.\n***\n***\nTwo.", False),
    ("length_constraints:number_paragraphs", {"num_paragraphs": 1}, "A ***bold*** claim.", False),
    (
        "length_constraints:number_sentences",
        {"num_sentences": 3, "relation": "less than"},
        "Mr. Smith came. He sat.",
        True,
    ),
    (
        "length_constraints:number_sentences",
        {"num_sentences": 3, "relation": "at least"},
        "Mr. Smith came. He sat.",
        False,
    ),
    (
        "length_constraints:number_words",
        {"num_words": 5, "relation": "at least"},
        "one two three four five",
        True,
    ),
    (
        "length_constraints:number_words",
        {"num_words": 5, "relation": "less than"},
        "one two three four five",
        False,
    ),
    ("punctuation:no_comma", {}, "No commas here.", True),
    ("punctuation:no_comma", {}, "Yes, one comma.", False),
    ("punctuation:no_comma", {}, "中文，逗号", True),  # the reference looks for ',' only
    ("startend:end_checker", {"end_phrase": "That is all."}, "Bees fly. THAT IS ALL.  ", True),
    ("startend:end_checker", {"end_phrase": "That is all."}, "That is all. Bye.", False),
    ("startend:quotation", {}, '"Bees make honey."', True),
    ("startend:quotation", {}, "\u201cBees make honey.\u201d", False),  # straight quotes only
    ("startend:quotation", {}, '"Bees make honey.', False),
    ("startend:quotation", {}, '"', False),
    ("cai:exact_words", {"num_words": 4}, "Don't you love 3.5?", True),
    ("cai:exact_words", {"num_words": 4}, "Just three words", False),
    ("cai:max_words", {"max_words": 3}, "Three words only", True),
    ("cai:max_words", {"max_words": 3}, "Four words are here", False),
    ("cai:word_range", {"min_words": 2, "max_words": 3}, "Two words", True),
    ("cai:word_range", {"min_words": 2, "max_words": 3}, "One", False),
    ("cai:start_with", {"start_phrase": "Sure"}, "  sure, here it is.", True),
    ("cai:start_with", {"start_phrase": "Sure"}, "Surely not.", False),
    ("cai:start_with", {"start_phrase": "Here is"}, "Here   is a list.", True),
    ("cai:numbered_list", {"num_items": 2}, "Steps:\n1. Boil water.\n2) Add rice.", True),
    ("cai:numbered_list", {"num_items": 2}, "1. Boil water.\n3. Add rice.", False),
    ("cai:end_with_question", {}, 'Do you like bees?"', True),
    ("cai:end_with_question", {}, "Do you like bees? I do.", False),
    ("cai:single_paragraph", {}, "One line.\nAnother line.", True),
    ("cai:single_paragraph", {}, "One.\n  \nTwo.", False),
    ("cai:no_digits", {}, "Twenty bees.", True),
    ("cai:no_digits", {}, "20 bees.", False),
    ("cai:no_digits", {}, "٣ bees.", False),
    ("cai:contains_answer", {"answers": ["Paris"]}, "It is Paris.", True),
    ("cai:contains_answer", {"answers": ["Paris"]}, "Parisian food.", False),
    ("cai:choice", {"label": "A"}, "Answer A", True),
    ("cai:choice", {"label": "A"}, "A or B", False),
    ("cai:yes_no", {"answer": "yes"}, "Yes.", True),
    ("cai:yes_no", {"answer": "yes"}, "No.", False),
    *TRANSFER_CASES,
]


@pytest.mark.parametrize(("iid", "kwargs", "response", "expected"), CASES)
def test_checker_cases(iid, kwargs, response, expected):
    assert check(iid, kwargs, response) is expected


def test_every_type_has_a_passing_and_a_failing_case():
    outcomes = {(iid, expected) for iid, _, _, expected in CASES}
    for iid in CHECKERS:
        assert (iid, True) in outcomes and (iid, False) in outcomes, iid


def test_empty_response_follows_nothing():
    for iid in ["punctuation:no_comma", "keywords:forbidden_words", "length_constraints:number_words"]:
        kwargs = {"forbidden_words": ["x"]} if "forbidden" in iid else {}
        if iid.endswith("number_words"):
            kwargs = {"num_words": 5, "relation": "less than"}
        assert not check(iid, kwargs, "   \n")
        assert not check(iid, kwargs, "", loose=True)


def test_very_long_text_is_fast_and_counted():
    assert check("length_constraints:number_sentences", {"num_sentences": 3000, "relation": "at least"}, LONG)
    assert not check(
        "length_constraints:number_sentences", {"num_sentences": 3001, "relation": "at least"}, LONG
    )
    assert check("length_constraints:number_words", {"num_words": 18000, "relation": "at least"}, LONG)
    assert check("change_case:english_capital", {}, LONG.upper())


def test_loose_mode_forgives_markdown_and_an_intro_line():
    styled = "**Sure, here you go:**\nbees make honey from nectar."
    assert not check("change_case:english_lowercase", {}, styled)
    assert check("change_case:english_lowercase", {}, styled, loose=True)
    quoted = '"Bees make honey."\nI hope this helps!'
    assert not check("startend:quotation", {}, quoted)
    assert check("startend:quotation", {}, quoted, loose=True)
    assert len(loose_variants("a\nb\nc")) == 8


def test_null_kwargs_are_ignored_and_bad_kwargs_are_errors():
    kwargs = {"num_bullets": 2, "relation": None, "keywords": None, "num_words": None}
    assert check("detectable_format:number_bullet_lists", kwargs, "* a\n* b")
    with pytest.raises(UserError, match="unknown instruction id"):
        check("keywords:nonsense", {}, "text")
    with pytest.raises(UserError, match="takes no argument 'num_words'"):
        check("punctuation:no_comma", {"num_words": 3}, "text")
    with pytest.raises(UserError, match="needs argument 'num_bullets'"):
        check("detectable_format:number_bullet_lists", {}, "text")
    with pytest.raises(UserError, match="not a relation"):
        check("length_constraints:number_words", {"num_words": 3, "relation": "at most"}, "text")
    with pytest.raises(UserError, match="not a whole number"):
        check("length_constraints:number_words", {"num_words": "3", "relation": "at least"}, "text")


def test_repeat_prompt_falls_back_to_the_prompt():
    assert check("combination:repeat_prompt", {}, "Name a fruit. Apple.", prompt="Name a fruit.")


def _sampled_kwargs() -> dict[str, list[dict]]:
    rng = random.Random(7)
    out = {
        iid: [
            sample_constraint(rng, iid, "train", task="Explain how bees make honey.").kwargs for _ in range(5)
        ]
        for iid in PHRASINGS
    }
    out["detectable_format:constrained_response"] = [{}]
    out["cai:contains_answer"] = [{"answers": ["Paris", "the Sun"]}]
    out["cai:choice"] = [{"label": "A"}, {"label": "B"}]
    out["cai:yes_no"] = [{"answer": "yes"}, {"answer": "no"}]
    return out


SAMPLED = _sampled_kwargs()
TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=300) | st.sampled_from(
    [
        "",
        "\n\n",
        "***",
        "******",
        "<<>>",
        "[",
        "1. a\n2. b",
        '"',
        "* * *",
        "P.S.",
        "```json\n```",
        "\u200b" * 5,
    ]
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=TEXT, pick=st.integers(min_value=0, max_value=10_000))
def test_no_checker_raises_on_arbitrary_text(text, pick):
    for iid in CHECKERS:
        kwargs = SAMPLED[iid][pick % len(SAMPLED[iid])]
        for loose in (False, True):
            assert check(iid, kwargs, text, prompt=text, loose=loose) in (True, False)
