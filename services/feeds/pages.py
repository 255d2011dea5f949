"""HTML rendering with Jinja2: the feeds' templates in `templates/`, over the shared base page."""

from __future__ import annotations

from pathlib import Path

from shared.web import page_renderer

__all__ = ["render"]

render = page_renderer(Path(__file__).parent / "templates")
