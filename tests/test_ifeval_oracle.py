"""Our IFEval checkers against the reference implementation (lm-eval's port of Google's
instruction_following_eval), strict and loose. Required agreement: 100%, with no listed exception.

(a) REFERENCE_CASES re-express every case of the reference's own unit tests (instructions_test.py)
    for the 25 registered instruction ids, in our own words: each states the behaviour the original
    case checks and its expected outcome, and both scorers must give it.
(b) Hypothesis draws arguments and adversarial responses for every instruction id (48 per id,
    shaped around each rule's boundary: ifeval_strategies.py), and _answers() holds real-looking
    model answers, each scored under every id.
Checkers of the reference that no IFEval id uses (constrained start, rephrasing, key sentences) are
left out, as are its cases with an argument the reference replaces by a random draw (a letter '#',
'ab'; also 0, '' or [], which it drops): no score is defined for those, and our checker refuses
them (test_random_draws_are_refused). An IFEval *file* with a non-letter letter (the official one has
'#' and '!') is still read and scored: tasks/ifeval.py draws the letter from a seeded generator, and
(c) holds that against the reference wherever the reference's own outcome does not depend on its draw.
"""

from __future__ import annotations

import json
import logging
import random
import string
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cai_bootstrap.errors import UserError
from cai_bootstrap.log import log
from cai_bootstrap.preflight import check_ifeval_file
from cai_bootstrap.tasks.constraints import CHECKERS, check
from cai_bootstrap.tasks.ifeval import drawn_letter, read_rows, score, to_instructions
from ifeval_reference import our_outcomes, reference_outcomes, rows_with_responses, score_both
from ifeval_strategies import END_PHRASES, KWARGS, PROMPTS, WORDS, case

IFEVAL_IDS = sorted(i for i in CHECKERS if not i.startswith("cai:"))
LESS, LEAST = "less than", "at least"

BULLETS_STAR = """
Lists in markdown start each line with an asterisk (*), like this:
* a first point about rivers.
*and one with no space after the asterisk.
* (and another) that carries on without a line break.
people often use them for shopping lists or steps."""
BULLETS_INLINE = """
An asterisk (*) in the middle, *, or at the end * of a line is not a bullet; only one that opens
a line is:
    * indented point one.
    * indented point two.
    . a dot does not open a bullet"""
BULLETS_THREE = """
Three facts about owls:
* Owls hunt at night and see well in the dark.
* Owls can turn their heads a long way round.
* Owls fly almost silently."""
BULLETS_DASH = """
Three dashes:
- Tea is made from leaves.
- Coffee is made from beans.
-Cocoa is made from seeds, with no space after the dash."""
BULLETS_DIVIDERS = """
First part
***
Second part
***
Third part
* a single point
"""
HIGHLIGHT_INLINE = """
Markdown marks text with one * on each side: you write *bees* to stress it, and with two on each
side, **wasps**, it turns bold """
HIGHLIGHT_OPEN = """
Ways to keep a garden:
*Water in the morning
*Mulch the beds*
*Prune in winter
*Feed the soil
That is all."""
HIGHLIGHT_TWO_PER_LINE = """
One line may hold *a first mark* and *a second mark*
too. **Bold text counts** as does **a second bold span.**
"""
SECTIONS_MIXED = """
The answer comes in parts, each opening with "Section X", for example:
Section 1
[the first part]
Section 2
[the second part]"""
SECTIONS_UPPER = """SECTION 1
  [the first part]
  SECTION 2
  [the second part]"""
