"""Browser fixtures: one headless Chromium (Debian's, driven by Selenium) per session, axe and screenshots.

Browsers cannot be downloaded here, so the tests use the system `chromium` + `chromedriver`
(`make test` installs them with apt-get when missing and run as root); without them every browser
test is skipped with the reason.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Self

import pytest

CHROMIUM = os.environ.get("STREETNEEDS_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("STREETNEEDS_CHROMEDRIVER", "/usr/bin/chromedriver")
AXE_JS = Path(__file__).parent / "vendor" / "axe.min.js"
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(os.environ.get("STREETNEEDS_SCREENSHOTS", ROOT / ".local" / "screenshots"))
DESKTOP = (1280, 900)
PHONE = (390, 844)
# Impacts that fail a page; "minor" and "moderate" are reported by axe but not enforced.
FAILING_IMPACTS = ("serious", "critical")
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
)


def _missing() -> str | None:
    for path in (CHROMIUM, CHROMEDRIVER):
        if not (os.path.exists(path) and os.access(path, os.X_OK)):
            return (
                f"{path} is missing: install Debian's chromium and chromium-driver (make test does, as root)"
            )
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    return None


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """A headless Chromium (Selenium 4 WebDriver), 1280×900, with a fresh profile; quit at the end."""
    reason = _missing()
    if reason:
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="streetneeds-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--window-size={DESKTOP[0]},{DESKTOP[1]}")
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_window_size(*DESKTOP)
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def axe_violations(driver: Any, impacts: tuple[str, ...] = FAILING_IMPACTS) -> list[dict[str, Any]]:
    """Run axe-core in the current page; the violations whose impact is one of `impacts`."""
    if not driver.execute_script("return typeof window.axe !== 'undefined'"):
        driver.execute_script(AXE_JS.read_text(encoding="utf-8"))
    result = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {resultTypes: ['violations']})"
        ".then(r => done(JSON.stringify(r.violations)), e => done(JSON.stringify({error: String(e)})));"
    )
    violations = json.loads(result)
    if isinstance(violations, dict):
        raise RuntimeError(f"axe failed: {violations['error']}")
    return [v for v in violations if v.get("impact") in impacts]


def describe_violations(violations: list[dict[str, Any]]) -> str:
    """A readable list for an assertion message: rule, impact, help, and the first offending nodes."""
    lines = []
    for v in violations:
        targets = [", ".join(n.get("target", [])) for n in v.get("nodes", [])[:3]]
        lines.append(f"{v['id']} ({v['impact']}): {v['help']} — {'; '.join(targets)}")
    return "\n".join(lines)


def save_screenshot(
    driver: Any, name: str, size: tuple[int, int] | None = None, full_page: bool = True
) -> Path:
    """Write a PNG of the current page (optionally at `size`; the whole page, not only the window,
    up to 8,000 px tall) to the git-ignored screenshots folder."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    if size:
        driver.set_window_size(*size)
    path = SCREENSHOTS / f"{name}.png"
    if not full_page:
        driver.save_screenshot(str(path))
        return path
    content = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": content["width"], "height": min(content["height"], 8000), "scale": 1}
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip}
    )
    path.write_bytes(base64.b64decode(shot["data"]))
    return path


@pytest.fixture(scope="session")
def axe():
    """The axe helper as a fixture, for tests that prefer injection to an import."""
    return axe_violations


@pytest.fixture(scope="session")
def screenshot():
    return save_screenshot


