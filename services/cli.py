"""The `streetneeds` command: operator and developer tasks across services, one sub-command each."""

from __future__ import annotations

import asyncio
import importlib

import typer

from shared.kafka import ensure_topics
from shared.registry import SERVICES
from shared.settings import CommonSettings

app = typer.Typer(help="streetneeds: council-visible needs, street by street, safely.", no_args_is_help=True)
topics = typer.Typer(help="Kafka topics from the code's registry.", no_args_is_help=True)
app.add_typer(topics, name="topics")

# Each service's own commands live beside it, in `<package>/cli.py` with a Typer `app`.
for name, package in (
    ("gazetteer", "shared.gazetteer"),
    *((service.name, service.module) for service in SERVICES),
    ("simulate", "simulator"),
):
    try:
        module = importlib.import_module(f"{package}.cli")
    except ModuleNotFoundError as exc:
        if exc.name != f"{package}.cli" and exc.name != package:
            raise
        continue
    if name == "simulate":
        app.command("simulate", help=module.simulate.__doc__)(module.simulate)
    else:
        app.add_typer(module.app, name=name)


@topics.command("create")
def create_topics() -> None:
    """Create every topic in the registry that does not exist yet (safe to re-run)."""
    settings = CommonSettings()
    created = asyncio.run(ensure_topics(settings))
    typer.echo(f"topics created: {', '.join(created) or 'none (all present)'}")


@app.command("dead-letters")
def dead_letters(
    since_hours: float = typer.Option(24.0, "--since-hours", min=0, help="How far back to look."),
    service: str | None = typer.Option(None, help="Only this service's dead letters."),
    show_original: bool = typer.Option(
        False,
        "--show-original",
        help="Print the original input too. It is raw council input and may "
        "hold personal data: operators only, never paste it elsewhere.",
    ),
) -> None:
    """List input that could not be accepted (operators): when, where from, why, which fields."""
    import datetime as dt

    from shared.dead_letters import original_text, read_dead_letters

    since = dt.datetime.now(dt.UTC) - dt.timedelta(hours=since_hours)

    async def show() -> int:
        count = 0
        async for letter in read_dead_letters(CommonSettings(), since=since, service=service):
            count += 1
            where = f"{letter.source_topic}[{letter.partition}]@{letter.offset}"
            typer.echo(
                f"{letter.dead_lettered_at:%Y-%m-%d %H:%M:%S}  {letter.service:<10} {where}  {letter.reason}"
            )
            for error in letter.errors:
                typer.echo(f"    {error}")
            if show_original:
                typer.echo(f"    original: {original_text(letter)}")
        return count

    typer.echo(f"{asyncio.run(show())} dead letters in the last {since_hours:g} h")


@app.command("migrate")
def migrate() -> None:
    """Apply every component's pending database migrations (forward-only, recorded)."""
    from shared.migrations import migrate_all

    for schema, applied in asyncio.run(migrate_all(CommonSettings().database_url)).items():
        typer.echo(f"{schema}: {', '.join(applied) or 'up to date'}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
