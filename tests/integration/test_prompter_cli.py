"""`streetneeds prompter create-organisation`: the key is shown once, saved 0600, stored as a hash."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from typer.testing import CliRunner

from services.prompter.cli import app
from shared.keys import hash_key

pytestmark = pytest.mark.integration


def test_create_list_and_revoke_organisations(fresh_database_url, kafka_bootstrap, tmp_path, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", fresh_database_url)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    runner = CliRunner()
    keys = tmp_path / "keys.env"
    made = runner.invoke(
        app,
        [
            "create-organisation",
            "Camden community team",
            "--kind",
            "council",
            "--council-admin",
            "--key-file",
            str(keys),
            "--key-name",
            "COUNCIL_ORG_KEY",
        ],
    )
    assert made.exit_code == 0, made.output
    key = made.output.splitlines()[1]
    assert key.startswith("sno_") and keys.read_text() == f"COUNCIL_ORG_KEY={key}\n"
    assert keys.stat().st_mode & 0o777 == 0o600
    assert runner.invoke(app, ["create-organisation", "X", "--kind", "vcs", "--council-admin"]).exit_code == 2
    assert runner.invoke(app, ["create-organisation", "X", "--kind", "charity"]).exit_code == 2

    async def stored():
        conn = await asyncpg.connect(fresh_database_url)
        try:
            return await conn.fetchrow("SELECT id, kind, council_admin, key_hash FROM prompter.organisations")
        finally:
            await conn.close()

    row = asyncio.run(stored())  # a sync test: the CLI runs its own event loop
    assert (row["kind"], row["council_admin"], row["key_hash"]) == ("council", True, hash_key(key))
    listed = runner.invoke(app, ["list-organisations"])
    assert (
        "Camden community team\tcouncil council-admin\tactive" in listed.output and key not in listed.output
    )
    assert runner.invoke(app, ["revoke-organisation", str(row["id"])]).exit_code == 0
    assert "revoked" in runner.invoke(app, ["list-organisations"]).output

    # A VCS partner's existing key can be registered as its organisation's (read from the environment).
    monkeypatch.setenv("PARTNER_KEY", "snp_" + "k" * 40)
    same = runner.invoke(app, ["create-organisation", "Partner group", "--key-from-env", "PARTNER_KEY"])
    assert same.exit_code == 0 and same.output.splitlines()[1] == "snp_" + "k" * 40
    again = runner.invoke(app, ["create-organisation", "Copy", "--key-from-env", "PARTNER_KEY"])
    assert again.exit_code == 1 and "already belongs" in again.output
    monkeypatch.setenv("PARTNER_KEY", "short")
    assert runner.invoke(app, ["create-organisation", "X", "--key-from-env", "PARTNER_KEY"]).exit_code == 2
