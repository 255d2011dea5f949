"""What the prompter holds while it runs, built at startup; routes take it as `context: Context`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import asyncpg
from fastapi import Depends, Request

from shared.service import running_context

from .matching import Places
from .publisher import PromptPublisher
from .settings import PrompterSettings

__all__ = ["Context", "PrompterContext", "prompter_context"]


@dataclass(frozen=True)
class PrompterContext:
    settings: PrompterSettings
    pool: asyncpg.Pool
    places: Places  # the gazetteer's streets and wards, for matching opportunities to needs
    publisher: PromptPublisher  # every prompt change goes through it


def prompter_context(request: Request) -> PrompterContext:
    """FastAPI dependency: the running prompter's context."""
    context: PrompterContext = request.app.state.runtime.context
    return context


# What a route declares to be given the context: `context: Context`.
Context = Annotated[PrompterContext, Depends(running_context)]
