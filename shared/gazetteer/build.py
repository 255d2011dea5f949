"""Build a Gazetteer from an extract and optional ward, LSOA and boundary files."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .boundaries import assign_areas, read_areas, read_boundary, within_boundary
from .geo import Projector
from .model import Gazetteer, Ward
from .osm import count_addresses, match_postcodes, merge_segments, read_extract
from .units import PERSON_MIN_ADDRESSES, PLACE_MIN_ADDRESSES, build_units

__all__ = ["DEFAULT_THRESHOLDS", "ImportReport", "build_gazetteer", "file_sha256"]

DEFAULT_THRESHOLDS = (PLACE_MIN_ADDRESSES, PERSON_MIN_ADDRESSES)


@dataclass(frozen=True)
class ImportReport:
    source: str
    sha256: str
    segments: int
    streets: int
    addresses: dict[str, int]  # read, by_name, by_proximity, unmatched, duplicates, counted
    units: dict[int, int]  # threshold -> number of units
    skipped: dict[str, int] = field(default_factory=dict)
    postcodes: dict[str, int] = field(default_factory=dict)  # read, by_name, ..., postcodes, pairs

    def as_counts(self) -> dict[str, int | dict[str, int]]:
        return {
            "segments": self.segments,
            "streets": self.streets,
            "addresses": self.addresses,
            "postcodes": self.postcodes,
            "units": {str(k): v for k, v in self.units.items()},
            "skipped": self.skipped,
        }


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def build_gazetteer(
    path: Path,
    *,
    wards: Path | None = None,
    lsoas: Path | None = None,
    boundary: Path | None = None,
    thresholds: Sequence[int] = DEFAULT_THRESHOLDS,
    progress: Callable[[int], None] | None = None,
) -> tuple[Gazetteer, ImportReport]:
    """Read, merge, count, assign areas and compute units. Same inputs give the same result."""
    extract = read_extract(Path(path), progress)
    if not extract.segments:
        raise ValueError(f"{path}: no named streets found")
    projector = Projector.for_geometries([s.geometry for s in extract.segments])
    streets = merge_segments(extract.segments, projector)
    area = read_boundary(boundary) if boundary else None
    if area is not None:
        streets = within_boundary(streets, area, projector)
        if not streets:
            raise ValueError(f"{path}: no street lies inside the boundary {boundary}")
    matched = count_addresses(streets, extract.addresses, projector)
    postcodes, postcode_stats = match_postcodes(streets, extract.postcodes, projector)
    ward_areas = read_areas(wards, "ward") if wards else []
    for street, ward in zip(streets, assign_areas(streets, ward_areas, projector), strict=True):
        street.ward_code, street.ward_name = (ward.code, ward.name) if ward else (None, None)
    lsoa_areas = read_areas(lsoas, "lsoa") if lsoas else []
    for street, lsoa in zip(streets, assign_areas(streets, lsoa_areas, projector), strict=True):
        street.lsoa_code = lsoa.code if lsoa else None
    units = [u for t in thresholds for u in build_units(streets, t, projector)]
    gazetteer = Gazetteer(
        streets={s.id: s for s in streets},
        units=units,
        wards=[Ward(a.code, a.name, a.geometry) for a in ward_areas],
        boundary=area,
        postcodes=postcodes,
    )
    report = ImportReport(
        source=Path(path).name,
        sha256=file_sha256(Path(path)),
        segments=sum(len(s.segment_ids) for s in streets),
        streets=len(streets),
        addresses=dict(matched),
        units={t: sum(u.min_addresses == t for u in units) for t in thresholds},
        skipped=dict(extract.stats),
        postcodes=dict(postcode_stats),
    )
    return gazetteer, report