class BackgroundSite:
    """Services served from an event loop on a background thread, so that synchronous Selenium tests
    can browse them. A subclass serves its apps in `_serve` and calls `_serve_until_stopped` once
    they listen; `start` returns when they do (or raises what stopped them), `stop` ends the loop."""

    def __init__(self, stack: dict[str, str], template: str) -> None:
        self.stack, self.template = stack, template
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name=type(self).__name__, daemon=True)

    def start(self) -> Self:
        self._thread.start()
        if not self._ready.wait(120) or self._error:
            raise RuntimeError(f"the services did not start: {self._error!r}")
        return self

    def stop(self) -> None:
        if self._loop and self._stop:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(60)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to the test thread
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        await self._serve()

    async def _serve(self) -> None:
        raise NotImplementedError

    async def _serve_until_stopped(self) -> None:
        assert self._stop is not None
        self._ready.set()
        await self._stop.wait()

    def send(self, topic: str, *records: tuple[str, bytes]) -> None:
        """Put (key, value) records on `topic` (from this, the test's, thread) and wait for the acks,
        as the service upstream of the site would."""
        from aiokafka import AIOKafkaProducer

        async def send() -> None:
            producer = AIOKafkaProducer(bootstrap_servers=self.stack["kafka"], acks="all")
            await producer.start()
            try:
                for key, value in records:
                    await producer.send_and_wait(topic, value, key=key.encode())
            finally:
                await producer.stop()

        asyncio.run(send())

    def publish(self, *prompts: Any) -> None:
        """Publish PromptPublished events as the prompter does."""
        from shared.contracts import PROMPTS

        self.send(PROMPTS.name, *((p.prompt_id, p.model_dump_json().encode()) for p in prompts))


class LiveFeeds(BackgroundSite):
    """The feeds service (real Kafka + PostgreSQL, Camden gazetteer), for journeys that publish the
    prompts themselves."""

    def __init__(self, stack: dict[str, str], template: str) -> None:
        super().__init__(stack, template)
        self.base = ""
        self.settings = None

    async def _serve(self) -> None:
        from services.feeds.main import create_app
        from services.feeds.settings import FeedsSettings
        from shared.db import create_database, drop_database
        from shared.ratelimit import TokenBucket
        from tests.support import loopback_socket, serve

        url = await create_database(self.stack["database"], prefix="t_browser", template=self.template)
        sock, self.base = loopback_socket()
        self.settings = FeedsSettings(
            database_url=url,
            kafka_bootstrap_servers=self.stack["kafka"],
            base_url=self.base,
            group_id=f"feeds-browser-{uuid.uuid4().hex[:8]}",
            notice_contact="Camden Council contact centre (example): 020 0000 0000",
            _env_file=None,
        )
        app = create_app(self.settings)
        # Every journey subscribes from the same loopback client: a larger bucket than a resident's.
        app.state.runtime.limiters["subscriptions"] = TokenBucket(600, 600)
        try:
            async with serve(app, sock):
                await self._serve_until_stopped()
        finally:
            await drop_database(self.stack["database"], url)


@pytest.fixture(scope="session")
def feeds_site(stack: dict[str, str], gazetteer_template: str) -> Iterator[LiveFeeds]:
    """The running feeds service for browser journeys (skips, like every integration test, without
    Kafka/PostgreSQL)."""
    site = LiveFeeds(stack, gazetteer_template).start()
    try:
        yield site
    finally:
        site.stop()


def place_prompt(street: Any, tag: str, category: str = "fly_tipping", title: str | None = None) -> Any:
    """A place prompt on one street, as the prompter publishes it."""
    import datetime as dt

    from shared.contracts import OpportunityLink, PromptPublished

    return PromptPublished(
        prompt_id=f"b{tag}-{street.id}:{category}",
        revision=1,
        area_id=street.id,
        area_kind="street",
        area_name=street.name,
        ward_code=street.ward_code,
        street_ids=(street.id,),
        category=category,
        sensitivity="place",
        title=title or f"Fly-tipping on {street.name} ({tag})",
        body="Bags have been left by the corner. A clean-up group meets nearby.",
        opportunities=(
            OpportunityLink(
                opportunity_id="o-1",
                title="Clean-up Saturday",
                organisation="Camden Clean Streets",
                url="https://example.org/cleanup",
                when="Saturdays 10am at the library",
            ),
        ),
        published_at=dt.datetime.now(dt.UTC).replace(microsecond=0),
    )


@pytest.fixture(scope="session")
def place_prompt_factory():
    return place_prompt
