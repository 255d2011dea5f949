"""Shared steps of the browser journeys: the pages a resident meets, waits, and points on streets."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

WAIT_S = 60


def _tolerant(condition):
    """The condition, read as False while the page it looks at is being replaced (a new page loading
    can make an element found a moment ago stale, or unknown to the inspector)."""

    def check(driver: Any):
        try:
            return condition(driver)
        except StaleElementReferenceException:
            return False
        except WebDriverException as exc:
            if "does not belong to the document" in str(exc):
                return False
            raise

    return check


def wait(driver: Any, condition, timeout: float = WAIT_S):
    return WebDriverWait(driver, timeout).until(_tolerant(condition))


def clicked(driver: Any, element: Any, timeout: float = WAIT_S) -> None:
    """Click something that loads a new page, and return once the old page has gone.

    Without this, a wait for a title or text that the old page also has succeeds at once, and the next
    look-up reads the old page (or finds it replaced under it).
    """
    old = driver.find_element(By.TAG_NAME, "html")
    element.click()
    WebDriverWait(driver, timeout).until(lambda _driver: _gone(old))


def _gone(element: Any) -> bool:
    """True once `element`'s document has been replaced. Mid-navigation, chromedriver sometimes says
    so with an "unknown error" (the node "does not belong to the document") instead of a stale
    element reference: seen in CI on a busy machine."""
    try:
        element.is_enabled()
    except StaleElementReferenceException:
        return True
    except WebDriverException as exc:
        if "does not belong to the document" in str(exc):
            return True
        raise
    return False


def map_drawn(driver: Any) -> Any:
    """Wait until the Leaflet map has drawn vector paths (streets, wards); return the map element."""
    wait(
        driver, EC.presence_of_element_located((By.CSS_SELECTOR, "#map.leaflet-container[data-loaded] path"))
    )
    return driver.find_element(By.ID, "map")


def one_street_postcode(gazetteer) -> tuple[str, Any]:
    code = next(c for c, ids in sorted(gazetteer.postcodes.items()) if len(ids) == 1)
    return code, gazetteer.streets[gazetteer.postcodes[code][0]]


def many_street_postcode(gazetteer) -> tuple[str, list[Any]]:
    code = next(c for c, ids in sorted(gazetteer.postcodes.items()) if len(ids) > 1)
    return code, [gazetteer.streets[i] for i in gazetteer.postcodes[code]]


def point_on(gazetteer, street) -> tuple[float, float]:
    """(lat, lon) of a point on the street inside the council."""
    for f in (0.5, 0.25, 0.75, 0.1, 0.9):
        p = street.geometry.interpolate(f, normalized=True)
        if gazetteer.contains(p.x, p.y):
            return round(p.y, 6), round(p.x, 6)
    raise AssertionError(f"no point of {street.name} is inside the council")


def until(check: Callable[[], Any], what: str, timeout: float = 120.0) -> Any:
    """What `check` returns once it is truthy (asked every 0.3 s): for what a journey waits on outside
    the browser (a mail in the mailbox, a page served); an AssertionError naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")
