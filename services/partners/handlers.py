"""The street-needs.v1 subscriber: current state, history and webhook deliveries, idempotently."""

from __future__ import annotations

import datetime as dt
import logging

from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from pydantic import ValidationError

from shared.contracts import DEAD_LETTERS, STREET_NEEDS, StreetNeedChanged
from shared.kafka import dead_letter, validation_errors
from shared.service import Runtime

from . import repository
from .geometry import AreaGeometry
from .payloads import webhook_body

__all__ = ["register_handlers"]

log = logging.getLogger(__name__)
SERVICE = "partners"


def _minute(now: dt.datetime) -> dt.datetime:
    return now.replace(second=0, microsecond=0)


def register_handlers(broker: KafkaBroker, runtime: Runtime, group_id: str) -> None:
    async def reject(record, reason: str, errors: tuple[str, ...] = ()) -> None:
        log.warning("street-needs record dead-lettered", extra={"reason": reason})
        letter = dead_letter(service=SERVICE, source_topic=STREET_NEEDS.name, value=record.value,
                             key=record.key, reason=reason, errors=errors,
                             partition=record.partition, offset=record.offset)
        await broker.publish(letter.model_dump_json().encode(), topic=DEAD_LETTERS.name,
                             key=STREET_NEEDS.name.encode())

    @broker.subscriber(STREET_NEEDS.name, group_id=group_id, ack_policy=AckPolicy.NACK_ON_ERROR,
                       auto_offset_reset="earliest", title="partners: street-needs.v1")
    async def on_street_need(msg: KafkaMessage) -> None:
        record = msg.raw_message
        key = record.key.decode(errors="replace") if record.key else None
        geometry: AreaGeometry = runtime.state["geometry"]
        if not record.value:  # tombstone: no longer publishable
            if not key:
                await reject(record, "tombstone without a key")
                return
            async with runtime.pool.acquire() as conn, conn.transaction():
                await repository.apply_removal(conn, key, _minute(dt.datetime.now(dt.UTC)), webhook_body)
            return
        try:
            need = StreetNeedChanged.model_validate_json(record.value)
        except ValidationError as exc:
            await reject(record, "value is not a valid StreetNeedChanged", validation_errors(exc))
            return
        if key != need.key:
            await reject(record, f"key must be {{area_id}}:{{category}} of the value, got {key!r}")
            return
        data = need.model_dump(mode="json")
        bbox = geometry.bbox(need.area_id, need.area_kind, need.street_ids)
        body = webhook_body({"change": "changed", "changed_at": need.published_at, "payload": data})
        async with runtime.pool.acquire() as conn, conn.transaction():
            await repository.apply_change(conn, data, bbox, body)
