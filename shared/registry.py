"""The one list of services: name, module, port, database schema, migrations and what a person finds.

`deploy/local/run.py` starts them from it, `streetneeds migrate` migrates their schemas in this order,
`make docs` documents each one, and a test checks docker-compose.yml and the Kubernetes manifests
against it. Data only: nothing here imports a service.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["GAZETTEER_MIGRATIONS", "SERVICES", "Service", "by_name"]

_ROOT = Path(__file__).resolve().parents[1]
GAZETTEER_MIGRATIONS = _ROOT / "shared/gazetteer/migrations"


@dataclass(frozen=True, slots=True)
class Service:
    name: str  # also its Kafka client id, log name and the prefix of its settings (NAME_*)
    port: int  # default HTTP port on a developer's machine
    schema: str  # its own PostgreSQL schema
    hint: str  # what a person finds there, printed by `make run`
    # Off the live path (a council's POST to a resident's feed): its work may lag by seconds under
    # load, so where services share cores it yields the CPU to those on the path (deploy/ says how).
    background: bool = False

    @property
    def module(self) -> str:
        """`python -m <module>` runs it; `<module>.main.create_app` builds its app."""
        return f"services.{self.name}"

    @property
    def migrations(self) -> Path:
        return _ROOT / "services" / self.name / "migrations"


SERVICES: tuple[Service, ...] = (
    Service("ingest", 8001, "ingest", "council signals: /docs, Open311 at /open311/v2/services.xml"),
    Service("aggregator", 8002, "aggregator", "street-level needs: /v1/needs.geojson"),
    Service("prompter", 8003, "prompter", "prompts and opportunities: /v1/opportunities"),
    Service("feeds", 8000, "feeds", "residents' feeds: / (search your street)"),
    Service("partners", 8004, "partners", "VCS partner API: /docs", background=True),
    Service("notifier", 8005, "notifier", "e-mail alerts: the form on every street page", background=True),
    Service(
        "console",
        8006,
        "console",
        "council operators' console: / (sign in: CONSOLE_* in demo keys)",
        background=True,
    ),
)


def by_name(name: str) -> Service:
    for service in SERVICES:
        if service.name == name:
            return service
    raise KeyError(name)
