"""Writing a newly issued API key into an env file (e.g. `.local/demo-keys.env`) only its owner can read."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["save_key"]


def save_key(path: Path, name: str, key: str) -> None:
    """Set `name=key` in the env file, keeping its other lines; the file is created mode 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = path.read_text().splitlines() if path.exists() else []
    lines = [line for line in lines if not line.startswith(f"{name}=")] + [f"{name}={key}"]
    # Create with 0600 from the start: the key must never be readable by others, even briefly.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(lines) + "\n")
    path.chmod(0o600)
