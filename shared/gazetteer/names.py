"""Street-name normalisation: one key for matching and merging, one plain form for prefix search."""

from __future__ import annotations

import re
import unicodedata

__all__ = ["STREET_TYPES", "name_key", "plain_name"]

# Common street-type words and their abbreviations share one canonical token, so "Agar Gr",
# "Agar Grove" and "AGAR GROVE" are one street. "st" stands for both "street" and "saint": the
# two never collide in practice and mapping both avoids guessing which one an "St" means.
_CANONICAL = {
    "street": "st",
    "saint": "st",
    "road": "rd",
    "avenue": "ave",
    "av": "ave",
    "lane": "ln",
    "place": "pl",
    "square": "sq",
    "gardens": "gdns",
    "crescent": "cres",
    "terrace": "ter",
    "terr": "ter",
    "court": "ct",
    "drive": "dr",
    "grove": "gr",
    "close": "cl",
    "mount": "mt",
    "parade": "pde",
    "strasse": "str",
}
# Spelled-out street-type word -> its canonical token (read-only; the search corrects typos in them).
STREET_TYPES = _CANONICAL
_WORD = re.compile(r"[^\W_]+")


def _tokens(text: str) -> list[str]:
    decomposed = unicodedata.normalize("NFKD", text.casefold().replace("&", " and "))
    ascii_ish = "".join(c for c in decomposed if not unicodedata.combining(c))
    # Apostrophes join ("St John's" -> "johns"); every other punctuation mark separates words.
    return _WORD.findall(re.sub(r"['’`]", "", ascii_ish))


def plain_name(text: str) -> str:
    """Case-, accent- and punctuation-insensitive form: 'St. John's Wood Rd' -> 'st johns wood rd'."""
    return " ".join(_tokens(text))


def name_key(text: str) -> str:
    """Matching key: the plain form with street-type words canonicalised ('agar grove' -> 'agar gr')."""
    return " ".join(_CANONICAL.get(t, t) for t in _tokens(text))
