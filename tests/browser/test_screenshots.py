"""Screenshots of every page a resident meets, at desktop and phone sizes (`make screenshots`).

Written to .local/screenshots/ (git-ignored) for people to look at; the test checks only that each
page rendered its heading (and its map, where it has one) before the picture was taken.
"""

from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC

from tests.browser.conftest import DESKTOP, PHONE, SCREENSHOTS
from tests.browser.pages import many_street_postcode, map_drawn, one_street_postcode, wait

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def test_screenshots_of_every_page(
    browser, feeds_site, camden_gazetteer, place_prompt_factory, random_id, screenshot
):
    base = feeds_site.base
    code, streets = many_street_postcode(camden_gazetteer)
    street = streets[0]
    _, single = one_street_postcode(camden_gazetteer)
    feeds_site.publish(
        place_prompt_factory(street, f"shot{random_id}"),
        place_prompt_factory(
            street, f"shot{random_id}", "graffiti", f"Graffiti on {street.name}: paint and brushes wanted"
        ),
    )
    browser.set_window_size(*DESKTOP)
    browser.get(f"{base}/streets/{street.id}")
    browser.find_element(By.XPATH, "//button[contains(., 'Get a private feed link for this')]").click()
    wait(browser, EC.presence_of_element_located((By.CSS_SELECTOR, ".secret a")))
    private = browser.find_element(By.CSS_SELECTOR, ".secret a").get_attribute("href")
    for size_name, size in (("desktop", DESKTOP), ("phone", PHONE)):  # the answer to a POST: shot here
        browser.set_window_size(*size)
        map_drawn(browser)
        screenshot(browser, f"subscribed-{size_name}")
    browser.set_window_size(*DESKTOP)
    pages = {
        "home": f"{base}/",
        "search-postcode": f"{base}/streets?q={code.replace(' ', '+')}",
        "search-partial-postcode": f"{base}/streets?q={code[:-2].replace(' ', '+')}",
        "search-misspelt": f"{base}/streets?q=camdn+rd",
        "search-unknown-postcode": f"{base}/streets?q=ZZ9+9ZZ",
        "street": f"{base}/streets/{street.id}",
        "street-quiet": f"{base}/streets/{single.id}",
        "street-notice": f"{base}/streets/{street.id}/notice",
        "ward": f"{base}/wards/{street.ward_code}",
        "ward-notice": f"{base}/wards/{street.ward_code}/notice",
        "subscription": private,
        "unsubscribe": f"{private}/unsubscribe",
        "not-found": f"{base}/streets/no-such-street",
        "docs": f"{base}/docs",
    }
    for size_name, size in (("desktop", DESKTOP), ("phone", PHONE)):
        browser.set_window_size(*size)
        for name, url in pages.items():
            browser.get(url)
            if name == "docs":
                wait(browser, EC.presence_of_element_located((By.CSS_SELECTOR, ".swagger-ui .opblock-tag")))
            else:
                assert browser.find_element(By.TAG_NAME, "h1").text, name
            if browser.find_elements(By.ID, "map"):
                map_drawn(browser)
            path = screenshot(browser, f"{name}-{size_name}")
            assert path.stat().st_size > 10_000, f"{path} looks empty"
    browser.set_window_size(*DESKTOP)
    assert len(list(SCREENSHOTS.glob("*.png"))) >= 2 * len(pages)