PARAS_PLAIN = "\n  part one\n  ***\n  part two\n  ***\n  part three"
PARAS_LEADING = "\n        ***\n  part one\n        ***\n    part two\n        ***\n    part three"
PARAS_TRAILING = "\n  part one\n        ***\n    part two\n        ***\n    part three\n        ***"
PARAS_EMPTY_BETWEEN = "\n  part one\n        ***\n    part two\n        ***\n        ***"
PS_NEW_LINE = """
I will answer every question as well as I can and keep each answer short. Mistakes can happen,
and I will fix them when you point them out.

P.S. I hope this is the answer you wanted."""
PS_DOUBLE = """
Here is an answer with a postscript that starts with P.P.S.:

The answer: the tide turns twice a day.

P.P.S. Ask me anything else about the sea.

Is there more you want to know?"""
PS_MID_LINE = """
A square with sides of one has an area of one. A joke answer would be two, because two
squares are better than one. (same line) P.S. I hope the joke made you smile!"""
PS_LOWER = """
A cube with edges of one has a volume of one.
p.p.s what if this whole answer were lower case?
"""
PS_SPACED = """
Stars are far away and very bright.
P. S. Sometimes people put a space between P. and S..
"""
KEYWORDS_ALL = """
Rome is a city of history and romance. The romantic river Tiber runs past the Colosseum and the
Vatican, where the Mona Lisa does not hang but many other paintings do. A walk along the river
shows the city at its best."""
KEYWORDS_SOME = """
Rome is a city of history and romance, home to the Colosseum, the Vatican and the Pantheon. It is
known for its food, its fountains and its busy streets.
"""
FIRST_WORD_THREE = "\n  part one\n\n  I part two\n\n  part three"
FIRST_WORD_TWO = "\n  part one\n\n  I part two"
FIRST_WORD_WRONG = "\n  part one\n\n  wrong part two\n\n  part three"
FIRST_WORD_FIVE = """
What a long answer this is.

I did not expect more than three parts.

Surely more than three? Yes indeed!

I see it now, and I believe it.

Alright, that settles it."""
FIRST_WORD_QUOTED = FIRST_WORD_FIVE.replace(
    "Surely more than three? Yes indeed!", '"Surely?! more than three?"'
)
FIRST_WORD_BROKEN = FIRST_WORD_FIVE.replace("Surely more", "Sur!ely more")
FORBID_HISTORY = """
The Romans built roads across their empire over several centuries. Augustus became the first
emperor after a long civil war, and his rule brought a time of peace that later writers praised.
By the second century the empire had reached its greatest size.
"""
FORBID_NATURE = """
Whales are large mammals that live in every ocean. Some travel thousands of miles each year
between feeding grounds and the warm waters where they give birth. The blue whale is the largest
animal known to have lived, and it feeds almost only on tiny krill.
"""
FORBID_TECH = """
BERT, or Bidirectional Encoder Representations from Transformers, is a language model built on
the transformer design. BERT models learn from large amounts of text and can be tuned for many
tasks, including search, classification and question answering, and companies such as Google
use them.
"""
TWO_PLAIN = "\n  Answer one.\n  ******\n  Answer two.\n  "
TWO_SAME = "\n  Answer one.\n  ******\n  Answer one.\n  "
TWO_THREE = "\n  Answer one.\n  ******\n  Answer two.\n  ******\n  Answer three.\n  "
TWO_EMPTY_MIDDLE = "\n  ******\n  Answer one.\n  ******\n  ******\n  Answer two.\n  ******\n  "
TWO_FRAMED = "\n  ******\n  Answer one\n  ******\n  Answer two\n  ******\n  "
REPEAT = "Write a haiku about snow."

