"""Partner formats: JSON items, GeoJSON (RFC 7946) features and CSV (RFC 4180) rows."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from typing import Any

from shared.contracts import StreetNeedChanged
from shared.csvsafe import safe_cell

__all__ = [
    "HISTORY_FIELDS",
    "NEED_FIELDS",
    "feature",
    "feature_collection",
    "history_item",
    "history_row",
    "need_row",
    "to_csv",
]

# Properties and columns are exactly the contract's fields, in its order.
NEED_FIELDS: tuple[str, ...] = tuple(StreetNeedChanged.model_fields)
HISTORY_FIELDS: tuple[str, ...] = ("history_id", "key", "change", "changed_at", *NEED_FIELDS)
_LIST_SEPARATOR = " "  # street ids never contain spaces, so one CSV cell holds the list


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return _LIST_SEPARATOR.join(str(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def need_row(need: Mapping[str, Any]) -> list[str]:
    return [_cell(need.get(f)) for f in NEED_FIELDS]


def history_item(row: Mapping[str, Any]) -> dict[str, Any]:
    """One change: `changed` carries the need as published; `removed` only says which key went."""
    return {
        "history_id": row["id"],
        "key": row["key"],
        "change": row["change"],
        "area_id": row["area_id"],
        "category": row["category"],
        "version": row["version"],
        "changed_at": row["changed_at"].isoformat(),
        "need": row["payload"],
    }


def history_row(item: Mapping[str, Any]) -> list[str]:
    need = item["need"] or {}
    return [_cell(item[f] if f in item else need.get(f)) for f in HISTORY_FIELDS]


def to_csv(header: Iterable[str], rows: Iterable[list[str]]) -> str:
    """RFC 4180: a header row, CRLF line ends, fields quoted when they hold , " or line breaks.

    Text cells a spreadsheet would run as a formula (`= + - @`, tab, CR) are prefixed with `'`.
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(list(header))
    writer.writerows([safe_cell(cell) for cell in row] for row in rows)
    return out.getvalue()


def feature(need: Mapping[str, Any], geometry: dict[str, Any] | None) -> dict[str, Any]:
    """A Feature whose id is the topic key and whose properties are the StreetNeedChanged fields."""
    return {
        "type": "Feature",
        "id": f"{need['area_id']}:{need['category']}",
        "geometry": geometry,
        "properties": {f: need.get(f) for f in NEED_FIELDS},
    }


def feature_collection(features: list[dict[str, Any]], next_cursor: str | None) -> dict[str, Any]:
    # `next_cursor` is a foreign member (RFC 7946 §6.1); the Link header carries it too.
    return {"type": "FeatureCollection", "features": features, "next_cursor": next_cursor}
