"""Residents find their place, in a real headless Chromium against the real feeds service.

Postcode search → street page → map → follow → the private feed shows a new place need; "near me"
with a faked browser location; keyboard-only use; an axe-core scan of every page.
"""

from __future__ import annotations

import base64
import re
import time
from urllib.parse import unquote

import pytest
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC

from tests.browser.conftest import SCREENSHOTS
from tests.browser.pages import clicked, many_street_postcode, map_drawn, one_street_postcode, point_on, wait

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def _search(browser, base: str, query: str) -> None:
    browser.get(f"{base}/")
    old = browser.find_element(By.TAG_NAME, "html")
    box = browser.find_element(By.ID, "q")
    box.clear()
    box.send_keys(query, Keys.ENTER)
    wait(browser, EC.staleness_of(old))  # the results page has replaced the home page


def _until_text(browser, text: str, attempts: int = 60) -> None:
    """Reload until the page shows `text` (the feeds consume prompts asynchronously)."""
    for _ in range(attempts):
        try:
            if text in browser.find_element(By.TAG_NAME, "main").text:
                return
        except StaleElementReferenceException:  # the page was still loading
            pass
        time.sleep(1)
        browser.refresh()
    raise AssertionError(f"the page never showed {text!r}")


def test_postcode_to_street_page_map_follow_and_a_new_need(
    browser, feeds_site, camden_gazetteer, place_prompt_factory, random_id
):
    base = feeds_site.base
    code, street = one_street_postcode(camden_gazetteer)
    _search(browser, base, code.lower().replace(" ", ""))  # typed as residents do: "ec1m3ha"
    wait(browser, EC.url_contains(f"/streets/{street.id}"))
    assert browser.find_element(By.TAG_NAME, "h1").text == street.name
    shown = map_drawn(browser)
    assert shown.is_displayed() and shown.size["height"] > 100

    clicked(
        browser, browser.find_element(By.XPATH, "//button[contains(., 'Get a private feed link for this')]")
    )
    wait(browser, EC.presence_of_element_located((By.CSS_SELECTOR, ".secret a")))
    assert street.name in browser.find_element(By.TAG_NAME, "h1").text
    clicked(browser, browser.find_element(By.CSS_SELECTOR, ".secret a"))
    wait(browser, EC.url_contains("/s/"))
    assert "Nothing to help with here right now" in browser.page_source
    map_drawn(browser)
    focus = browser.execute_script(
        "return fetch(location.pathname + '/map.geojson').then(r => r.json())"
        ".then(d => d.features.filter(f => f.properties.role === 'focus').map(f => f.properties.id))"
    )
    assert focus == [street.id]  # the map opens on the street followed

    prompt = place_prompt_factory(street, random_id)
    feeds_site.publish(prompt)
    _until_text(browser, prompt.title)
    map_drawn(browser)  # the need is drawn on the map too, in its category's colour, with a key
    assert "Fly-tipping" in browser.find_element(By.ID, "map-legend").text
    link = browser.find_element(By.LINK_TEXT, prompt.title)
    assert unquote(link.get_attribute("href")).endswith(f"/prompts/{prompt.prompt_id}")


def test_a_postcode_on_several_streets_and_a_partial_postcode_list_choices(
    browser, feeds_site, camden_gazetteer
):
    base = feeds_site.base
    code, streets = many_street_postcode(camden_gazetteer)
    _search(browser, base, code)
    wait(browser, EC.presence_of_element_located((By.ID, "results")))
    assert browser.find_element(By.ID, "results").text == f"Streets in {code}"
    names = [a.text for a in browser.find_elements(By.CSS_SELECTOR, ".results a")]
    assert [n.split(",")[0] for n in names] == [s.name for s in streets]

    _search(browser, base, code[:-2])  # "NW1 9" -> candidates
    choices = [a.text for a in browser.find_elements(By.CSS_SELECTOR, ".results a")]
    assert code in choices
    clicked(browser, browser.find_element(By.LINK_TEXT, code))
    wait(browser, EC.text_to_be_present_in_element((By.ID, "results"), f"Streets in {code}"))

    _search(browser, base, "ZZ9 9ZZ")
    assert "We couldn't find ZZ9 9ZZ in Camden" in browser.find_element(By.TAG_NAME, "main").text


