"""Calls to the other services' operator APIs and health checks (the console never reads their schemas)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from .settings import TARGETS, ConsoleSettings

__all__ = ["TargetError", "Targets"]


class TargetError(Exception):
    """A call to another service failed; `message` is plain language for the operator."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class Targets:
    def __init__(self, settings: ConsoleSettings, client: httpx.AsyncClient | None = None) -> None:
        self.settings = settings
        self.client = client or httpx.AsyncClient(timeout=settings.request_timeout_s, follow_redirects=False)

    async def close(self) -> None:
        await self.client.aclose()

    async def call(self, target: str, method: str, path: str, json: Any = None, **params: Any) -> Any:
        token = self.settings.token(target)
        if token is None:
            raise TargetError(
                503,
                f"The console has no operator token for {target}: set CONSOLE_{target.upper()}_TOKEN.",
            )
        try:
            response = await self.client.request(
                method,
                self.settings.url(target) + path,
                json=json,
                params=params or None,
                headers={"Authorization": f"Bearer {token.get_secret_value()}"},
            )
        except httpx.HTTPError as exc:
            raise TargetError(
                502, f"The {target} service could not be reached ({type(exc).__name__})."
            ) from exc
        if response.status_code >= 400:
            raise TargetError(response.status_code, _explain(target, response))
        return response.json() if response.content else None

    async def health(self) -> dict[str, tuple[bool, str]]:
        """Each service's /readyz: (ready, what it said)."""

        async def one(target: str) -> tuple[bool, str]:
            try:
                response = await self.client.get(self.settings.url(target) + "/readyz", timeout=3)
            except httpx.HTTPError as exc:
                return False, f"not reachable ({type(exc).__name__})"
            return response.status_code == 200, "ready" if response.status_code == 200 else _brief(response)

        results = await asyncio.gather(*(one(t) for t in TARGETS))
        return dict(zip(TARGETS, results, strict=True))


def _brief(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    if isinstance(body, dict):
        failing = [k for k, v in body.items() if v in (False, "down", "fail", "failing")]
        if failing:
            return "not ready: " + ", ".join(failing)
    return f"HTTP {response.status_code}"


def _explain(target: str, response: httpx.Response) -> str:
    """A problem+json answer as one plain sentence (title, detail and the fields named)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code == 401:
        setting = f"CONSOLE_{target.upper()}_TOKEN"
        return f"The {target} service refused the console's operator token: check {setting}."
    if isinstance(body, dict):
        parts = [str(body.get("title") or ""), str(body.get("detail") or "")]
        for error in body.get("errors") or []:
            if isinstance(error, dict):
                field = error.get("field") or error.get("loc") or ""
                parts.append(f"{field}: {error.get('message') or error.get('msg') or ''}")
        text = " — ".join(p for p in parts if p.strip())
        if text:
            return text
    return f"The {target} service answered HTTP {response.status_code}."
