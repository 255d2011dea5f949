"""The local stack's PostgreSQL runs as an unprivileged user when we are root. A clone that user
cannot reach (under root's home, or `mktemp -d`) keeps its data where the user can, linked from the
clone; data already out of reach is never moved, and stops with a message naming the directory."""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import subprocess
from collections.abc import Iterator
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


def _can_write(user: str, directory: Path) -> bool:
    return subprocess.run(["runuser", "-u", user, "--", "test", "-w", str(directory)]).returncode == 0


@pytest.fixture
def closed(tmp_path: Path) -> Iterator[Path]:
    """A directory only its owner may enter, as `mktemp -d` makes it."""
    directory = tmp_path / "closed"
    directory.mkdir()
    directory.chmod(0o700)
    for parent in directory.parents:  # pytest's own temporary folders are private too: let others pass
        if "pytest-of-" in str(parent):
            parent.chmod(parent.stat().st_mode | 0o001)
    yield directory
    link = directory / "repo" / ".local" / "postgres"
    if link.is_symlink():
        shutil.rmtree(link.resolve())


def test_a_clone_out_of_reach_keeps_its_data_where_postgres_can_reach_it(closed: Path) -> None:
    user, stack = _other_user(), _stack()
    pg_dir = closed / "repo" / ".local" / "postgres"
    assert not _can_write(user, pg_dir.parent)

    stack.place_pg_dir(user, pg_dir)
    assert pg_dir.is_symlink()
    elsewhere = pg_dir.resolve()
    assert _can_write(user, elsewhere)
    assert elsewhere.owner() == user
    (elsewhere / "PG_VERSION").write_text("15")

    stack.place_pg_dir(user, pg_dir)  # the next start finds the same data
    assert pg_dir.resolve() == elsewhere
    assert (pg_dir / "PG_VERSION").read_text() == "15"


def test_data_out_of_reach_is_not_moved_but_named(closed: Path) -> None:
    user, stack = _other_user(), _stack()
    pg_dir = closed / "repo" / ".local" / "postgres"
    (pg_dir / "data").mkdir(parents=True)
    with pytest.raises(SystemExit) as stopped:
        stack.place_pg_dir(user, pg_dir)
    assert f"cannot enter {closed} (mode 700)" in str(stopped.value)
    assert f"chmod o+x {closed}" in str(stopped.value)
    assert not pg_dir.is_symlink() and (pg_dir / "data").is_dir()


def test_a_reachable_clone_keeps_its_data_in_place(closed: Path) -> None:
    user, stack = _other_user(), _stack()
    closed.chmod(0o711)  # others may pass through
    pg_dir = closed / "repo" / ".local" / "postgres"
    (closed / "repo").mkdir()
    (closed / "repo").chmod(0o711)
    stack.place_pg_dir(user, pg_dir)
    assert not pg_dir.is_symlink()
    assert _can_write(user, pg_dir)