def test_misspelt_street_names_find_the_street(browser, feeds_site):
    for typed, wanted in (("camdn rd", "Camden Road"), ("kentish twn rd", "Kentish Town Road")):
        _search(browser, feeds_site.base, typed)
        first = browser.find_element(By.CSS_SELECTOR, ".results a")
        assert first.text.split(",")[0] == wanted, typed


def _fake_location(browser, base: str, lat: float, lon: float) -> None:
    browser.execute_cdp_cmd("Browser.grantPermissions", {"origin": base, "permissions": ["geolocation"]})
    browser.execute_cdp_cmd(
        "Emulation.setGeolocationOverride", {"latitude": lat, "longitude": lon, "accuracy": 20}
    )


def test_near_me_uses_the_browser_location_and_follows_whole_streets(browser, feeds_site, camden_gazetteer):
    base = feeds_site.base
    street = camden_gazetteer.streets[one_street_postcode(camden_gazetteer)[1].id]
    lat, lon = point_on(camden_gazetteer, street)
    _fake_location(browser, base, lat, lon)
    try:
        browser.get(f"{base}/")
        map_drawn(browser)
        assert not browser.find_elements(By.CSS_SELECTOR, "input#lat, input#lon"), "no typed coordinates"
        browser.find_element(By.ID, "near-locate").click()
        wait(browser, lambda d: d.find_element(By.ID, "near-lat").get_attribute("value"))
        assert abs(float(browser.find_element(By.ID, "near-lat").get_attribute("value")) - lat) < 1e-4
        assert "Point chosen" in browser.find_element(By.ID, "near-status").text
        clicked(browser, browser.find_element(By.XPATH, "//form[@id='near']//button[@type='submit']"))
        wait(browser, EC.presence_of_element_located((By.CSS_SELECTOR, ".secret a")))
        assert "Streets within 300 m of a point" in browser.find_element(By.TAG_NAME, "h1").text

        _fake_location(browser, base, 51.4545, -0.0983)  # Herne Hill: outside Camden
        browser.get(f"{base}/")
        browser.find_element(By.ID, "near-locate").click()
        wait(browser, lambda d: d.find_element(By.ID, "near-lat").get_attribute("value"))
        clicked(browser, browser.find_element(By.XPATH, "//form[@id='near']//button[@type='submit']"))
        wait(browser, EC.presence_of_element_located((By.CSS_SELECTOR, ".problem")))
        assert "That point is outside Camden" in browser.find_element(By.TAG_NAME, "main").text
    finally:
        browser.execute_cdp_cmd("Emulation.clearGeolocationOverride", {})


def test_clicking_the_map_picks_the_point(browser, feeds_site):
    browser.get(f"{feeds_site.base}/")
    shown = map_drawn(browser)
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", shown)
    shown.click()  # the centre of the map: inside Camden once the boundary is fitted
    wait(browser, lambda d: d.find_element(By.ID, "near-lon").get_attribute("value"))
    assert "Point chosen" in browser.find_element(By.ID, "near-status").text


def _tab_to(browser, matches, limit: int = 250):
    """Press Tab until the focused element satisfies `matches`; return it."""
    body = browser.find_element(By.TAG_NAME, "body")
    for _ in range(limit):
        try:
            active = browser.switch_to.active_element
            if matches(active):
                return active
            active.send_keys(Keys.TAB) if active.tag_name != "body" else body.send_keys(Keys.TAB)
        except StaleElementReferenceException:  # focus moved (a map redraw) between two calls: look again
            continue
    raise AssertionError("never reached the element by keyboard")


