"""Hypothesis strategies for adversarial IFEval cases: arguments per instruction id, and responses
shaped around each id's decision boundary (a marker one space off, a quote of the wrong kind, a
bullet without its space), so that both outcomes occur and every quirk of the rules is exercised.
"""

from __future__ import annotations

import json

from hypothesis import strategies as st

LESS, LEAST = "less than", "at least"
WORDS = ["river", "cat", "catalog", "sea", "Seashell", "AI", "data", "however", "today", "imagine"]
END_PHRASES = ["That is all.", "Thank you for reading.", "Is there anything else I can help with?", "hello"]
PROMPTS = ["Write a haiku about snow.", "What is AI?", "Describe the sea. Use P.S. at the end."]
SENTENCES = [
    "The river runs past the old mill.",
    "Cats sleep for most of the day!",
    "Is the sea warm in June?",
    "Dr. Smith arrived at 3 p.m. and left early.",
    "AI-POWERED tools, e.g. search engines, help a lot.",
    "Today we walk; however, it may rain.",
    "Le soleil se lève à l'est et se couche à l'ouest.",
    "El gato duerme en la casa de mi abuela.",
    "Der Hund spielt im Garten mit dem Ball.",
    "太陽は東から昇ります。",
    "Солнце встает на востоке.",
    "12345 678",
    "it works! lower-case start.",
    "Imagine a catalog of every data set.",
]
FRAGMENTS = [
    "P.S.", "p. s.", "P.P.S", "p.p.s.", "PS:", "***", "******", "* ", "*", "**", "- ", "-", "---",
    "[]", "[name]", "[ ]", "<<", ">>", "<<Title>>", "<< >>", '"', "\u201c", "\u201d", "'", "SECTION 1",
    "Section 2", "SUBSECTION 3", "Part 1", "```json", "```", "{", "}", '{"a": 1}', "[1, 2]", ",", "\uff0c",
    "My answer is yes.", "My answer is no.", "Mr.", "e.g.", "U.S.", "3.14", "!", "?", ".",
    "AI-POWERED", "DON'T", "HELLO", "hello", "\u00e9t\u00e9", "\t", " ", "\n", "\n\n", "\n\n\n",
    "\u200b", "\u00a0", "***bold***", "*it*", "**b**",
] + WORDS + END_PHRASES  # fmt: skip
SEPARATORS = ["", " ", "\n", "\n\n", ". ", "\n\n\n", " \n \n "]
PIECE = (
    st.sampled_from(SENTENCES)
    | st.sampled_from(FRAGMENTS)
    | st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=10)
)
REL = st.sampled_from([LESS, LEAST])
SMALL = st.integers(min_value=1, max_value=6)