# (instruction id, kwargs, response, prompt, expected) -- strict mode, as in the original tests.
REFERENCE_CASES = [
    ("language:response_language", {"language": "en"}, "This answer is written in English", "", True),
    (
        "language:response_language",
        {"language": "es"},
        "Desayunamos hoy en el Starbucks de la plaza",
        "",
        True,
    ),
    ("language:response_language", {"language": "en"}, "Tomorrow we will see the Sagrada Familia", "", True),
    (
        "length_constraints:number_sentences",
        {"num_sentences": 4, "relation": LESS},
        "ab,c. de,f! gh/i. j{k}l?",
        "",
        False,
    ),
    (
        "length_constraints:number_sentences",
        {"num_sentences": 5, "relation": LESS},
        "abcd. de,f! ghij. k(l)m?",
        "",
        True,
    ),
    (
        "length_constraints:number_sentences",
        {"num_sentences": 4, "relation": LEAST},
        "abcd. de,f! gh|i. j&k l?",
        "",
        True,
    ),
    (
        "length_constraints:number_sentences",
        {"num_sentences": 5, "relation": LEAST},
        "ab-c. de,f! gh}i. j,kl?",
        "",
        False,
    ),
    (
        "detectable_content:number_placeholders",
        {"num_placeholders": 5},
        "Here is a form with five blanks:\n[City]\n[Street]\n[Postcode]\n[Country]\n[Date]\n"
        "Use it for letters, parcels or invitations.",
        "",
        True,
    ),
    (
        "detectable_content:number_placeholders",
        {"num_placeholders": 7},
        "The [colour] [animal] ran to the [colour] [place]. It [verb] and [verb].",
        "",
        False,
    ),
    ("detectable_format:number_bullet_lists", {"num_bullets": 3}, BULLETS_STAR, "", True),
    ("detectable_format:number_bullet_lists", {"num_bullets": 2}, BULLETS_INLINE, "", True),
    ("detectable_format:number_bullet_lists", {"num_bullets": 3}, BULLETS_THREE, "", True),
    ("detectable_format:number_bullet_lists", {"num_bullets": 3}, BULLETS_DASH, "", True),
    ("detectable_format:number_bullet_lists", {"num_bullets": 1}, BULLETS_DIVIDERS, "", True),
    ("detectable_format:constrained_response", {}, "\n My answer is yes.\n", "", True),
    ("detectable_format:constrained_response", {}, "My answer is maybe.   ", "", True),
    (
        "detectable_format:constrained_response",
        {},
        "\n  My answer is no. There is more to say about it, and I keep learning every day,\n  but that is the short answer.",
        "",
        True,
    ),
    ("detectable_format:number_highlighted_sections", {"num_highlights": 2}, HIGHLIGHT_INLINE, "", True),
    ("detectable_format:number_highlighted_sections", {"num_highlights": 2}, HIGHLIGHT_OPEN, "", False),
    (
        "detectable_format:number_highlighted_sections",
        {"num_highlights": 4},
        HIGHLIGHT_TWO_PER_LINE,
        "",
        True,
    ),
    (
        "detectable_format:multiple_sections",
        {"section_spliter": "Section", "num_sections": 3},
        SECTIONS_MIXED,
        "",
        False,
    ),
    (
        "detectable_format:multiple_sections",
        {"section_spliter": "SECTION", "num_sections": 2},
        SECTIONS_UPPER,
        "",
        True,
    ),
    ("length_constraints:number_paragraphs", {"num_paragraphs": 3}, PARAS_PLAIN, "", True),
    ("length_constraints:number_paragraphs", {"num_paragraphs": 3}, PARAS_LEADING, "", True),
    ("length_constraints:number_paragraphs", {"num_paragraphs": 3}, PARAS_TRAILING, "", True),
    ("length_constraints:number_paragraphs", {"num_paragraphs": 2}, PARAS_EMPTY_BETWEEN, "", False),
    ("detectable_content:postscript", {"postscript_marker": "P.S."}, PS_NEW_LINE, "", True),
    ("detectable_content:postscript", {"postscript_marker": "PS:"}, PS_NEW_LINE, "", False),
    ("detectable_content:postscript", {"postscript_marker": "P.P.S"}, PS_DOUBLE, "", True),
    ("detectable_content:postscript", {"postscript_marker": "P.S."}, PS_MID_LINE, "", True),
    ("detectable_content:postscript", {"postscript_marker": "P.P.S"}, PS_LOWER, "", True),
    ("detectable_content:postscript", {"postscript_marker": "P.S."}, PS_SPACED, "", True),
    ("keywords:existence", {"keywords": ["romantic", "river", "Mona Lisa"]}, KEYWORDS_ALL, "", True),
    ("keywords:existence", {"keywords": ["romantic", "river", "Mona Lisa"]}, KEYWORDS_SOME, "", False),
    (
        "keywords:frequency",
        {"keyword": "  tide ", "frequency": 4, "relation": LESS},
        "\n  tide, Tide, TIDE\n  ",
        "",
        True,
    ),
    (
        "keywords:frequency",
        {"keyword": "  tide ", "frequency": 3, "relation": LEAST},
        "\n  tide, Tide, TIDE\n  ",
        "",
        True,
    ),
    (
        "keywords:frequency",
        {"keyword": "TIDE", "frequency": 4, "relation": LEAST},
        "\n    *tide\n    *Tide\n    *TIDE\n  ",
        "",
        False,
    ),
    (
        "length_constraints:number_words",
        {"num_words": 8, "relation": LESS},
        "\n  sh0rt d3scr1ption of M0DEL in 20 w0rds.",
        "",
        True,
    ),
    (
        "length_constraints:number_words",
        {"num_words": 16, "relation": LESS},
        "\n  B1G T3XT M0D3L: a syst3m that r3ads, wr1tes, or tr4nslates\n  t3xt b4sed on wh4t it l3arned & s4w.",
        "",
        False,
    ),
    (
        "length_constraints:number_words",
        {"num_words": 16, "relation": LEAST},
        "\n  B1G T3XT M0D3L: a syst3m that r3ads, wr1tes, or tr4nslates\n  t3xt b4sed on wh4t it l3arned & s4w.",
        "",
        True,
    ),
    (
        "length_constraints:nth_paragraph_first_word",
        {"num_paragraphs": 3, "nth_paragraph": 2, "first_word": "I"},
        FIRST_WORD_THREE,
        "",
        True,
    ),
    (
        "length_constraints:nth_paragraph_first_word",
        {"num_paragraphs": 3, "nth_paragraph": 2, "first_word": "I"},
        FIRST_WORD_TWO,
        "",
        False,
    ),
    (
        "length_constraints:nth_paragraph_first_word",
        {"num_paragraphs": 3, "nth_paragraph": 2, "first_word": "I"},
        FIRST_WORD_WRONG,
        "",
        False,
    ),
    (
        "length_constraints:nth_paragraph_first_word",
        {"num_paragraphs": 5, "nth_paragraph": 5, "first_word": "alright"},
        FIRST_WORD_FIVE,
        "",
        True,
    ),
    (
        "length_constraints:nth_paragraph_first_word",
        {"num_paragraphs": 5, "nth_paragraph": 3, "first_word": "Surely"},
        FIRST_WORD_QUOTED,
        "",
        True,
    ),
    (
        "length_constraints:nth_paragraph_first_word",
        {"num_paragraphs": 5, "nth_paragraph": 3, "first_word": "Surely"},
        FIRST_WORD_BROKEN,
        "",
        False,
    ),
    (
        "keywords:forbidden_words",
        {"forbidden_words": ["HOUSE", "EMPEROR", "BECAME"]},
        FORBID_HISTORY,
        "",
        False,
    ),
    (
        "keywords:forbidden_words",
        {"forbidden_words": ["HOUSE", "EMPEROR", "BECAME"]},
        FORBID_NATURE,
        "",
        True,
    ),
    ("keywords:forbidden_words", {"forbidden_words": ["HOUSE", "EMPEROR", "BECAME"]}, FORBID_TECH, "", True),
    ("keywords:forbidden_words", {"forbidden_words": ["GOOGLE", "TEXT"]}, FORBID_HISTORY, "", True),
    ("keywords:forbidden_words", {"forbidden_words": ["GOOGLE", "TEXT"]}, FORBID_NATURE, "", True),
    ("keywords:forbidden_words", {"forbidden_words": ["GOOGLE", "TEXT"]}, FORBID_TECH, "", False),
    ("keywords:forbidden_words", {"forbidden_words": ["TRANS", "MODE"]}, FORBID_TECH, "", True),
    ("combination:two_responses", {}, TWO_PLAIN, "", True),
    ("combination:two_responses", {}, TWO_SAME, "", False),
    ("combination:two_responses", {}, TWO_THREE, "", False),
    ("combination:two_responses", {}, TWO_EMPTY_MIDDLE, "", False),
    ("combination:two_responses", {}, TWO_FRAMED, "", True),
    (
        "combination:repeat_prompt",
        {"prompt_to_repeat": REPEAT},
        "Write a haiku about snow. Here it is,\n  white and soft.\n  ",
        REPEAT,
        True,
    ),
    (
        "combination:repeat_prompt",
        {"prompt_to_repeat": REPEAT},
        "Here it is. Write a haiku about snow. Done.\n  ",
        REPEAT,
        False,
    ),
    (
        "startend:end_checker",
        {"end_phrase": "\n  Anything else?\n  "},
        "\n  The answer is 9. Anything else?\n  ",
        "",
        True,
    ),
    (
        "startend:end_checker",
        {"end_phrase": "\n  That is all.\n  "},
        "\n  I was asked to finish by saying that is all.\n  ",
        "",
        True,
    ),
    (
        "startend:end_checker",
        {"end_phrase": "\n  No match here.\n  "},
        "\n  No match here. Rome is warm.\n  ",
        "",
        False,
    ),
    ("detectable_format:title", {}, "\n  <<Ode to Rain>>\n  Drip drop. A wet song.\n  ", "", True),
    ("detectable_format:title", {}, "\n  May the title come last?\n  <<The title>>\n  ", "", True),
    ("detectable_format:title", {}, "\n  << >>\n  No title here.\n  ", "", False),
    ("detectable_format:title", {}, "\n  <<Not a title,\n  a paragraph.>>\n  ", "", False),
    (
        "keywords:letter_frequency",
        {"letter": "R", "let_frequency": 4, "let_relation": LEAST},
        "\n  Here is the R. Four R's.\n  ",
        "",
        True,
    ),
    (
        "keywords:letter_frequency",
        {"letter": "b", "let_frequency": 4, "let_relation": LESS},
        "\n  qwbrtyuiop!!bB\n  ",
        "",
        True,
    ),
    (
        "keywords:letter_frequency",
        {"letter": "m", "let_frequency": 4, "let_relation": LEAST},
        "\n  qwbrtyuiop!!bB\n  ",
        "",
        False,
    ),
    (
        "change_case:english_capital",
        {},
        "\n  THIS SENTENCE IS IN ENGLISH. ALL OF ITS LETTERS ARE CAPITALS!!! WOW.\n  ",
        "",
        True,
    ),
    ("change_case:english_capital", {}, "\n  Each Word Starts With A Capital.\n  ", "", False),
    ("change_case:english_lowercase", {}, "\n  all of these letters are small.\n  ", "", True),
    ("change_case:english_lowercase", {}, "\n  Nearly all of these letters are small.\n  ", "", False),
    ("punctuation:no_comma", {}, "\n  Each sentence is short. None needs a comma.\n  ", "", True),
    (
        "punctuation:no_comma",
        {},
        "\n  Ever since people began to write, they have used commas.\n  ",
        "",
        False,
    ),
    (
        "change_case:capital_word_frequency",
        {"capital_frequency": 3, "capital_relation": LEAST},
        "\n  HERE we have THREE WHOLLy CAPITAL WORDS.\n  ",
        "",
        True,
    ),
    (
        "change_case:capital_word_frequency",
        {"capital_frequency": 5, "capital_relation": LESS},
        "\n  FOUR words ARE FULLY CAPITAL. Most Others Are Only Partly So.\n  ",
        "",
        True,
    ),
    (
        "change_case:capital_word_frequency",
        {"capital_frequency": 4, "capital_relation": LESS},
        "\n  FOUR words ARE FULLY CAPITAL. Most Others Are Only Partly So.\n  ",
        "",
        False,
    ),
    ("startend:quotation", {}, '\n  "This whole answer sits inside double quotes."\n  ', "", True),
    ("startend:quotation", {}, '\n  "Only this part is quoted." The rest is not.\n  ', "", False),
]


