"""`streetneeds simulate`: send realistic council signals to ingest (HTTP, Open311 or Kafka).

Phases, each optional, in this order:
1. `--backfill-days D`: the council's open register plus D days of history up to now (occurred_at
   in the past), sent in bulk. Its size follows `--scale` (1 = a realistic Camden), or `--bulk N`
   sizes it to about N signals.
2. `--bulk N` (or `--count N` without `--rate`) without a backfill: N signals as fast as possible,
   spread over the recent past (a window whose length holds about N at `--scale`).
3. `--rate R`: a live trickle of R signals a second for `--duration` seconds or `--count` signals,
   continuing the same simulation, stamped with the time of sending.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
from pathlib import Path
from typing import Annotated

import asyncpg
import typer

from shared.contracts import CATALOGUE, Sensitivity
from shared.gazetteer import repository
from shared.settings import CommonSettings

from .model import LocationMix, SignalModel
from .reference import CAMDEN_DIR, load_reference
from .runner import Progress, send_bulk, send_paced
from .sinks import RETRY_FOR_S, HttpSink, JsonLinesSink, KafkaSink, Open311Sink, Sink

__all__ = ["api_key_from", "build_window", "simulate"]

DEMO_KEYS = Path(__file__).resolve().parents[1] / ".local" / "demo-keys.env"
REFERENCE_DIRS = {"camden": CAMDEN_DIR}
SINKS = ("http", "open311", "kafka", "stdout")


def api_key_from(option: str | None, env_file: Path = DEMO_KEYS) -> str | None:
    """The key given, else COUNCIL_API_KEY from the environment, else from .local/demo-keys.env."""
    if option:
        return option
    if os.environ.get("COUNCIL_API_KEY"):
        return os.environ["COUNCIL_API_KEY"]
    if env_file.exists():
        for line in env_file.read_text().splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "COUNCIL_API_KEY":
                return value.strip()
    return None


def build_window(model: SignalModel, days: float | None, size: int | None) -> tuple[float, float]:
    """(window length in days, scale) for a window ending now: given days, or holding about `size`."""
    if days:
        return days, (size / model.expected_events(days) * model.scale) if size else model.scale
    if not size:
        raise ValueError("need a window length or a size")
    days = 1.0
    for _ in range(20):  # fixed point: the expected count grows with the window, sub-linearly
        days = max(1 / 24, days * size / model.expected_events(days, warm=False))
    return days, model.scale


def simulate(
    sink: Annotated[str, typer.Option(help=f"Where to send: {', '.join(SINKS)}.")] = "http",
    council: Annotated[str, typer.Option(help="Council whose reference data to use.")] = "camden",
    rate: Annotated[float | None, typer.Option(help="Live signals per second.")] = None,
    duration: Annotated[float | None, typer.Option(help="Seconds of live signals.")] = None,
    count: Annotated[int | None, typer.Option(help="Live signals to send (bulk, without --rate).")] = None,
    bulk: Annotated[int | None, typer.Option(help="Signals to send as fast as possible.")] = None,
    batch_size: Annotated[int, typer.Option(help="Signals per request in bulk.")] = 1000,
    backfill_days: Annotated[
        float,
        typer.Option(help="Days of history (and the open register) to send first, occurred_at in the past."),
    ] = 0.0,
    scale: Annotated[
        float | None, typer.Option(help="Volume relative to a realistic council (1 = Camden's).")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed: same seed, same signals and ids.")] = None,
    url: Annotated[
        str, typer.Option(envvar="INGEST_URL", help="Ingest's base URL.")
    ] = "http://127.0.0.1:8001",
    api_key: Annotated[
        str | None,
        typer.Option(help="Council system key (default: COUNCIL_API_KEY, then .local/demo-keys.env)."),
    ] = None,
    kafka_bootstrap_servers: Annotated[str | None, typer.Option(envvar="KAFKA_BOOTSTRAP_SERVERS")] = None,
    database_url: Annotated[str, typer.Option(envvar="DATABASE_URL", help="Where the gazetteer is.")] = "",
    retry_for: Annotated[
        float,
        typer.Option(help="Seconds to keep retrying a request ingest could not take (5xx, 429, no answer)."),
    ] = RETRY_FOR_S,
) -> None:
    """Simulate a council's systems: realistic signals for Camden streets, sent to ingest."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per request
    if sink not in SINKS:
        raise typer.BadParameter(f"--sink must be one of {', '.join(SINKS)}")
    if council not in REFERENCE_DIRS:
        raise typer.BadParameter(
            f"no reference data for council {council!r} (have: {', '.join(REFERENCE_DIRS)})"
        )
    if bulk is None and count is not None and rate is None:
        bulk, count = count, None
    if not (backfill_days or bulk or rate):
        raise typer.BadParameter("give --backfill-days, --bulk/--count, or --rate")
    if rate and count is None and duration is None:
        raise typer.BadParameter("a live run (--rate) needs --duration or --count")
    key = api_key_from(api_key)
    if sink != "stdout" and not key:
        raise typer.BadParameter("no API key: pass --api-key, set COUNCIL_API_KEY, or run `make run`")
    if not database_url:
        raise typer.BadParameter("DATABASE_URL is not set (the gazetteer is read from it)")
    progress = asyncio.run(
        _run(
            sink=sink,
            council=council,
            rate=rate,
            duration=duration,
            count=count,
            bulk=bulk,
            batch_size=batch_size,
            backfill_days=backfill_days,
            scale=scale,
            seed=seed,
            url=url,
            key=key or "",
            kafka=kafka_bootstrap_servers,
            database_url=database_url,
            retry_for=retry_for,
        )
    )
    typer.echo(progress.summary(), err=True)


