"""The console's security core: password hashing, tokens, roles, cookies' Secure flag, charts, ε totals."""

from __future__ import annotations

import re

import pytest

from services.console.charts import bar_chart
from services.console.security import (
    ROLES,
    USERNAME,
    can,
    generate_password,
    hash_password,
    hash_token,
    new_token,
    tokens_match,
    verify_password,
)
from services.console.settings import ConsoleSettings
from services.console.web import _epsilon
from shared.privacy import ANNUAL_EPSILON_CAP, EPSILON_PER_RELEASE


def test_passwords_are_salted_scrypt_hashes_that_verify_only_the_right_password():
    stored = hash_password("correct horse battery staple")
    again = hash_password("correct horse battery staple")
    assert stored.startswith("scrypt$32768$8$1$") and "correct" not in stored
    assert stored != again  # a salt of its own each time
    assert verify_password("correct horse battery staple", stored)
    assert not verify_password("correct horse battery stapler", stored)
    assert not verify_password("", stored)


@pytest.mark.parametrize("stored", ["", "plain", "md5$x$y", "scrypt$1$2$3$%%%$@@@", "scrypt$a$b$c$d$e"])
def test_malformed_stored_hashes_never_verify(stored):
    assert not verify_password("anything", stored)


def test_generated_secrets_are_long_random_and_distinct():
    passwords = {generate_password() for _ in range(50)}
    assert len(passwords) == 50 and all(len(p) >= 24 for p in passwords)
    tokens = {new_token() for _ in range(50)}
    assert len(tokens) == 50 and all(len(t) >= 43 for t in tokens)


def test_session_tokens_are_stored_as_sha256_digests():
    token = new_token()
    digest = hash_token(token)
    assert re.fullmatch(r"[0-9a-f]{64}", digest) and token not in digest
    assert hash_token(token) == digest


@pytest.mark.parametrize(
    ("given", "expected", "ok"),
    [
        ("abc", "abc", True),
        ("abc", "abd", False),
        ("", "abc", False),
        (None, "abc", False),
        ("abc", None, False),
    ],
)
def test_csrf_tokens_must_be_present_and_equal(given, expected, ok):
    assert tokens_match(given, expected) is ok


def test_roles_are_ordered_viewer_operator_admin():
    assert ROLES == ("viewer", "operator", "admin")
    assert can("admin", "operator") and can("operator", "operator") and can("viewer", "viewer")
    assert not can("viewer", "operator") and not can("operator", "admin")
    assert not can("root", "viewer")  # an unknown role may do nothing


@pytest.mark.parametrize("name", ["ab", "demo-admin", "j.smith", "x_1"])
def test_usernames_allowed(name):
    assert USERNAME.match(name)


@pytest.mark.parametrize("name", ["a", "Admin", "-x", "a b", "<script>", "a" * 64])
def test_usernames_refused(name):
    assert not USERNAME.match(name)


def _settings(**kw) -> ConsoleSettings:
    return ConsoleSettings(
        _env_file=None, database_url="postgresql://x/y", kafka_bootstrap_servers="k:1", **kw
    )


def test_cookies_are_secure_when_the_console_is_served_over_https():
    assert _settings(base_url="https://console.example.org/").secure_cookies
    assert not _settings(base_url="http://127.0.0.1:8006").secure_cookies
    with pytest.raises(ValueError, match="absolute"):
        _settings(ingest_url="ingest:8001")


def test_no_default_tokens():
    settings = _settings()
    assert all(settings.token(t) is None for t in ("ingest", "aggregator", "prompter", "partners"))


def test_chart_has_a_text_alternative_and_escapes_labels():
    svg = str(bar_chart([("2026-11-01", 3), ("<b>", 7)], "Signals & more", "c1"))
    assert 'role="img"' in svg and 'aria-labelledby="c1-t c1-d"' in svg
    assert '<title id="c1-t">Signals &amp; more</title>' in svg
    assert "highest 7, total 10" in svg and "<b>" not in svg
    assert str(bar_chart([], "empty", "c2")) == ""


def test_epsilon_totals_per_year_against_the_cap():
    releases = [{"period": "2026-09"}, {"period": "2026-10"}, {"period": "2025-12"}]
    by_year = {e["year"]: e for e in _epsilon(releases)}
    assert by_year["2026"]["spent"] == 2 * EPSILON_PER_RELEASE
    assert by_year["2026"]["left"] == ANNUAL_EPSILON_CAP - 2 * EPSILON_PER_RELEASE
    assert by_year["2025"]["releases"] == 1