KWARGS = {
    "change_case:capital_word_frequency": st.fixed_dictionaries({"capital_frequency": SMALL, "capital_relation": REL}),
    "change_case:english_capital": st.just({}),
    "change_case:english_lowercase": st.just({}),
    "combination:repeat_prompt": st.fixed_dictionaries({"prompt_to_repeat": st.sampled_from(PROMPTS)}),
    "combination:two_responses": st.just({}),
    "detectable_content:number_placeholders": st.fixed_dictionaries({"num_placeholders": SMALL}),
    "detectable_content:postscript": st.fixed_dictionaries(
        {"postscript_marker": st.sampled_from(["P.S.", "P.P.S", "PS:", "p.s.", " P.S. "])}
    ),
    "detectable_format:constrained_response": st.just({}),
    "detectable_format:json_format": st.just({}),
    "detectable_format:multiple_sections": st.fixed_dictionaries(
        {"section_spliter": st.sampled_from(["SECTION", "Section", "Part", " PARAGRAPH "]), "num_sections": SMALL}
    ),
    "detectable_format:number_bullet_lists": st.fixed_dictionaries({"num_bullets": SMALL}),
    "detectable_format:number_highlighted_sections": st.fixed_dictionaries({"num_highlights": SMALL}),
    "detectable_format:title": st.just({}),
    "keywords:existence": st.fixed_dictionaries({"keywords": st.lists(st.sampled_from(WORDS), min_size=1, max_size=3)}),
    "keywords:forbidden_words": st.fixed_dictionaries(
        {"forbidden_words": st.lists(st.sampled_from(WORDS), min_size=1, max_size=3)}
    ),
    "keywords:frequency": st.fixed_dictionaries({"keyword": st.sampled_from(WORDS), "frequency": SMALL, "relation": REL}),
    "keywords:letter_frequency": st.fixed_dictionaries(
        {"letter": st.sampled_from(list("aeiostzAE")), "let_frequency": SMALL, "let_relation": REL}
    ),
    "language:response_language": st.fixed_dictionaries(
        {"language": st.sampled_from(["en", "fr", "es", "de", "it", "pt", "ja", "ko", "ru", "ar"])}
    ),
    "length_constraints:nth_paragraph_first_word": SMALL.flatmap(
        lambda n: st.fixed_dictionaries(
            {
                "num_paragraphs": st.just(n),
                "nth_paragraph": st.integers(min_value=1, max_value=n),
                "first_word": st.sampled_from(WORDS),
            }
        )
    ),
    "length_constraints:number_paragraphs": st.fixed_dictionaries({"num_paragraphs": SMALL}),
    "length_constraints:number_sentences": st.fixed_dictionaries({"num_sentences": SMALL, "relation": REL}),
    "length_constraints:number_words": st.fixed_dictionaries(
        {"num_words": st.integers(min_value=1, max_value=30), "relation": REL}
    ),
    "punctuation:no_comma": st.just({}),
    "startend:end_checker": st.fixed_dictionaries({"end_phrase": st.sampled_from(END_PHRASES)}),
    "startend:quotation": st.just({}),
}  # fmt: skip


def _case(draw, text: str) -> str:
    """The text as written, or upper- or lower-cased, or with some words upper-cased."""
    how = draw(st.sampled_from(["same", "upper", "lower", "some"]))
    if how == "some":
        flags = draw(st.lists(st.booleans(), min_size=len(text.split()), max_size=len(text.split())))
        return " ".join(w.upper() if f else w for w, f in zip(text.split(), flags, strict=True))
    return {"same": text, "upper": text.upper(), "lower": text.lower()}[how]


def _joined(draw, pieces, separators=SEPARATORS, max_size=8) -> str:
    parts = draw(st.lists(pieces, max_size=max_size))
    return draw(st.sampled_from(separators)).join(parts)


def _marked(draw, marks: list[str], base: str) -> str:
    """`base` with some of `marks` put at random places (line starts, mid-line, ends)."""
    chosen = draw(st.lists(st.sampled_from(marks), max_size=9))
    for mark in chosen:
        at = draw(st.integers(min_value=0, max_value=len(base)))
        base = base[:at] + mark + base[at:]
    return base


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.sampled_from(WORDS),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(WORDS), inner, max_size=3),
    max_leaves=6,
)


ENGLISH = st.sampled_from([s for s in SENTENCES if s.isascii() and not s[0].isdigit()])
# A few plain sentences per language, for language:response_language.
BY_LANGUAGE = {
    "en": ["The children played in the park until dark.", "We will visit the museum on Sunday."],
    "fr": ["Les enfants jouent dans le parc jusqu'au soir.", "Nous visiterons le musée dimanche prochain."],
    "es": ["Los niños jugaron en el parque hasta la noche.", "Visitaremos el museo el domingo."],
    "de": ["Die Kinder spielten im Park bis zum Abend.", "Wir besuchen am Sonntag das Museum."],
    "it": ["I bambini hanno giocato nel parco fino a sera.", "Visiteremo il museo domenica prossima."],
    "pt": ["As crianças brincaram no parque até a noite.", "Vamos visitar o museu no domingo."],
    "ru": ["Дети играли в парке до вечера.", "Мы посетим музей в воскресенье."],
    "ja": ["子供たちは夜まで公園で遊びました。", "日曜日に博物館へ行きます。"],
    "ko": ["아이들은 밤까지 공원에서 놀았다.", "우리는 일요일에 박물관에 갈 것이다."],
    "ar": ["لعب الأطفال في الحديقة حتى المساء.", "سنزور المتحف يوم الأحد."],
}


