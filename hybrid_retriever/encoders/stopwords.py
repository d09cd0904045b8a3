"""Stopword lists for the BM25 encoder, one per language the Snowball stemmer reads.

Small on purpose: BM25's IDF already makes frequent words cheap, so a list only needs
the few function words so frequent that they would fill a document's vector and tie
every query to every document. English is Lucene's ``EnglishAnalyzer`` default set
(33 words), the set behind the Anserini / Pyserini BM25 baselines on BEIR-style corpora.
The other lists with words are the commonest articles, prepositions, conjunctions and
forms of "to be" of their language, including elided forms that the tokeniser cuts off
at the apostrophe (French ``l'``, ``d'``, ``qu'``; Italian ``l'``). Languages with an
empty list are stemmed but keep every word.

Words are matched after lowercasing and Unicode NFKC normalisation, before stemming.
"""

from __future__ import annotations

from types import MappingProxyType

_ENGLISH = """
a an and are as at be but by for if in into is it no not of on or such that the their
then there these they this to was will with
"""
_FRENCH = """
a au aux avec ce ces cette d dans de des du elle elles en est et il ils l la le les
leur leurs ne ou par pas pour qu que qui sa se ses son sont sur un une y à
"""
_GERMAN = """
als am an auch auf aus bei das dass dem den der des die ein eine einem einen einer
eines er es für im in ist mit nicht oder sich sie sind und von vom war werden wird zu
zum zur
"""
_SPANISH = """
a al como con de del e el en es la las lo los no o para por que se son su sus u un
una unas unos y
"""
_ITALIAN = """
a al alla che come con da dei del della delle di e ed gli i il in l la le lo non o per
si su un una uno è
"""
_PORTUGUESE = """
a ao aos as com da das de do dos e em na nas no nos não o os ou para por que se um
uma é
"""
_DUTCH = """
aan als bij de die dat een en er het in is met niet of om ook op te van voor zijn
"""

_WITH_LISTS = {
    "dutch": _DUTCH,
    "english": _ENGLISH,
    "french": _FRENCH,
    "german": _GERMAN,
    "italian": _ITALIAN,
    "portuguese": _PORTUGUESE,
    "spanish": _SPANISH,
}

SUPPORTED_LANGUAGES: tuple[str, ...] = (
    "arabic",
    "armenian",
    "basque",
    "catalan",
    "czech",
    "danish",
    "dutch",
    "english",
    "esperanto",
    "estonian",
    "finnish",
    "french",
    "german",
    "greek",
    "hindi",
    "hungarian",
    "indonesian",
    "irish",
    "italian",
    "lithuanian",
    "nepali",
    "norwegian",
    "persian",
    "polish",
    "portuguese",
    "romanian",
    "russian",
    "serbian",
    "sesotho",
    "spanish",
    "swedish",
    "tamil",
    "turkish",
    "yiddish",
)
"""The Snowball stemmers of PyStemmer 3.1 (its ``porter`` variants left out: they are
alternative English and Dutch algorithms, not languages)."""

STOPWORDS: MappingProxyType[str, frozenset[str]] = MappingProxyType(
    {language: frozenset(_WITH_LISTS.get(language, "").split()) for language in SUPPORTED_LANGUAGES}
)
"""Language -> its default stopwords (empty for the languages without a list)."""
