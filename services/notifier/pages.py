"""HTML rendering with Jinja2: the notifier's pages and mails in `templates/`, over the shared base page."""

from __future__ import annotations

from pathlib import Path

from shared.web import page_renderer

__all__ = ["TEMPLATES", "render"]

TEMPLATES = Path(__file__).parent / "templates"
render = page_renderer(TEMPLATES)