def _row(iid: str, kwargs: dict, prompt: str) -> dict:
    return {
        "key": 0,
        "prompt": prompt or "Answer the question.",
        "instruction_id_list": [iid],
        "kwargs": [kwargs],
    }


@pytest.mark.parametrize(("iid", "kwargs", "response", "prompt", "expected"), REFERENCE_CASES)
def test_reference_unit_cases(iid, kwargs, response, prompt, expected):
    row = _row(iid, kwargs, prompt)
    ours, theirs = our_outcomes(row, response), reference_outcomes(row, response)
    assert theirs[0] == [expected], "the case does not say what the reference does"
    assert ours == theirs


def test_reference_cases_cover_every_ifeval_id():
    assert {c[0] for c in REFERENCE_CASES} >= set(IFEVAL_IDS) - {"detectable_format:json_format"}


# Cases found where our earlier checkers disagreed with the reference (issue 14), pinned down.
QUIRKS = [
    ("keywords:existence", {"keywords": ["cat"]}, "A catalog of lamps.", True),
    (
        "keywords:frequency",
        {"keyword": "sea", "frequency": 2, "relation": LEAST},
        "Seas and seashells.",
        True,
    ),
    ("language:response_language", {"language": "fr"}, "12345 !!! 678", True),
    ("language:response_language", {"language": "ja"}, "太阳是位于太阳系中心的一颗恒星。", False),
    # langdetect reads this capitalised French as English; the reference asks it about the text as is.
    ("change_case:english_capital", {}, "LE SOLEIL EST UNE ÉTOILE AU CENTRE DE NOTRE SYSTÈME SOLAIRE.", True),
    ("startend:quotation", {}, "\u201cBees make honey.\u201d", False),
    (
        "length_constraints:nth_paragraph_first_word",
        {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "however"},
        "Bees.\n\n**However** wasps sting.",
        False,
    ),
    ("detectable_content:number_placeholders", {"num_placeholders": 2}, "Dear [], see you in [city].", True),
    ("detectable_format:number_highlighted_sections", {"num_highlights": 2}, "A ***bold*** claim.", True),
    (
        "detectable_format:multiple_sections",
        {"section_spliter": "SECTION", "num_sections": 2},
        "SUBSECTION 1\nA\nSUBSECTION 2\nB",
        True,
    ),
    ("detectable_format:json_format", {}, '```JSON\n{"a": 1}\n```', True),
    ("detectable_format:json_format", {}, '```python\n{"a": 1}\n```', False),
    ("punctuation:no_comma", {}, "中文，逗号", True),
    (
        "change_case:capital_word_frequency",
        {"capital_frequency": 2, "capital_relation": LEAST},
        "AI-POWERED tools",
        False,
    ),
    (
        "length_constraints:number_sentences",
        {"num_sentences": 2, "relation": LEAST},
        "It works! lower-case start.",
        True,
    ),
    ("detectable_format:number_bullet_lists", {"num_bullets": 2}, "*first\n-second", True),
    ("length_constraints:number_paragraphs", {"num_paragraphs": 2}, "One\n***\nTwo\n***\n***", False),
    ("detectable_content:postscript", {"postscript_marker": "P.S."}, "See the P.S. below.", True),
    ("startend:end_checker", {"end_phrase": "That is all."}, '"Bees fly. That is all."', True),
]


