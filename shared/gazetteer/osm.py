"""Read street segments and addresses from an OSM extract (.osm.pbf/.osm) or a GeoJSON file,
merge segments into named streets and count each street's addresses.

Which ways are streets: named `highway` ways of the types in STREET_HIGHWAYS - roads people live
on (residential up to trunk, which in cities are lined with homes) and named paths people walk
(pedestrian, footway, service, ...). Unnamed ways are dropped: a feed can't call them anything, and
a point on one still snaps to the nearest named street. Motorways, `*_link` slip roads, proposed,
under-construction and indoor ways (corridor) are never streets.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from hashlib import sha256
from pathlib import Path
from typing import Any

import numpy as np
import osmium
import shapely
from shapely.geometry import LineString, MultiLineString, shape
from shapely.geometry.base import BaseGeometry

from .geo import Projector
from .model import Street
from .names import name_key

__all__ = [
    "STREET_HIGHWAYS",
    "Address",
    "Extract",
    "PostcodePoint",
    "Segment",
    "count_addresses",
    "match_postcodes",
    "merge_segments",
    "normalise_postcode",
    "read_extract",
    "segment_order",
    "street_id",
]

STREET_HIGHWAYS = frozenset(
    {
        "residential",
        "living_street",
        "unclassified",
        "tertiary",
        "secondary",
        "primary",
        "trunk",
        "road",
        "pedestrian",
        "service",
        "footway",
        "path",
        "cycleway",
        "steps",
        "track",
        "bridleway",
    }
)
# Same-named segments this close (touching, or across a junction or a dual carriageway) are one street.
JOIN_DISTANCE_M = 50.0
# An address with addr:street goes to the nearest street of that name if it is this close...
NAMED_ADDRESS_MAX_M = 500.0
# ...otherwise (no addr:street, or no such street in the extract) to the nearest street this close.
UNNAMED_ADDRESS_MAX_M = 50.0
_PROGRESS_EVERY = 50_000


@dataclass(frozen=True)
class Segment:
    id: str  # "way/<osm id>" for OSM; the feature's `id` (or "feature/<n>") for GeoJSON
    name: str
    geometry: BaseGeometry  # LineString or MultiLineString, WGS84


@dataclass(frozen=True)
class Address:
    lon: float
    lat: float
    street_key: str | None  # name_key of addr:street
    housenumber: str
    unit: str | None  # addr:unit or addr:flats: flats sharing a house number are separate homes


@dataclass(frozen=True)
class PostcodePoint:
    """Where an OSM object tagged `addr:postcode` is, and the street it names (if it does)."""

    lon: float
    lat: float
    postcode: str  # normalise_postcode of addr:postcode
    street_key: str | None


@dataclass
class Extract:
    segments: list[Segment]
    addresses: list[Address]
    stats: Counter[str] = field(default_factory=Counter)
    postcodes: list[PostcodePoint] = field(default_factory=list)


_POSTCODE = re.compile(r"^([A-Z]{1,2}[0-9][A-Z0-9]?)\s*([0-9][A-Z]{2})$")


def normalise_postcode(text: str) -> str | None:
    """A UK postcode in its printed form ('nw19ls' -> 'NW1 9LS'), or None if it is not one."""
    m = _POSTCODE.match(re.sub(r"\s+", " ", text.strip().upper()))
    return f"{m.group(1)} {m.group(2)}" if m else None


def _postcode(lon: float, lat: float, tags: Any, out: Extract) -> None:  # osmium TagList or GeoJSON dict
    raw = tags.get("addr:postcode")
    if raw is None:
        return
    code = normalise_postcode(raw)
    if code is None:
        out.stats["skipped_bad_postcodes"] += 1
        return
    street = tags.get("addr:street")
    out.postcodes.append(PostcodePoint(lon, lat, code, name_key(street) if street else None))


def read_extract(path: Path, progress: Callable[[int], None] | None = None) -> Extract:
    """Segments and addresses of an OSM file (.osm.pbf, .osm, ...) or a GeoJSON FeatureCollection."""
    path = Path(path)
    if path.suffix.lower() in {".geojson", ".json"}:
        return _read_geojson(path)
    return _read_osm(path, progress)


def _address(lon: float, lat: float, tags: Any) -> Address:  # osmium TagList or GeoJSON properties
    street = tags.get("addr:street")
    return Address(
        lon,
        lat,
        name_key(street) if street else None,
        tags.get("addr:housenumber").strip(),
        tags.get("addr:unit") or tags.get("addr:flats"),
    )


def _read_osm(path: Path, progress: Callable[[int], None] | None) -> Extract:  # noqa: C901 - one pass, a branch per OSM object kind
    out, n = Extract([], []), 0
    # Areas too: a postcode tagged only on a multipolygon (a large block, a campus) still names streets.
    for n, obj in enumerate(osmium.FileProcessor(str(path)).with_locations().with_areas(), 1):
        if progress and n % _PROGRESS_EVERY == 0:
            progress(_PROGRESS_EVERY)
        tags = obj.tags
        if isinstance(obj, osmium.osm.Area):
            # Areas built from closed ways were read as ways; only relations' areas are new here.
            if not obj.from_way() and "addr:postcode" in tags:
                ring = [(nd.lon, nd.lat) for r in obj.outer_rings() for nd in r if nd.location.valid()]
                if ring:
                    lon, lat = np.mean(np.asarray(ring), axis=0)
                    _postcode(float(lon), float(lat), tags, out)
            continue
        if isinstance(obj, osmium.osm.Node):
            if obj.location.valid():
                if "addr:housenumber" in tags:
                    out.addresses.append(_address(obj.location.lon, obj.location.lat, tags))
                _postcode(obj.location.lon, obj.location.lat, tags, out)
            continue
        if not isinstance(obj, osmium.osm.Way):
            # Multipolygon buildings with addresses are rare; skipping them only under-counts,
            # which makes publication units larger (the safe direction).
            out.stats["skipped_relation_addresses"] += "addr:housenumber" in tags
            continue
        coords = [(nd.lon, nd.lat) for nd in obj.nodes if nd.location.valid()]
        if tags.get("highway") in STREET_HIGHWAYS and tags.get("name"):
            line = LineString(coords) if len(set(coords)) >= 2 else None
            if line is None:
                out.stats["skipped_degenerate_ways"] += 1  # clipped at the extract's edge
            else:
                out.segments.append(Segment(f"way/{obj.id}", tags["name"].strip(), line))
        if coords and ("addr:housenumber" in tags or "addr:postcode" in tags):
            lon, lat = np.mean(np.asarray(coords), axis=0)
            if "addr:housenumber" in tags:
                out.addresses.append(_address(float(lon), float(lat), tags))
            _postcode(float(lon), float(lat), tags, out)
    if progress:
        progress(n % _PROGRESS_EVERY)
    return out


def _read_geojson(path: Path) -> Extract:
    out = Extract([], [])
    for i, feature in enumerate(json.loads(path.read_text())["features"]):
        geometry, props = feature.get("geometry"), feature.get("properties") or {}
        if not geometry:
            continue
        geom = shape(geometry)
        if geom.geom_type in {"LineString", "MultiLineString"} and props.get("name"):
            ident = props.get("id", feature.get("id"))
            seg_id = str(ident) if ident is not None else f"feature/{i}"
            out.segments.append(Segment(seg_id, str(props["name"]).strip(), geom))
        elif geom.geom_type == "Point":
            if props.get("addr:housenumber"):
                out.addresses.append(_address(geom.x, geom.y, props))
            _postcode(geom.x, geom.y, props, out)
    return out


def segment_order(seg_id: str) -> str:
    """Sort key for segment ids: "way/99" before "way/100" (numbers compare as numbers)."""
    return re.sub(r"\d+", lambda m: m.group().zfill(20), seg_id)


def street_id(segment_ids: Sequence[str]) -> str:
    """Stable id: a hash of the street's lowest segment id, so re-imports keep street ids."""
    return "s-" + sha256(min(segment_ids, key=segment_order).encode()).hexdigest()[:12]