def test_keyboard_only_search_and_follow(browser, feeds_site, camden_gazetteer):
    base = feeds_site.base
    code, street = one_street_postcode(camden_gazetteer)
    browser.get(f"{base}/")
    skip = _tab_to(browser, lambda e: e.get_attribute("class") == "skip")
    assert skip.is_displayed()  # the skip link appears when focused
    box = _tab_to(browser, lambda e: e.get_attribute("id") == "q")
    box.send_keys(code, Keys.ENTER)
    wait(browser, EC.url_contains(f"/streets/{street.id}"))
    map_drawn(browser)
    # The map itself takes focus (arrow keys pan it), and tabbing carries on past it.
    _tab_to(browser, lambda e: e.get_attribute("id") == "map")
    button = _tab_to(browser, lambda e: e.text == "Get a private feed link for this")
    button.send_keys(Keys.ENTER)
    wait(browser, EC.presence_of_element_located((By.CSS_SELECTOR, ".secret a")))
    assert street.name in browser.find_element(By.TAG_NAME, "h1").text


def test_pages_work_without_javascript(browser, feeds_site, camden_gazetteer):
    """Without JS: no map and no near-me form, but the search, its results and the ward list work."""
    code, street = one_street_postcode(camden_gazetteer)
    browser.execute_cdp_cmd("Emulation.setScriptExecutionDisabled", {"value": True})
    try:
        browser.get(f"{feeds_site.base}/")
        assert "Choosing a point needs JavaScript" in browser.find_element(By.TAG_NAME, "main").text
        assert not browser.find_element(By.ID, "near").is_displayed()
        assert browser.find_elements(By.CSS_SELECTOR, "a[href*='/wards/']")
        _search(browser, feeds_site.base, code)
        wait(browser, EC.url_contains(f"/streets/{street.id}"))
        assert browser.find_element(By.TAG_NAME, "h1").text == street.name
        assert not browser.find_elements(By.CSS_SELECTOR, "#map.leaflet-container")
        clicked(
            browser,
            browser.find_element(By.XPATH, "//button[contains(., 'Get a private feed link for this')]"),
        )
        wait(browser, EC.presence_of_element_located((By.CSS_SELECTOR, ".secret a")))
    finally:
        browser.execute_cdp_cmd("Emulation.setScriptExecutionDisabled", {"value": False})


def _every_page(browser, site, gazetteer, prompt_factory, tag: str) -> list[str]:
    """URLs of every kind of page a resident meets (a prompt published first, so pages have one)."""
    base = site.base
    code, street = one_street_postcode(gazetteer)
    ward = street.ward_code
    prompt = prompt_factory(street, f"axe{tag}")
    site.publish(prompt)
    browser.get(f"{base}/streets/{street.id}")
    try:
        _until_text(browser, prompt.title, attempts=60)
    except AssertionError:
        pytest.fail("the published prompt never reached the street page")
    clicked(
        browser, browser.find_element(By.XPATH, "//button[contains(., 'Get a private feed link for this')]")
    )
    wait(browser, EC.presence_of_element_located((By.CSS_SELECTOR, ".secret a")))
    subscribed = browser.current_url
    private = browser.find_element(By.CSS_SELECTOR, ".secret a").get_attribute("href")
    return [
        f"{base}/",
        f"{base}/streets?q=camdn+rd",
        f"{base}/streets?q={code[:-2].replace(' ', '+')}",
        f"{base}/streets?q=ZZ9+9ZZ",
        f"{base}/streets?q=qqqqqq",
        f"{base}/streets/{street.id}",
        f"{base}/streets/{street.id}/notice",
        f"{base}/wards/{ward}",
        f"{base}/wards/{ward}/notice",
        f"{base}/prompts/{prompt.prompt_id}",
        private,
        f"{private}/unsubscribe",
        f"{base}/streets/no-such-street",
        subscribed,
    ]


def test_axe_finds_no_serious_or_critical_violations_on_any_page(
    browser, feeds_site, camden_gazetteer, place_prompt_factory, random_id, axe
):
    failures = {}
    for url in _every_page(browser, feeds_site, camden_gazetteer, place_prompt_factory, random_id):
        if url.endswith("/subscriptions") or "/subscriptions" in url:
            continue  # the POST result: scanned by the journey that makes it
        browser.get(url)
        if browser.find_elements(By.ID, "map"):
            try:
                map_drawn(browser)
            except TimeoutException:
                failures[url] = "map never drawn"
                continue
        # Offline: every script, style, image and data file comes from the service itself.
        loaded = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
        foreign = [u for u in loaded if not u.startswith(feeds_site.base) and not u.startswith("data:")]
        if foreign:
            failures[f"{url} (requests)"] = foreign
        found = axe(browser)
        if found:
            failures[url] = [(v["id"], v["impact"], [n["target"] for n in v["nodes"][:3]]) for v in found]
    assert not failures, failures


