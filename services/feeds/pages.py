"""HTML rendering with Jinja2 (autoescaped templates in `templates/`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

__all__ = ["render"]

_ENV = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(("html",)),
    trim_blocks=True, lstrip_blocks=True,
)


def render(template: str, **context: Any) -> bytes:
    context.setdefault("alternates", [])
    context.setdefault("private", False)
    context.setdefault("counts", {})
    return _ENV.get_template(template).render(**context).encode()
