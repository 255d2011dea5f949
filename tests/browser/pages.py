"""Shared steps of the browser journeys: the pages a resident meets, waits, and points on streets."""

from __future__ import annotations

from typing import Any

from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

WAIT_S = 60


def wait(driver: Any, condition, timeout: float = WAIT_S):
    return WebDriverWait(driver, timeout).until(condition)


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
