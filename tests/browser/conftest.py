"""Browser fixtures: one headless Chromium (Debian's, driven by Selenium) per session, axe and screenshots.

Browsers cannot be downloaded here, so the tests use the system `chromium` + `chromedriver`
(`make test` installs them with apt-get when missing and run as root); without them every browser
test is skipped with the reason.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


def save_screenshot(driver: Any, name: str, size: tuple[int, int] | None = None) -> Path:
    """Write a PNG of the current page (optionally at `size`) to the git-ignored screenshots folder."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    if size:
        driver.set_window_size(*size)
    path = SCREENSHOTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


@pytest.fixture(scope="session")
def axe():
    """The axe helper as a fixture, for tests that prefer injection to an import."""
    return axe_violations


@pytest.fixture(scope="session")
def screenshot():
    return save_screenshot
