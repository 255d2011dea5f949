"""Find a place the way residents type it: a postcode (full or partial) or a street name with typos,
abbreviations, missing apostrophes or a leading "the"; duplicate names told apart by ward and a
nearby street ("Camden Square, off Cantelowes Road, Camden Square")."""

from __future__ import annotations

import re
from bisect import bisect_left
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import shapely
from rapidfuzz import fuzz, process
from rapidfuzz.distance import OSA

from .model import Gazetteer, Street
from .names import STREET_TYPES, name_key
from .osm import normalise_postcode

__all__ = ["Found", "StreetFinder"]

# Fuzzy matches scoring below this (0-100, rapidfuzz WRatio) are not shown.
MIN_SCORE = 72
# Names scored in full per search: those sharing most trigrams with the query (as pg_trgm finds
# them), plus those starting with it. Scoring every name costs ~0.3 s with 100,000 streets.
CANDIDATES = 300
# Streets whose lines come this close count as "nearby" when telling same-named streets apart.
NEARBY_M = 30.0
# An outward code and, optionally, the start of the inward code: "NW1", "NW1 9", "nw19l".
_PARTIAL_POSTCODE = re.compile(r"^[A-Z]{1,2}[0-9][A-Z0-9]?(\s*[0-9][A-Z]{0,1})?$")
_THE = re.compile(r"^(the )+")
_POSTCODE_IN_TEXT = re.compile(r"\b[A-Z]{1,2}[0-9][A-Z0-9]?\s*[0-9][A-Z]{2}\b")
# "12", "12a", "12-14" before a street name: not part of it.
_HOUSE_NUMBER = re.compile(r"^\s*[0-9]+[a-z]?(\s*-\s*[0-9]+[a-z]?)?\s+", re.I)
# Street-type words (canonical forms, see names.py) are compared apart from the rest of the name, so
# "camdn rd" is scored on "camdn" ~ "camden" and only then preferred for being a road.
_TYPES = frozenset("st rd ave ln pl sq gdns cres ter ct dr gr cl mt pde way mews walk row yard".split())
# Shorthand residents type that names.py does not canonicalise (it would change stored keys).
_SHORTHAND = {
    "x": "cross",
    "pk": "park",
    "gt": "great",
    "twn": "town",
    "n": "north",
    "s": "south",
    "e": "east",
    "w": "west",
}
# Street-type words as residents spell them out, for correcting a typo in one ("camden mqws").
_TYPE_WORDS = {
    **{w: c for w, c in STREET_TYPES.items() if c in _TYPES},
    **{t: t for t in _TYPES if len(t) >= 3},
}
# Type words to split off a run-together name ("camdensquare", "bloomsburyway"), longest first.
_SPLITTABLE = sorted((w for w in _TYPE_WORDS if len(w) >= 3), key=len, reverse=True)


def _score(query: str, choice: str, **_: object) -> float:
    """rapidfuzz's WRatio, except that a name shorter than the query is compared whole: "heathctoe"
    is Heathcote, not Heath (WRatio would find "heath" inside it and score it higher)."""
    if len(choice) < len(query):
        return fuzz.ratio(query, choice)
    return fuzz.WRatio(query, choice)


@dataclass(frozen=True)
class Found:
    """What a search found. `kind`: postcode, postcodes (candidates for a partial one),
    unknown_postcode, streets, or nothing."""

    kind: str
    query: str
    streets: list[Street] = field(default_factory=list)
    postcode: str | None = None
    postcodes: list[str] = field(default_factory=list)


def _key(text: str) -> str:
    return _THE.sub("", name_key(text))


def _trigrams(text: str) -> set[str]:
    """pg_trgm-style trigrams: each word padded with two spaces before and one after."""
    grams: set[str] = set()
    for word in text.split():
        padded = f"  {word} "
        grams.update(padded[i : i + 3] for i in range(len(padded) - 2))
    return grams


def _street_part(query: str) -> str:
    """The street name in a typed address: no flat or house number, no town or postcode after it."""
    for part in query.split(","):
        part = _POSTCODE_IN_TEXT.sub("", _HOUSE_NUMBER.sub("", part.strip()).upper()).strip()
        part = re.sub(r"\s+[A-Z]{1,2}[0-9][A-Z0-9]?$", "", part)  # an outward code: "... NW1"
        part = re.sub(r"(\s+(LONDON|UK|ENGLAND))+$", "", part)  # a town typed after the street
        if re.search(r"[A-Z]{3}", part) and not re.fullmatch(r"(FLAT|APARTMENT|UNIT)\s+\w+", part):
            return part
    return query


def _core(key: str) -> str:
    """The key without its street-type words ("camden rd" -> "camden"); the key if that is all."""
    words = [w for w in key.split() if w not in _TYPES]
    return " ".join(words) or key