def _near(draw, n: int) -> int:
    """A count at, just below or just above `n` (at least 0)."""
    return max(0, n + draw(st.sampled_from([-1, 0, 0, 0, 1])))


def _paragraphs(draw, kwargs: dict) -> str:
    """Paragraphs split by blank lines, the n-th opening with the word in some form; sometimes one
    break is not quite a blank line ('\\n \\n', '\\n') or the count is one off."""
    fw, nth = kwargs["first_word"], kwargs["nth_paragraph"]
    forms = [fw] * 4 + [fw.upper(), '"' + fw, "'" + fw, f"**{fw}**", fw + ",", fw + "!", "pre" + fw, "Other"]
    count = _near(draw, kwargs["num_paragraphs"])
    seps = ["\n\n"] * count
    if count and draw(st.integers(0, 3)) == 0:
        seps[draw(st.integers(0, count - 1))] = draw(st.sampled_from(["\n\n\n", "\n \n", "\n", "\n\n\n\n"]))
    out = []
    for k in range(1, count + 1):
        word = draw(st.sampled_from(forms)) if k == nth else draw(st.sampled_from(WORDS + ["The"]))
        out.append(f"{word} {draw(ENGLISH)}" + seps[k - 1])
    return draw(st.sampled_from(["", "", "", "\n\n", " "])) + "".join(out)


def _divided(draw, n: int) -> str:
    """About `n` parts divided by '***' in its various spellings, sometimes with outer dividers."""
    div = st.sampled_from(["\n***\n"] * 5 + [" *** ", "***", "\n\n***\n\n", "\n*** ***\n", "****"])
    piece = st.sampled_from(["", " ", "a ***bold*** word"]) if draw(st.integers(0, 4)) == 0 else ENGLISH
    parts = [draw(piece) for _ in range(_near(draw, n))]
    body = "".join(p + draw(div) for p in parts[:-1]) + (parts[-1] if parts else "")
    return draw(st.sampled_from(["", "***\n"])) + body + draw(st.sampled_from(["", "\n***", "\n***\n***"]))


def _two(draw) -> str:
    sep = st.sampled_from(["******", "******", "\n******\n", " ****** ", "*****", "*******"])
    count = draw(st.sampled_from([1, 2, 2, 2, 3]))
    parts = draw(st.lists(ENGLISH, min_size=count, max_size=count, unique=True))
    if draw(st.integers(0, 3)) == 0:  # an empty answer, or the same answer twice
        parts[draw(st.integers(0, count - 1))] = draw(st.sampled_from(["", " ", "\n", parts[0]]))
    body = "".join(p + draw(sep) for p in parts[:-1]) + parts[-1]
    return draw(st.sampled_from(["", "******\n"])) + body + draw(st.sampled_from(["", "\n******"]))


def _marks(iid: str, kwargs: dict) -> list[str]:
    """Strings that count, or nearly count, for `iid`, to be put into a response at random."""
    sp = kwargs.get("section_spliter", "SECTION").strip()
    words = kwargs.get("keywords") or kwargs.get("forbidden_words") or [kwargs.get("keyword", "cat")]
    return {
        "detectable_content:number_placeholders": ["[x]", "[x]", "[]", "[a\nb]", "[[y]]", "]", "[ "],
        "detectable_content:postscript": ["\nP.S. ", "p.s ", "P. S. ", "\nP.P.S ", "p. p. s", "PS: ", "ps."],
        "detectable_format:constrained_response": [
            "My answer is yes.",
            "my answer is no.",
            "My answer is maybe",
        ],
        "detectable_format:multiple_sections": [
            f"\n{sp} 1\n",
            f"{sp}2 ",
            f"SUB{sp} 3",
            f"{sp.lower()} 4",
            f"{sp} X",
        ],
        "detectable_format:number_bullet_lists": [
            "\n* a",
            "\n*b",
            "\n- c",
            "\n-d",
            "\n**e**",
            "\n---",
            "\n  * f",
            "\n+ g",
        ],
        "detectable_format:number_highlighted_sections": [
            "*x*",
            "**y**",
            "***z***",
            "* *",
            "** **",
            "*\n*",
            "**",
        ],
        "detectable_format:title": ["<<A title>>", "<< >>", "<<a\nb>>", "<<<x>>>", "<<>>", "<<*>>"],
        "punctuation:no_comma": [",", "\uff0c", "\u3001"],
    }.get(iid, [v for k in words for v in (k, k.upper(), k + "s", "pre" + k, k[:-1], f" {k} ")])