@pytest.mark.parametrize(("iid", "kwargs", "response", "expected"), QUIRKS)
def test_reference_quirks(iid, kwargs, response, expected):
    row = _row(iid, kwargs, "")
    assert reference_outcomes(row, response)[0] == [expected]
    assert check(iid, kwargs, response) is expected


def test_random_draws_are_refused():
    """Arguments that the reference replaces by a random draw define no score: ours refuses them."""
    for iid, kwargs in [
        ("keywords:letter_frequency", {"letter": "#", "let_frequency": 4, "let_relation": LEAST}),
        ("keywords:letter_frequency", {"letter": "ab", "let_frequency": 1, "let_relation": LEAST}),
        ("length_constraints:number_words", {"num_words": -1, "relation": LEAST}),
        (
            "length_constraints:nth_paragraph_first_word",
            {"num_paragraphs": 2, "nth_paragraph": 3, "first_word": "a"},
        ),
        ("keywords:existence", {"keywords": ["c(++"]}),
        ("keywords:existence", {"keywords": []}),
        ("detectable_format:number_highlighted_sections", {"num_highlights": 0}),
        ("startend:end_checker", {"end_phrase": ""}),
        ("language:response_language", {"language": "zh"}),
    ]:
        with pytest.raises(UserError):
            check(iid, kwargs, "Some text.")