def merge_segments(segments: Sequence[Segment], projector: Projector) -> list[Street]:
    """Named streets from segments: same name key and within JOIN_DISTANCE_M of each other
    (transitively). The same name far apart (two "High Street"s) gives two streets."""
    if not segments:
        return []
    keys = np.asarray([name_key(s.name) for s in segments], dtype=object)
    metric = projector.to_metric(np.asarray([s.geometry for s in segments], dtype=object))
    left, right = shapely.STRtree(metric).query(metric, predicate="dwithin", distance=JOIN_DISTANCE_M)
    keep = (left < right) & (keys[left] == keys[right])
    parent = list(range(len(segments)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in zip(left[keep].tolist(), right[keep].tolist(), strict=True):
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    groups: dict[int, list[Segment]] = {}
    for i, seg in enumerate(segments):
        groups.setdefault(root(i), []).append(seg)
    streets = [_street(sorted(g, key=lambda s: segment_order(s.id))) for g in groups.values()]
    return sorted(streets, key=lambda s: s.id)


def _street(segs: list[Segment]) -> Street:
    names = Counter(s.name for s in segs)
    name = min(names, key=lambda n: (-names[n], n))  # the most used spelling
    parts = [p for s in segs for p in getattr(s.geometry, "geoms", [s.geometry])]
    ids = tuple(s.id for s in segs)
    return Street(street_id(ids), name, name_key(name), shapely.line_merge(MultiLineString(parts)), ids)


def count_addresses(
    streets: Sequence[Street], addresses: Sequence[Address], projector: Projector
) -> Counter[str]:
    """Set each street's address_count; returns how the addresses were matched.

    Distinct (street, house number, unit) are counted once: an address mapped both as a building and
    as an entrance node is one home. Addresses matching no street are not counted anywhere.
    """
    stats = Counter(dict.fromkeys(("by_name", "by_proximity", "unmatched", "duplicates", "counted"), 0))
    stats["read"] = len(addresses)
    for s in streets:
        s.address_count = 0
    if not streets or not addresses:
        stats["unmatched"] = len(addresses)
        return stats
    match = _match(streets, addresses, projector, stats)
    seen: set[tuple[int, str, str | None]] = set()
    for i in np.flatnonzero(match >= 0).tolist():
        a = addresses[i]
        home = (int(match[i]), a.housenumber.casefold(), a.unit)
        if home in seen:
            stats["duplicates"] += 1
            continue
        seen.add(home)
        streets[home[0]].address_count += 1
    stats["counted"] = len(seen)
    return stats


def _match(
    streets: Sequence[Street],
    points_: Sequence[Address | PostcodePoint],
    projector: Projector,
    stats: Counter[str],
) -> np.ndarray:
    """Index of the street each point (`.lon`, `.lat`, `.street_key`) belongs to, or -1: the
    nearest street of the name it gives, else the nearest street close by."""
    geoms = projector.to_metric(np.asarray([s.geometry for s in streets], dtype=object))
    x, y = projector.xy([a.lon for a in points_], [a.lat for a in points_])
    points = shapely.points(x, y)
    match = np.full(len(points_), -1)
    by_key: dict[str, list[int]] = {}
    for j, s in enumerate(streets):
        by_key.setdefault(s.norm_name, []).append(j)
    wanted: dict[str, list[int]] = {}
    for i, a in enumerate(points_):
        if a.street_key in by_key:
            wanted.setdefault(a.street_key, []).append(i)
    for key, idx in wanted.items():
        cands = by_key[key]
        dist = shapely.distance(points[idx][:, None], geoms[cands][None, :])
        best = dist.argmin(axis=1)
        close = dist[np.arange(len(idx)), best] <= NAMED_ADDRESS_MAX_M
        match[np.asarray(idx)[close]] = np.asarray(cands)[best[close]]
    stats["by_name"] = int((match >= 0).sum())
    rest = np.flatnonzero(match < 0)
    src, dst = shapely.STRtree(geoms).query_nearest(
        points[rest], max_distance=UNNAMED_ADDRESS_MAX_M, all_matches=False
    )
    match[rest[src]] = dst
    stats["by_proximity"] = len(src)
    stats["unmatched"] = int((match < 0).sum())
    return match


def match_postcodes(
    streets: Sequence[Street], points: Sequence[PostcodePoint], projector: Projector
) -> tuple[dict[str, tuple[str, ...]], Counter[str]]:
    """Postcode -> ids of its streets (most-tagged first), and how the tagged objects matched.

    Objects are matched to streets as addresses are: the street `addr:street` names, else the
    nearest one close by; the rest (a postcode on a park, say) add nothing.
    """
    stats = Counter(dict.fromkeys(("read", "by_name", "by_proximity", "unmatched"), 0))
    stats["read"] = len(points)
    if not streets or not points:
        stats["unmatched"] = len(points)
        stats["postcodes"] = stats["pairs"] = 0
        return {}, stats
    match = _match(streets, points, projector, stats)
    tally: dict[str, Counter[str]] = {}
    for i in np.flatnonzero(match >= 0).tolist():
        tally.setdefault(points[i].postcode, Counter())[streets[int(match[i])].id] += 1
    out = {
        code: tuple(sid for sid, _ in sorted(c.items(), key=lambda kv: (-kv[1], kv[0])))
        for code, c in sorted(tally.items())
    }
    stats["postcodes"] = len(out)
    stats["pairs"] = sum(len(v) for v in out.values())
    return out, stats