@st.composite
def _shaped(draw, iid: str, kwargs: dict) -> str:
    base = _joined(draw, PIECE)
    if iid == "language:response_language":
        code = draw(st.sampled_from([kwargs["language"]] * 3 + list(BY_LANGUAGE)))
        text = _joined(draw, st.sampled_from(BY_LANGUAGE[code]), [" ", "\n", "\n\n"], max_size=3)
        return text + draw(st.sampled_from(["", "", " " + draw(PIECE), "\n**Note:** 42"]))
    if iid == "length_constraints:number_sentences":
        count = _near(draw, kwargs["num_sentences"])
        return " ".join(draw(ENGLISH | PIECE) for _ in range(count))
    if iid.startswith("change_case:"):
        pieces = ENGLISH if iid.startswith("change_case:") and draw(st.booleans()) else ENGLISH | PIECE
        return _case(draw, _joined(draw, pieces, max_size=5))
    if iid == "combination:repeat_prompt":
        want = kwargs["prompt_to_repeat"]
        head = draw(
            st.sampled_from(
                [want, want.lower(), want.upper(), " " + want, want.replace(" ", "  "), want[:-1]]
            )
        )
        return head + draw(st.sampled_from(["", " ", "\n", "**"])) + base
    if iid == "combination:two_responses":
        return _two(draw)
    if iid == "detectable_format:json_format":
        body = json.dumps(draw(JSON_VALUES), indent=draw(st.sampled_from([None, 2])))
        fence = draw(
            st.sampled_from(["", "```json\n", "```JSON\n", "```Json", "```python\n", "```\n", " ```json"])
        )
        tail = draw(st.sampled_from(["", "\n```", "```", "\n```\n", " trailing words", "\n"]))
        return fence + body + tail
    if iid == "startend:quotation":
        left, right = draw(
            st.sampled_from([('"', '"'), ("\u201c", "\u201d"), ("'", "'"), ('"', ""), ("", "")])
        )
        return (
            draw(st.sampled_from(["", " ", "\n"]))
            + left
            + base
            + right
            + draw(st.sampled_from(["", " \n", "x"]))
        )
    if iid == "startend:end_checker":
        end = kwargs["end_phrase"]
        tail = draw(
            st.sampled_from(
                [end, end.lower(), end.upper(), end[:-1], end + "**", f'{end}"', f"{end}\u201d", ""]
            )
        )
        return base + draw(st.sampled_from(["", " ", "\n"])) + tail + draw(st.sampled_from(["", " \n", "x"]))
    if iid == "length_constraints:nth_paragraph_first_word":
        return _paragraphs(draw, kwargs)
    if iid == "length_constraints:number_paragraphs":
        return _divided(draw, kwargs["num_paragraphs"])
    if iid in (
        "length_constraints:number_sentences",
        "length_constraints:number_words",
        "keywords:letter_frequency",
    ):
        return base
    return _marked(draw, _marks(iid, kwargs), base)


@st.composite
def case(draw, iid: str) -> tuple[dict, str]:
    """Arguments for `iid` and a response shaped around its rule."""
    kwargs = draw(KWARGS[iid])
    return kwargs, draw(_shaped(iid, kwargs))
