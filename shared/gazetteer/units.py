"""Publication units: fixed groups of adjoining streets covering >= N addresses (docs/privacy.md rule 3).

Computed from the gazetteer alone (never from signals), deterministic, one unit per street, never
across a ward boundary. Greedy agglomeration inside each ward: a street with enough addresses is
its own unit; the smallest short-of-threshold group repeatedly merges with its smallest touching
short neighbour, or, when only complete units touch it, into the smallest of those; a group touching
nothing merges with the nearest group. A ward whose streets all together fall short becomes one
unit (is_ward) that is not publishable.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from hashlib import sha256
from typing import Any

import numpy as np
import shapely

from shared.privacy import MIN_STREET_ADDRESSES, MIN_UNIT_ADDRESSES

from .geo import Projector
from .model import Street, Unit

__all__ = ["PERSON_MIN_ADDRESSES", "PLACE_MIN_ADDRESSES", "TOUCH_DISTANCE_M", "build_units"]

# The floors are the privacy policy's (shared.privacy), named here as the unit builder uses them.
PERSON_MIN_ADDRESSES = MIN_UNIT_ADDRESSES
PLACE_MIN_ADDRESSES = MIN_STREET_ADDRESSES
# Streets this close adjoin (they meet at a junction; mapped lines rarely meet exactly).
TOUCH_DISTANCE_M = 20.0


def build_units(
    streets: Sequence[Street], min_addresses: int, projector: Projector | None = None
) -> list[Unit]:
    """Units covering every street exactly once, sorted by id."""
    if not streets:
        return []
    ordered = sorted(streets, key=lambda s: s.id)
    projector = projector or Projector.for_geometries([s.geometry for s in ordered])
    geoms = projector.to_metric(np.asarray([s.geometry for s in ordered], dtype=object))
    by_ward: dict[str | None, list[int]] = {}
    for i, s in enumerate(ordered):
        by_ward.setdefault(s.ward_code, []).append(i)
    units = []
    for ward, idx in by_ward.items():
        members = [ordered[i] for i in idx]
        for cluster in _agglomerate(members, geoms[idx], min_addresses):
            units.append(
                _unit(
                    [members[i] for i in cluster],
                    min_addresses,
                    whole_ward=ward is not None and len(cluster) == len(members),
                )
            )
    return sorted(units, key=lambda u: u.id)


def _agglomerate(streets: list[Street], geoms: np.ndarray, threshold: int) -> list[list[int]]:
    """Clusters (lists of indices into `streets`, which are sorted by id) reaching the threshold."""
    n = len(streets)
    count = {i: s.address_count for i, s in enumerate(streets)}
    if sum(count.values()) < threshold:
        return [list(range(n))]
    tree = shapely.STRtree(geoms)
    left, right = tree.query(geoms, predicate="dwithin", distance=TOUCH_DISTANCE_M)
    adjacent: list[set[int]] = [set() for _ in range(n)]
    for a, b in zip(left.tolist(), right.tolist(), strict=True):
        if a != b:
            adjacent[a].add(b)
    # A cluster is keyed by its lowest member index, i.e. its lowest street id: deterministic.
    owner = list(range(n))
    members = {i: [i] for i in range(n)}
    heap = [(c, i) for i, c in count.items() if c < threshold]
    heapq.heapify(heap)
    while heap and len(members) > 1:
        c, k = heapq.heappop(heap)
        if k not in members or count[k] != c:
            continue  # stale: merged or grown since it was queued
        touching = {owner[j] for i in members[k] for j in adjacent[i]} - {k}
        short = [m for m in touching if count[m] < threshold]
        if short or touching:
            target = min(short or touching, key=lambda m: (count[m], m))
        else:
            target = _nearest(k, members, owner, geoms, tree)
        keep, gone = min(k, target), max(k, target)
        for i in members[gone]:
            owner[i] = keep
        members[keep] += members.pop(gone)
        count[keep] += count.pop(gone)
        if count[keep] < threshold:
            heapq.heappush(heap, (count[keep], keep))
    return [sorted(m) for _, m in sorted(members.items())]


def _nearest(k: int, members: dict[int, list[int]], owner: list[int], geoms: np.ndarray, tree: Any) -> int:
    """The cluster nearest to cluster k (which touches no other), ties to the lowest key."""
    shape_k = shapely.union_all(geoms[members[k]])
    reach = TOUCH_DISTANCE_M * 4
    while True:
        hits = [j for j in tree.query(shape_k, predicate="dwithin", distance=reach).tolist() if owner[j] != k]
        if hits:
            dist = shapely.distance(shape_k, geoms[hits])
            nearest: int = min(zip(dist.tolist(), (owner[j] for j in hits), strict=True))[1]
            return nearest
        reach *= 4


def _unit(streets: list[Street], min_addresses: int, *, whole_ward: bool) -> Unit:
    ids = tuple(sorted(s.id for s in streets))
    total = sum(s.address_count for s in streets)
    return Unit(
        id=f"u{min_addresses}-" + sha256(",".join(ids).encode()).hexdigest()[:12],
        min_addresses=min_addresses,
        street_ids=ids,
        ward_code=streets[0].ward_code,
        is_ward=whole_ward,
        publishable=total >= min_addresses,
        address_count=total,
        name=_name(streets, whole_ward),
    )


def _name(streets: list[Street], whole_ward: bool) -> str:
    if whole_ward and streets[0].ward_name:
        return f"{streets[0].ward_name} ward"
    main = min(streets, key=lambda s: (-s.address_count, s.name, s.id))
    others = len({s.norm_name for s in streets} - {main.norm_name})
    if not others:
        return main.name
    return f"{main.name} and {others} nearby street{'s' if others > 1 else ''}"
