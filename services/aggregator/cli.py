"""`streetneeds aggregator ...`: rebuild the state by replay, release a month, purge ended pseudonyms."""

from __future__ import annotations

import asyncio
import datetime as dt

import typer

from shared.db import apply_migrations, create_pool

from . import repository as repo
from .areas import load_areas
from .consumer import SignalConsumer
from .disclosure import ReleaseNotDue, parse_period, release_due
from .main import MIGRATIONS
from .outbox import relay_once, start_producer
from .processing import refresh_place
from .purge import keep_days
from .releases import caught_up, release_period
from .settings import AggregatorSettings
from .subjects import purge as purge_subjects

__all__ = ["app", "purge_state", "rebuild_state"]


app = typer.Typer(help="The aggregator: rebuild its state, release person needs.", no_args_is_help=True)


async def rebuild_state(settings: AggregatorSettings, *, publish: bool = True) -> int:
    """Empty the fold and replay the whole topic into it; returns the number of place changes queued.

    Stop the aggregator first: a running replica would keep writing positions while this replays.
    Releases, stored noise, the ledger, the audit and the last published values are kept, so only
    real differences are published afterwards.
    """
    pool = await create_pool(settings.database_url, server_settings=repo.SESSION_SETTINGS)
    try:
        async with pool.acquire() as conn:
            await apply_migrations(conn, "aggregator", MIGRATIONS)
            areas = await load_areas(conn, settings.policy())
            await repo.reset_state(conn)
        consumer = SignalConsumer(pool, settings, areas, assign_all=True)
        await consumer.start()
        try:
            await consumer.run(until_end=True)
        finally:
            await consumer.stop()
        async with pool.acquire() as conn, conn.transaction():
            changes = await refresh_place(conn, areas, None, dt.datetime.now(dt.UTC), settings.trend_days)
        if publish:
            producer = await start_producer(settings)
            try:
                while await relay_once(pool, producer, settings.outbox_batch):
                    pass
            finally:
                await producer.stop()
        return changes
    finally:
        await pool.close()


@app.command("rebuild")
def rebuild() -> None:
    """Replay signals-anonymised from the start into fresh state (stop the service first)."""
    changes = asyncio.run(rebuild_state(AggregatorSettings()))
    typer.echo(f"rebuilt; {changes} place changes published")


async def _release(settings: AggregatorSettings, period: str, force: bool) -> str:
    policy = settings.policy()
    now = dt.datetime.now(dt.UTC)
    release_due(period, now, policy.release_delay_days)
    pool = await create_pool(settings.database_url, server_settings=repo.SESSION_SETTINGS)
    try:
        async with pool.acquire() as conn:
            await apply_migrations(conn, "aggregator", MIGRATIONS)
            areas = await load_areas(conn, policy)
        if not force and not await caught_up(pool, settings):
            raise typer.BadParameter(
                "the aggregator has not consumed every signal of that month yet (--force releases anyway)",
                param_hint="--period",
            )
        summary = await release_period(pool, areas, policy, period, now)
    finally:
        await pool.close()
    if summary.already_released:
        text = f"{period} was already released (a release is never recomputed)"
    else:
        text = (
            f"{period} released: {summary.published} cells published, {summary.withheld} withheld, "
            f"{summary.changes} changes queued"
        )
    q = summary.quarter
    if q is not None and q.complete:
        text += (
            f"; {q.quarter} ward trends: {q.published} published, {q.withheld} withheld, "
            f"{q.changes} changes queued"
        )
    elif q is not None:
        text += f"; {q.quarter} ward trends wait for every month of the quarter to be released"
    return text


@app.command("release")
def release(
    period: str = typer.Option(..., help="Calendar month YYYY-MM (finished)."),
    force: bool = typer.Option(False, help="Release even if consumption lags behind."),
) -> None:
    """Release one finished calendar month of person-category needs (idempotent); the last month of a
    quarter also releases the quarter's ward trends."""
    try:
        parse_period(period)
        typer.echo(asyncio.run(_release(AggregatorSettings(), period, force)))
    except (ValueError, ReleaseNotDue) as exc:
        raise typer.BadParameter(str(exc), param_hint="--period") from None


async def purge_state(settings: AggregatorSettings, now: dt.datetime | None = None) -> dict[str, int]:
    """Delete pseudonyms no longer needed (docs/privacy.md, retention): only rows that ended more
    than two months (and two place trend windows) ago, so no release still to be made needs them."""
    now = now or dt.datetime.now(dt.UTC)
    pool = await create_pool(settings.database_url, server_settings=repo.SESSION_SETTINGS)
    try:
        async with pool.acquire() as conn:
            await apply_migrations(conn, "aggregator", MIGRATIONS)
            return dict(await purge_subjects(conn, now, keep_days(settings)))
    finally:
        await pool.close()


@app.command("purge")
def purge() -> None:
    """Delete the pseudonyms of signals that ended over two months ago, of withdrawals no raise can
    need any more, and ledger entries of past years (run monthly; a rebuild brings rows back until then)."""
    deleted = asyncio.run(purge_state(AggregatorSettings()))
    typer.echo("purged: " + ", ".join(f"{n} {table}" for table, n in deleted.items()))