def test_subscribed_page_passes_axe(browser, feeds_site, camden_gazetteer, axe):
    street = one_street_postcode(camden_gazetteer)[1]
    browser.get(f"{feeds_site.base}/streets/{street.id}")
    clicked(
        browser, browser.find_element(By.XPATH, "//button[contains(., 'Get a private feed link for this')]")
    )
    wait(browser, EC.presence_of_element_located((By.CSS_SELECTOR, ".secret a")))
    map_drawn(browser)  # the streets just followed, on a map
    assert axe(browser) == []


def test_the_printed_notice_fits_one_a4_page(
    browser, feeds_site, camden_gazetteer, place_prompt_factory, random_id
):
    street = many_street_postcode(camden_gazetteer)[1][-1]
    long_body = "Neighbours have reported this several times this month. " * 8
    prompts = [
        place_prompt_factory(street, f"a4{random_id}", category, f"{category} on {street.name}: help wanted")
        for category in ("fly_tipping", "graffiti", "litter", "dumped_rubbish")
    ]
    feeds_site.publish(*[p.model_copy(update={"body": long_body[:1900]}) for p in prompts])
    browser.get(f"{feeds_site.base}/streets/{street.id}")
    _until_text(browser, prompts[-1].title)
    browser.get(f"{feeds_site.base}/streets/{street.id}/notice")
    assert browser.find_element(By.CSS_SELECTOR, ".find svg")  # the QR code, inline
    assert "/n/" in browser.find_element(By.CSS_SELECTOR, ".url").text
    assert "No internet?" in browser.find_element(By.TAG_NAME, "main").text
    pdf = browser.execute_cdp_cmd(
        "Page.printToPDF", {"paperWidth": 8.27, "paperHeight": 11.69, "preferCSSPageSize": True}
    )
    data = base64.b64decode(pdf["data"])
    (SCREENSHOTS / "notice.pdf").parent.mkdir(parents=True, exist_ok=True)
    (SCREENSHOTS / "notice.pdf").write_bytes(data)
    pages = len(re.findall(rb"/Type\s*/Page(?![s\w])", data))
    assert pages == 1, f"the notice printed on {pages} pages"


def test_selecting_a_street_on_a_ward_map_opens_its_page(browser, feeds_site, camden_gazetteer):
    street = one_street_postcode(camden_gazetteer)[1]
    browser.get(f"{feeds_site.base}/wards/{street.ward_code}")
    map_drawn(browser)
    # A click on one street's line, as Leaflet receives it from a pointer.
    browser.execute_script(
        "document.querySelector('.leaflet-streets-pane path.leaflet-interactive')"
        ".dispatchEvent(new MouseEvent('click', {bubbles: true, clientX: 10, clientY: 10}))"
    )
    wait(browser, EC.url_contains("/streets/s-"))
    assert browser.find_element(By.TAG_NAME, "h1").text in {s.name for s in camden_gazetteer.streets.values()}


def test_keyboard_users_choose_a_point_by_moving_the_map(browser, feeds_site):
    browser.get(f"{feeds_site.base}/")
    map_drawn(browser)
    shown = _tab_to(browser, lambda e: e.get_attribute("id") == "map")
    before = browser.execute_script("return document.querySelector('.leaflet-map-pane').style.transform")
    shown.send_keys(Keys.ARROW_LEFT, Keys.ARROW_LEFT, Keys.ARROW_UP)
    wait(
        browser,
        lambda d: (
            d.execute_script("return document.querySelector('.leaflet-map-pane').style.transform") != before
        ),
    )
    button = _tab_to(browser, lambda e: e.get_attribute("id") == "near-centre")
    button.send_keys(Keys.ENTER)
    wait(browser, lambda d: d.find_element(By.ID, "near-lat").get_attribute("value"))
    assert "Point chosen" in browser.find_element(By.ID, "near-status").text