class StreetFinder:
    """Search over one in-memory gazetteer (built lazily; the feeds keep one per loaded gazetteer)."""

    def __init__(self, gazetteer: Gazetteer) -> None:
        self.gazetteer = gazetteer

    @cached_property
    def _cores(self) -> tuple[list[str], list[list[tuple[str, list[Street]]]]]:
        """Distinct name cores, and for each the (key, streets) sharing it (busiest street first)."""
        by_key: dict[str, list[Street]] = {}
        for s in sorted(self.gazetteer.streets.values(), key=lambda s: (-s.address_count, s.name, s.id)):
            by_key.setdefault(_key(s.name), []).append(s)
        by_core: dict[str, list[tuple[str, list[Street]]]] = {}
        for key in sorted(by_key, key=lambda k: (-by_key[k][0].address_count, k)):
            by_core.setdefault(_core(key), []).append((key, by_key[key]))
        cores = sorted(by_core)
        return cores, [by_core[c] for c in cores]

    @cached_property
    def _compact_postcodes(self) -> list[tuple[str, str]]:
        return sorted((p.replace(" ", ""), p) for p in self.gazetteer.postcodes)

    def warm(self) -> None:
        """Build the search index now (seconds for 100,000 streets) rather than on the first search."""
        _ = self._postings, self._vocabulary, self._compact_postcodes, self._namesakes, self._index

    def find(self, query: str, limit: int = 10) -> Found:
        q = " ".join(query.split())
        if not q:
            return Found("nothing", q)
        full = normalise_postcode(q)
        if full is not None:
            ids = self.gazetteer.postcodes.get(full)
            if ids is None:
                return Found("unknown_postcode", q, postcode=full)
            return Found("postcode", q, [self.gazetteer.streets[i] for i in ids], postcode=full)
        # A whole address ("12 Agar Grove, London NW1 9SL"): a postcode we know in it decides.
        inside = _POSTCODE_IN_TEXT.search(q.upper())
        code = normalise_postcode(inside.group()) if inside else None
        if code in self.gazetteer.postcodes:
            ids = self.gazetteer.postcodes[code]
            return Found("postcode", q, [self.gazetteer.streets[i] for i in ids], postcode=code)
        upper = q.upper()
        if _PARTIAL_POSTCODE.match(upper):
            codes = self.postcodes_starting(upper, limit=50)
            if codes:
                return Found("postcodes", q, postcodes=codes)
        streets = self.streets(_street_part(q), limit)
        return Found("streets" if streets else "nothing", q, streets)

    def postcodes_starting(self, partial: str, limit: int = 50) -> list[str]:
        """Known postcodes beginning with `partial` (spaces ignored: "nw19" finds "NW1 9LS")."""
        compact = re.sub(r"\s+", "", partial.upper())
        pairs = self._compact_postcodes
        lo = _bisect(pairs, compact)
        out: list[str] = []
        for c, code in pairs[lo:]:
            if not c.startswith(compact) or len(out) >= limit:
                break
            out.append(code)
        return out

    def streets(self, query: str, limit: int = 10) -> list[Street]:
        """Streets ranked by how well their name matches: the whole name, then its start, then the
        start of a word, then spelling similarity (typos, missing letters)."""
        typed = " ".join(_SHORTHAND.get(w, w) for w in _key(query).split())
        if not typed:
            return []
        # As typed, and with a misspelt or run-in street type fixed: the better match of the two wins
        # ("kinsgway" is Kingsway as typed; "bloomsburyway" is Bloomsbury Way once split).
        best: dict[str, tuple[Any, ...]] = {}
        for q in dict.fromkeys((typed, self._fix_type(typed))):
            for row in self._ranked(q, limit):
                if row[3] not in best or row[:3] < best[row[3]][:3]:
                    best[row[3]] = row
        ranked = list(best.values())
        ranked.sort(key=lambda r: r[:4])
        out: list[Street] = []
        for *_, streets in ranked:
            out.extend(streets)
            if len(out) >= limit:
                break
        return out[:limit]

    def _ranked(self, q: str, limit: int) -> list[tuple[Any, ...]]:
        """(-score, -addresses, rank, key, streets) of the names matching the normalised query."""
        core, types = _core(q), set(q.split()) & _TYPES
        cores, groups = self._cores
        ids = self._candidates(core)
        hits = process.extract(
            core,
            [cores[i] for i in ids],
            scorer=_score,
            processor=None,
            limit=max(limit * 3, 30),
            score_cutoff=MIN_SCORE,
        )
        ranked = []
        for _, score, j in hits:
            for rank, (key, streets) in enumerate(groups[ids[j]]):
                words = set(key.split())
                bonus = (
                    (30 if key == q else 20 if key.startswith(q) else 10 if f" {q}" in f" {key}" else 0)
                    + 10 * len(types & words)
                    - 5 * len(types - words)
                )
                ranked.append((-(score + bonus), -streets[0].address_count, rank, key, streets))
        return ranked

    @cached_property
    def _vocabulary(self) -> frozenset[str]:
        return frozenset(w for core in self._cores[0] for w in core.split())

    def _fix_type(self, q: str) -> str:
        """A misspelt street-type word at the end ("rosslyn ews", "redington gardesn") becomes the
        type, and one run into the name is split off ("camdensquare"), unless some street's name has
        that word."""
        *rest, last = q.split() or [""]
        if last in _TYPES or last in self._vocabulary or len(last) < 3:
            return q
        joined = next((w for w in _SPLITTABLE if last.endswith(w) and len(last) - len(w) >= 4), None)
        if joined:  # "camdensquare" -> "camden sq"
            return " ".join([*rest, last[: -len(joined)], _TYPE_WORDS[joined]])
        if not rest:
            return q
        best = min(_TYPE_WORDS, key=lambda w: (OSA.distance(last, w), w))
        if OSA.distance(last, best) <= (1 if len(best) <= 5 else 2):
            return " ".join([*rest, _TYPE_WORDS[best]])
        return q

    @cached_property
    def _postings(self) -> dict[str, np.ndarray]:
        """Trigram -> indexes of the name cores that contain it."""
        postings: dict[str, list[int]] = {}
        for i, core in enumerate(self._cores[0]):
            for gram in _trigrams(core):
                postings.setdefault(gram, []).append(i)
        return {g: np.asarray(ids, dtype=np.int32) for g, ids in postings.items()}

    def _candidates(self, core: str) -> list[int]:
        """Indexes of the cores worth scoring for `core`: all of them when there are few."""
        cores = self._cores[0]
        if len(cores) <= CANDIDATES:
            return list(range(len(cores)))
        found: set[int] = set()
        lists = [self._postings[g] for g in _trigrams(core) if g in self._postings]
        if lists:
            counts = np.bincount(np.concatenate(lists), minlength=len(cores))
            top = np.argpartition(-counts, CANDIDATES)[:CANDIDATES]
            found.update(top[counts[top] > 0].tolist())
        start = bisect_left(cores, core)
        for i in range(start, min(start + CANDIDATES, len(cores))):
            if not cores[i].startswith(core):
                break
            found.add(i)
        return sorted(found)

    def label(self, street: Street) -> str:
        """The street's name, with a nearby street when another street has the same name, and its
        ward: "Camden Square, off Camden Road, Cantelowes"."""
        parts = [street.name]
        if street.id in self._namesakes:
            near = self.nearby(street)
            if near is not None:
                parts.append(f"off {near.name}")
        if street.ward_name:
            parts.append(street.ward_name)
        return ", ".join(parts)

    @cached_property
    def _namesakes(self) -> dict[str, list[Street]]:
        """Street id -> the other streets with the same name key (only for names used twice or more)."""
        by_key: dict[str, list[Street]] = {}
        for s in self.gazetteer.streets.values():
            by_key.setdefault(s.norm_name, []).append(s)
        return {
            s.id: [o for o in group if o.id != s.id]
            for group in by_key.values()
            if len(group) > 1
            for s in group
        }

    @cached_property
    def _tree(self) -> tuple[list[str], np.ndarray, shapely.STRtree]:
        ids = sorted(self.gazetteer.streets)
        geoms = self.gazetteer.projector.to_metric(
            np.asarray([self.gazetteer.streets[i].geometry for i in ids], dtype=object)
        )
        return ids, geoms, shapely.STRtree(geoms)

    def _near(self, street: Street) -> list[Street]:
        """Differently named streets within NEARBY_M of this one, busiest and longest first."""
        ids, geoms, tree = self._tree
        me = geoms[self._index[street.id]]
        found = []
        for j in tree.query(me, predicate="dwithin", distance=NEARBY_M).tolist():
            other = self.gazetteer.streets[ids[j]]
            if other.norm_name != street.norm_name:
                found.append(((-other.address_count, -float(shapely.length(geoms[j])), other.name), other))
        return [o for _, o in sorted(found, key=lambda f: f[0])]

    @cached_property
    def _index(self) -> dict[str, int]:
        return {sid: i for i, sid in enumerate(self._tree[0])}

    def nearby(self, street: Street) -> Street | None:
        """A street near this one (a junction, usually) that its namesakes are not also near, if any."""
        near = self._near(street)
        shared = {o.id for s in self._namesakes.get(street.id, ()) for o in self._near(s)}
        return next((o for o in near if o.id not in shared), near[0] if near else None)


def _bisect(pairs: list[tuple[str, str]], prefix: str) -> int:
    lo, hi = 0, len(pairs)
    while lo < hi:
        mid = (lo + hi) // 2
        if pairs[mid][0] < prefix:
            lo = mid + 1
        else:
            hi = mid
    return lo