# ---- (b) adversarial responses and real-looking answers ----------------------------------------

COMPARED: Counter[str] = Counter()
PER_ID = 48


def test_every_ifeval_id_has_a_strategy():
    assert sorted(KWARGS) == IFEVAL_IDS and len(IFEVAL_IDS) == 25


@pytest.mark.parametrize("iid", IFEVAL_IDS)
def test_adversarial_agreement(iid):
    @settings(
        max_examples=PER_ID,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(drawn=case(iid), prompt=st.sampled_from(PROMPTS), extra_nulls=st.booleans())
    def agree(drawn, prompt, extra_nulls):
        kwargs, response = drawn
        if iid == "combination:repeat_prompt":
            prompt = kwargs["prompt_to_repeat"]
        if extra_nulls and "num_words" not in kwargs:
            # IFEval files carry every argument name, with None for those an id does not take.
            kwargs = {"num_words": None, "keywords": None, **kwargs}
        row = _row(iid, kwargs, prompt)
        COMPARED[iid] += 1
        assert our_outcomes(row, response) == reference_outcomes(row, response), (iid, kwargs, response)

    agree()


def _answers() -> list[str]:
    """Answers of the kinds small models write, with the slips that decide IFEval outcomes."""
    return [
        "Sure! Here is a short poem about the sea:\n\nThe waves roll in, the waves roll out,\nthe gulls all cry and wheel about.",
        "**Benefits of exercise**\n\n* Better sleep\n* More energy\n* A stronger heart\n\nP.S. Start slowly.",
        "<<The Quiet Forest>>\n\nThe forest was quiet that morning. Birds sang in the tall pines, and a river ran nearby.",
        '```json\n{"name": "Ada", "skills": ["math", "poetry"], "age": 36}\n```',
        '{"city": "Paris", "population": 2100000}',
        "SECTION 1\nRivers carry water to the sea.\n\nSECTION 2\nThe sea returns it as rain.",
        "Paragraph one talks about cats.\n***\nParagraph two talks about dogs.\n***\nParagraph three ends it.",
        "My answer is yes. Cats can learn their names, although they may not come when called.",
        "here is my answer in lowercase letters only. the sky is blue because air scatters blue light.",
        "THE SKY IS BLUE BECAUSE AIR SCATTERS SHORT BLUE WAVES MORE THAN RED ONES.",
        '"A journey of a thousand miles begins with a single step."',
        "Write a haiku about snow.\nSoft snow on the roof\nthe street lamps hum in the cold\nmorning comes slowly",
        "The first answer: tea cools faster in a wide cup.\n******\nThe second answer: stirring also helps it cool.",
        "Dear [Name],\n\nThank you for your letter of [Date]. We will reply by [Deadline].\n\nBest,\n[Your Name]",
        "Le soleil est une étoile. Il se trouve au centre de notre système solaire.",
        "El agua hierve a cien grados al nivel del mar.",
        "Today we walk.\n\nHowever, the rain may come.\n\nImagine a dry day instead.",
        "I think AI is useful. AI helps doctors, and AI helps farmers. Data matters most.",
        "- Apples\n- Pears\n-Plums\n* Grapes",
        "Here are the steps:\n1. Boil water.\n2. Add the pasta.\n3. Drain it.\n\nThat is all.",
        "It depends! some people like it. Others do not. Mr. Smith, for one, never does.",
        "Here is the *first* point, the **second** point and the ***third*** one.",
        "Is there anything else I can help with?",
        "Thank you for reading.\nP.P.S. The library opens at nine.",
        'Answer:\n\n"Bees make honey from nectar."\n\nI hope this helps!',
    ]


# Fixed, plausible arguments per id for the answer fixture (seeded, so the set never changes).
_FIXED = {
    "change_case:capital_word_frequency": lambda r: {
        "capital_frequency": r.randint(1, 4),
        "capital_relation": r.choice([LESS, LEAST]),
    },
    "combination:repeat_prompt": lambda r: {"prompt_to_repeat": "Write a haiku about snow."},
    "detectable_content:number_placeholders": lambda r: {"num_placeholders": r.randint(1, 4)},
    "detectable_content:postscript": lambda r: {"postscript_marker": r.choice(["P.S.", "P.P.S"])},
    "detectable_format:multiple_sections": lambda r: {
        "section_spliter": r.choice(["SECTION", "Section"]),
        "num_sections": r.randint(1, 3),
    },
    "detectable_format:number_bullet_lists": lambda r: {"num_bullets": r.randint(1, 4)},
    "detectable_format:number_highlighted_sections": lambda r: {"num_highlights": r.randint(1, 3)},
    "keywords:existence": lambda r: {"keywords": r.sample(WORDS, 2)},
    "keywords:forbidden_words": lambda r: {"forbidden_words": r.sample(WORDS, 2)},
    "keywords:frequency": lambda r: {
        "keyword": r.choice(WORDS),
        "frequency": r.randint(1, 3),
        "relation": r.choice([LESS, LEAST]),
    },
    "keywords:letter_frequency": lambda r: {
        "letter": r.choice("aeiost"),
        "let_frequency": r.randint(1, 8),
        "let_relation": r.choice([LESS, LEAST]),
    },
    "language:response_language": lambda r: {"language": r.choice(["en", "fr", "es"])},
    "length_constraints:nth_paragraph_first_word": lambda r: {
        "num_paragraphs": 3,
        "nth_paragraph": r.randint(1, 3),
        "first_word": r.choice(["today", "however", "imagine", "the"]),
    },
    "length_constraints:number_paragraphs": lambda r: {"num_paragraphs": r.randint(1, 3)},
    "length_constraints:number_sentences": lambda r: {
        "num_sentences": r.randint(1, 4),
        "relation": r.choice([LESS, LEAST]),
    },
    "length_constraints:number_words": lambda r: {
        "num_words": r.randint(5, 25),
        "relation": r.choice([LESS, LEAST]),
    },
    "startend:end_checker": lambda r: {"end_phrase": r.choice(END_PHRASES)},
}


def test_answer_fixture_agreement():
    rng = random.Random(14)
    compared = 0
    for answer in _answers():
        for iid in IFEVAL_IDS:
            kwargs = _FIXED[iid](rng) if iid in _FIXED else {}
            prompt = kwargs.get("prompt_to_repeat", "Answer the question.")
            row = _row(iid, kwargs, prompt)
            assert our_outcomes(row, answer) == reference_outcomes(row, answer), (iid, kwargs, answer)
            compared += 1
    COMPARED["answers"] += compared
    assert compared == len(_answers()) * 25


def test_at_least_a_thousand_responses_compared():
    """Totals of the tests above (they run first, in file order); skipped when run on its own."""
    if set(COMPARED) != set(IFEVAL_IDS) | {"answers"}:
        pytest.skip("run the whole file to count")
    print(f"\ncompared: {sum(COMPARED.values())} ({dict(COMPARED)})")
    assert sum(v for k, v in COMPARED.items() if k != "answers") >= PER_ID * 25 >= 1000


def test_score_both_reads_ifeval_and_heldout_files(tmp_path, capsys):
    """The helper the lead runs on real answers: both scorers, four accuracies each, same numbers."""
    answers = _answers()[:6]
    ids = ["punctuation:no_comma", "length_constraints:number_sentences", "detectable_format:title"]
    ids += ["keywords:existence", "startend:quotation", "detectable_content:postscript"]
    ifeval_rows = [
        {
            "key": k,
            "prompt": f"Prompt {k}",
            "instruction_id_list": [iid],
            "kwargs": [{"num_bullets": None, **(_FIXED[iid](random.Random(k)) if iid in _FIXED else {})}],
        }
        for k, iid in enumerate(ids)
    ]
    heldout = [
        {
            "id": "h1",
            "prompt": "Prompt 0",
            "constraints": [
                {"id": "cai:no_digits", "kwargs": {}},
                {"id": "punctuation:no_comma", "kwargs": {}},
            ],
        },
        {"id": "h2", "prompt": "Prompt 1", "constraints": [{"id": "cai:no_digits", "kwargs": {}}]},
    ]
    files = {"in.jsonl": ifeval_rows, "held.jsonl": heldout}
    files["resp.jsonl"] = [
        {"prompt": r["prompt"], "response": a} for r, a in zip(ifeval_rows, answers, strict=True)
    ]
    for name, rows in files.items():
        (tmp_path / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    both = score_both(rows_with_responses(tmp_path / "in.jsonl", tmp_path / "resp.jsonl"))
    assert both["ours"] == both["reference"] and both["differ"] == []
    assert 0 < both["ours"]["prompt_strict"] < 1
    assert "prompt_strict" in capsys.readouterr().out
    rows = rows_with_responses(tmp_path / "held.jsonl", tmp_path / "resp.jsonl")
    assert [(r["key"], r["instruction_id_list"]) for r in rows] == [("h1", ["punctuation:no_comma"])]


REAL_ANSWERS = Path(__file__).parent / "data" / "ifeval_real_answers.jsonl"


def _real_rows() -> list[dict]:
    """120 greedy answers of the real embedded Gemma-3-270M (60 of the base model, 60 after three
    stage-1 rounds; RESULTS.md, run G2) to our own held-out prompts, with their IFEval-id constraints."""
    return [json.loads(line) for line in REAL_ANSWERS.read_text(encoding="utf-8").splitlines()]


def test_real_model_answers_agree_on_their_own_instructions():
    rows = _real_rows()
    assert len(rows) == 120 and {r["model"].split()[1] for r in rows} == {"base", "round3"}
    for row in rows:
        assert our_outcomes(row, row["response"]) == reference_outcomes(row, row["response"]), row["key"]


def test_real_model_answers_agree_under_every_ifeval_id():
    rng = random.Random(15)
    for row in _real_rows()[::3]:  # 40 answers x 25 ids
        for iid in IFEVAL_IDS:
            kwargs = _FIXED[iid](rng) if iid in _FIXED else {}
            test_row = _row(iid, kwargs, kwargs.get("prompt_to_repeat", row["prompt"]))
            assert our_outcomes(test_row, row["response"]) == reference_outcomes(test_row, row["response"]), (
                iid,
                kwargs,
                row["key"],
            )


# ---- (c) files with a letter the reference draws at random --------------------------------------

DRAWN_ROWS = [  # our own prompts, with the two argument values of the official file
    {
        "key": 1122,
        "prompt": "Describe a lighthouse at night. Use the character # at least 3 times.",
        "instruction_id_list": ["keywords:letter_frequency", "punctuation:no_comma"],
        "kwargs": [{"letter": "#", "let_frequency": 3, "let_relation": LEAST}, {}],
    },
    {
        "key": 1129,
        "prompt": "Name a fruit. Use '!' fewer than 2 times.",
        "instruction_id_list": ["keywords:letter_frequency"],
        "kwargs": [{"letter": "!", "let_frequency": 2, "let_relation": LESS, "keywords": None}],
    },
]


def _reference_under_every_draw(row: dict, response: str) -> set[tuple]:
    """The reference's (strict, loose) outcomes under many states of the global random generator."""
    outcomes = set()
    state = random.getstate()
    try:
        for seed in range(40):
            random.seed(seed)
            strict, loose = reference_outcomes(row, response)
            outcomes.add((tuple(strict), tuple(loose)))
    finally:
        random.setstate(state)
    return outcomes


def test_non_letter_letters_load_and_score_with_a_seeded_draw(tmp_path):
    path = tmp_path / "official-like.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in DRAWN_ROWS))
    assert check_ifeval_file(path, "--ifeval") == 2
    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    log.addHandler(handler)
    try:
        rows = read_rows(path)
    finally:
        log.removeHandler(handler)
    assert len(seen) == 1 and "key 1122: '#'" in seen[0] and "key 1129: '!'" in seen[0]
    result = score(rows, {rows[0].prompt: "Three # # # marks", rows[1].prompt: "Kiwi."})
    used = [(d.key, d.index, d.given, d.used) for d in result.drawn_letters]
    assert used == [(1122, 0, "#", drawn_letter(1122, 0)), (1129, 0, "!", drawn_letter(1129, 0))]
    assert all(len(d.used) == 1 and d.used.islower() for d in result.drawn_letters)
    # The same file scores the same every time, and its imported records carry the drawn letter.
    assert score(read_rows(path, warn=False), {r.prompt: "Kiwi." for r in rows}) == score(
        rows, {r.prompt: "Kiwi." for r in rows}
    )
    assert to_instructions(rows)[1].constraints[0].kwargs["letter"] == drawn_letter(1129, 0)


@pytest.mark.parametrize(
    ("index", "response"),
    [
        (0, "1 2 3 ### 4 5 6"),  # no letter at all: 'at least 3' fails for every draw
        (1, "... 123 !!! ..."),  # no letter at all: 'less than 2' holds for every draw
        (1, ""),  # empty: follows nothing, whatever the draw
        (0, " ".join(string.ascii_letters * 3)),  # every letter 6 times: 'at least 3' holds for every draw
    ],
)
def test_seeded_draw_agrees_where_the_reference_is_deterministic(index, response):
    row = dict(DRAWN_ROWS[index])
    outcomes = _reference_under_every_draw(row, response)
    assert len(outcomes) == 1, "the reference's outcome here should not depend on its draw"
    strict, loose = outcomes.pop()
    assert score_rows([row], response) == [(list(strict), list(loose))]


def test_seeded_draw_is_the_reference_with_that_letter():
    """Where the reference's outcome does depend on its draw, ours is the reference's with our letter."""
    response = "aaaa bbbb cccc dddd the end"
    row = DRAWN_ROWS[0]
    # The draw decides, and strict and loose modes even draw apart (the reference rebuilds the checker).
    assert len(_reference_under_every_draw(row, response)) >= 2
    fixed = {**row, "kwargs": [{**row["kwargs"][0], "letter": drawn_letter(1122, 0)}, {}]}
    assert score_rows([row], response) == [tuple(map(list, reference_outcomes(fixed, response)))]


def score_rows(rows: list[dict], response: str) -> list[tuple[list[bool], list[bool]]]:
    """Our (strict, loose) outcomes per row through the file scorer (which resolves the letters)."""
    from cai_bootstrap.tasks.ifeval import IFEvalRow

    parsed = [IFEvalRow.model_validate(r) for r in rows]
    result = score(parsed, {r.prompt: response for r in parsed})
    return [(p.strict, p.loose) for p in result.prompts]
