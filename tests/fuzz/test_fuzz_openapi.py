"""Fuzz every service's OpenAPI with schemathesis (all checks) against real Kafka and PostgreSQL.

Each service runs on a loopback socket under its own PostgreSQL role (so the run also proves that
role's grants are enough), and schemathesis answers with 0 server errors and 0 schema violations.
`make fuzz` runs the same with more examples (FUZZ_EXAMPLES) per operation.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import secrets
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from services.docs import _settings_class
from shared.migrations import migrate_all
from shared.registry import SERVICES
from tests.support import loopback_socket, serve

ROOT = Path(__file__).resolve().parents[2]
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
CONFIG = Path(__file__).with_name("schemathesis.toml")
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "20"))
# Every service there is, including ones added later: the registry lists them, main.py builds them.
FUZZED = [s for s in SERVICES if (ROOT / "services" / s.name / "main.py").exists()]
TOKEN = secrets.token_urlsafe(32)
# Settings a service may require; each is given only where the settings class has the field.
SECRETS: dict[str, Any] = {
    "pseudonym_keys": f"1:{secrets.token_urlsafe(40)}",
    "pseudonym_key_version": 1,
    "link_secret": secrets.token_urlsafe(40),
}


def _role_url(admin_url: str, role: str, password: str) -> str:
    parts = urlsplit(admin_url)
    host = parts.hostname or "127.0.0.1"
    netloc = f"{role}:{password}@{host}:{parts.port}" if parts.port else f"{role}:{password}@{host}"
    return urlunsplit(parts._replace(netloc=netloc))


async def _drop_role(admin_url: str, role: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP OWNED BY "{role}"')
        await conn.execute(f'DROP ROLE IF EXISTS "{role}"')
    finally:
        await conn.close()


def _settings(service: str, admin_url: str, role_url: str, kafka: str, random_id: str) -> Any:
    cls = _settings_class(service)
    fields = cls.model_fields
    values: dict[str, Any] = {k: v for k, v in SECRETS.items() if k in fields}
    values.update({name: TOKEN for name in fields if name.endswith("_token")})
    if "group_id" in fields:
        values["group_id"] = f"fuzz-{service}-{random_id}"
    return cls(
        _env_file=None,
        database_url=admin_url,
        service_database_url=role_url,
        kafka_bootstrap_servers=kafka,
        **values,
    )


@pytest.mark.integration
@pytest.mark.timeout(int(os.environ.get("FUZZ_TIMEOUT", "1500")))
@pytest.mark.parametrize("service", [s.name for s in FUZZED])
async def test_openapi_fuzzing_finds_nothing(
    service: str, stack: dict[str, str], fresh_database_url: str, random_id: str, tmp_path: Path
) -> None:
    schema = next(s.schema for s in FUZZED if s.name == service)
    role = f"t_{random_id}_{service}"
    role_url = _role_url(fresh_database_url, role, secrets.token_urlsafe(16))
    await migrate_all(fresh_database_url, roles={schema: role_url})
    try:
        settings = _settings(service, fresh_database_url, role_url, stack["kafka"], random_id)
        app = importlib.import_module(f"services.{service}.main").create_app(settings)
        if not app.openapi().get("paths"):
            pytest.skip(f"{service} documents no API operations (pages only)")
        sock, base = loopback_socket()
        async with serve(app, sock):
            proc = await asyncio.create_subprocess_exec(
                str(SCHEMATHESIS),
                "--config-file",
                str(CONFIG),
                "run",
                f"{base}/openapi.json",
                "--max-examples",
                str(EXAMPLES),
                "--workers",
                "2",
                "--seed",
                os.environ.get("FUZZ_SEED", "11"),
                "--request-timeout",
                "20",
                "--header",
                f"Authorization: Bearer {TOKEN}",
                "--suppress-health-check",
                "all",
                "--phases",
                "examples,coverage,fuzzing",
                "--report",
                "junit",
                "--report-dir",
                str(tmp_path),
                "--output-truncate",
                "true",
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                cwd=tmp_path,
                env={**os.environ, "NO_COLOR": "1"},
            )
            output, _ = await proc.communicate()
    finally:
        await _drop_role(fresh_database_url, role)
    text = output.decode(errors="replace")
    assert proc.returncode == 0, f"schemathesis found problems in {service}:\n{text[-20000:]}"
