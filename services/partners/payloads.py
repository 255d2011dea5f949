"""Webhook payloads (Standard Webhooks shape: `type`, `timestamp`, `data`)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

__all__ = ["CHANGED", "REMOVED", "webhook_body"]

CHANGED = "street_need.changed"  # data: the StreetNeedChanged value as published
REMOVED = "street_need.removed"  # data: which key is no longer publishable (a tombstone)


def webhook_body(item: Mapping[str, Any]) -> str:
    """The JSON body for one history row (`change`, `changed_at`, `payload`, key fields)."""
    changed_at: dt.datetime = item["changed_at"]
    if item["change"] == "changed":
        body = {"type": CHANGED, "timestamp": changed_at.isoformat(), "data": item["payload"]}
    else:
        body = {
            "type": REMOVED,
            "timestamp": changed_at.isoformat(),
            "data": {
                "key": item["key"],
                "area_id": item["area_id"],
                "category": item["category"],
                "version": item["version"],
            },
        }
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)
