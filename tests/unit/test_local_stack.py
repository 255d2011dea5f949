"""The local stack's PostgreSQL runs as an unprivileged user when we are root: a clone that user
cannot reach stops with a message naming the directory in the way, not deep inside initdb."""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("runuser") is None, reason="runs a check as another user: needs root"
)


def _stack() -> ModuleType:
    spec = importlib.util.spec_from_file_location("local_stack", ROOT / "deploy/local/stack.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _other_user() -> str:
    for name in ("postgres", "streetneeds", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    pytest.skip("no unprivileged user on this machine")


def test_a_directory_only_its_owner_may_enter_is_named(tmp_path: Path) -> None:
    closed = tmp_path / "closed"
    data = closed / "repo" / ".local" / "postgres"
    data.mkdir(parents=True)
    closed.chmod(0o700)  # as `mktemp -d` makes it, or root's home
    for parent in closed.parents:  # pytest's own temporary folders are private too: let others pass
        if "pytest-of-" in str(parent):
            parent.chmod(parent.stat().st_mode | 0o001)
    with pytest.raises(SystemExit) as stopped:
        _stack()._reachable_by(_other_user(), data)
    assert f"cannot enter {closed} (mode 700)" in str(stopped.value)
    assert f"chmod o+x {closed}" in str(stopped.value)

    closed.chmod(0o711)  # others may pass through: the check lets it be
    _stack()._reachable_by(_other_user(), data)