async def _run(
    *,
    sink,
    council,
    rate,
    duration,
    count,
    bulk,
    batch_size,
    backfill_days,
    scale,
    seed,
    url,
    key,
    kafka,
    database_url,
    retry_for=RETRY_FOR_S,
) -> Progress:
    conn = await asyncpg.connect(database_url)
    try:
        gazetteer = await repository.load(conn)
    finally:
        await conn.close()
    # Open311 carries environmental reports only, located by a point.
    place_only = [c for c, i in CATALOGUE.items() if i.sensitivity is Sensitivity.PLACE]
    options = dict(
        council=council,
        seed=seed,
        categories=place_only if sink == "open311" else None,
        location_mix=LocationMix(1, 0, 0) if sink == "open311" else LocationMix(),
    )
    reference = load_reference(REFERENCE_DIRS[council])
    model = SignalModel(gazetteer, reference, scale=scale or 1.0, **options)
    now = dt.datetime.now(dt.UTC)
    days = backfill_days
    if backfill_days or bulk:
        days, derived = build_window(model, backfill_days or None, bulk if scale is None else None)
        model = SignalModel(gazetteer, reference, scale=derived, **{**options, "seed": model.seed})
    target = _sink(sink, url, key, kafka, database_url, retry_for)
    await target.start()
    progress = Progress()
    try:
        logging.info("simulating %s with seed %s at scale %.3g", council, model.seed, model.scale)
        if days:
            stream = model.signals(now - dt.timedelta(days=days), warm=bool(backfill_days))
            await send_bulk(_until(stream, now), target, limit=bulk, batch_size=batch_size, progress=progress)
            logging.info("history sent: %s", progress.summary())
        if rate:
            live = model.signals(now, warm=False) if not days else _after(model, now, days, backfill_days)
            await send_paced(live, target, rate=rate, limit=count, duration_s=duration, progress=progress)
    finally:
        await target.close()
    return progress


def _until(stream, now):
    for signal in stream:
        if signal.occurred_at > now:
            return
        yield signal


def _after(model: SignalModel, now, days, backfill_days):
    """The same simulation, continued past the history already sent."""
    stream = model.signals(now - dt.timedelta(days=days), warm=bool(backfill_days))
    return (s for s in stream if s.occurred_at > now)


def _sink(
    kind: str, url: str, key: str, kafka: str | None, database_url: str, retry_for: float = RETRY_FOR_S
) -> Sink:
    if kind == "http":
        return HttpSink(url, key, retry_for_s=retry_for)
    if kind == "open311":
        return Open311Sink(url, key, retry_for_s=retry_for)
    if kind == "kafka":
        if not kafka:
            raise typer.BadParameter("KAFKA_BOOTSTRAP_SERVERS is not set")
        return KafkaSink(CommonSettings(database_url=database_url, kafka_bootstrap_servers=kafka), key)
    return JsonLinesSink()
