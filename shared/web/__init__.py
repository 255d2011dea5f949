"""What every service with pages for people shares: the base template, its stylesheet and static files.

Residents' pages (feeds), e-mail alert pages (notifier) and organisations' and impact pages
(prompter) look alike because they extend the same `base.html` and load the same `/static/` files.
Static files are vendored or built into the package, never fetched from a CDN at run time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, select_autoescape

__all__ = ["STATIC_DIR", "TEMPLATES_DIR", "mount_static", "page_renderer"]

TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"


def page_renderer(templates: Path, **globals_: Any):
    """A `render(template, **context) -> bytes` over the service's templates, then the shared ones."""
    env = Environment(
        loader=ChoiceLoader([FileSystemLoader(templates), FileSystemLoader(TEMPLATES_DIR)]),
        autoescape=select_autoescape(("html",)),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(globals_)

    def render(template: str, **context: Any) -> bytes:
        context.setdefault("alternates", [])
        context.setdefault("private", False)
        context.setdefault("counts", {})
        return env.get_template(template).render(**context).encode()

    return render


def mount_static(app: FastAPI) -> None:
    """Serve the shared static files at `/static/` (long-cached: file names carry versions)."""
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
