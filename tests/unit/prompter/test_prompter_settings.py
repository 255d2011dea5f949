"""Settings fail fast on a weak admin token and default to the shared consumer group."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.prompter.settings import PrompterSettings

BASE = {"database_url": "postgresql://x/y", "kafka_bootstrap_servers": "127.0.0.1:1"}


def test_defaults():
    settings = PrompterSettings(**BASE, _env_file=None)
    assert (settings.port, settings.group_id, settings.admin_token) == (8003, "prompter", None)


def test_short_token_is_refused():
    with pytest.raises(ValidationError, match="at least 16 characters"):
        PrompterSettings(**BASE, admin_token="short", _env_file=None)


def test_token_is_secret():
    settings = PrompterSettings(**BASE, admin_token="x" * 20, _env_file=None)
    assert "x" * 20 not in repr(settings)
