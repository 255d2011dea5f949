"""Impact figures keep to the disclosure rules (property-based), and add up."""

from __future__ import annotations

import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st

from services.prompter.charts import Series, bar_chart
from services.prompter.impact import BANDS, HistoryRow, before_after, summarise
from shared.contracts import Category, Sensitivity, info

PLACE = [str(c) for c in Category if info(c).sensitivity is Sensitivity.PLACE]
PERSON = [str(c) for c in Category if info(c).sensitivity is Sensitivity.PERSON]
DAYS = st.dates(min_value=dt.date(2026, 1, 1), max_value=dt.date(2026, 12, 31))


@st.composite
def histories(draw) -> list[HistoryRow]:
    """Changes of a few areas in the order they happened, as street-needs.v1 can carry them."""
    rows = []
    for n in range(draw(st.integers(0, 6))):
        category = draw(st.sampled_from(PLACE + PERSON))
        prompt_id = f"area-{n}:{category}"
        days = sorted(draw(st.lists(DAYS, min_size=1, max_size=6)))
        for day in days:
            active = draw(st.booleans())
            if category in PLACE:
                rows.append(
                    HistoryRow(
                        prompt_id, category, active, day, count=draw(st.integers(1, 40)) if active else None
                    )
                )
            elif draw(st.booleans()) and active:
                rows.append(
                    HistoryRow(prompt_id, category, True, day, trend=draw(st.sampled_from(["up", "down"])))
                )
            else:
                rows.append(
                    HistoryRow(
                        prompt_id,
                        category,
                        active,
                        day,
                        band=draw(st.sampled_from(BANDS)) if active else None,
                    )
                )
    return rows


def _with_leaked_counts(rows: list[HistoryRow], leak: int) -> list[HistoryRow]:
    """The same history with a (forbidden) number of people on every person row."""
    return [
        HistoryRow(r.prompt_id, r.category, r.active, r.on_day, leak, r.band, r.trend)
        if r.category in PERSON
        else r
        for r in rows
    ]


@settings(max_examples=300, deadline=None)
@given(histories(), st.integers(1, 10_000))
def test_person_figures_never_depend_on_a_number_of_people(rows, leak):
    """Rule 4: person categories show bands only. Even if a count reached the history, no figure moves."""
    assert summarise(_with_leaked_counts(rows, leak)).person == summarise(rows).person


@settings(max_examples=300, deadline=None)
@given(histories())
def test_every_figure_keeps_to_the_rules(rows):
    summary = summarise(rows)
    assert set(summary.place) <= set(PLACE) and set(summary.person) <= set(PERSON)  # no category crosses over
    assert set(summary.open_reports) <= set(PLACE)  # a count of open things only for place categories
    areas = {r.prompt_id for r in rows}
    for months in summary.person.values():
        for cell in months.values():
            assert set(cell.areas_by_band) <= set(BANDS)  # only the released band words
            # Figures count published areas (each a public prompt), never more areas than exist.
            assert 0 <= sum(cell.areas_by_band.values()) <= len(areas)
            assert 0 <= cell.areas_raised <= len(areas) and 0 <= cell.areas_resolved <= len(areas)
            assert cell.trend in (None, "up", "down")  # rule 5: "more" or "fewer", nothing else
    # Place figures are exact and add up: what was raised minus what was resolved is what is open.
    for category, months in summary.place.items():
        raised = sum(c.raised for c in months.values())
        resolved = sum(c.resolved for c in months.values())
        assert min(raised, resolved) >= 0
        assert raised - resolved == summary.open_reports.get(category, 0)


def test_place_reports_raised_and_resolved_by_month():
    rows = [
        HistoryRow("s1:litter", "litter", True, dt.date(2026, 3, 2), count=3),
        HistoryRow("s1:litter", "litter", True, dt.date(2026, 3, 9), count=5),
        HistoryRow("s1:litter", "litter", True, dt.date(2026, 4, 1), count=1),
        HistoryRow("s1:litter", "litter", False, dt.date(2026, 5, 1)),
        HistoryRow("u1:isolation", "isolation", True, dt.date(2026, 4, 1), band="some"),
        HistoryRow("u1:isolation", "isolation", True, dt.date(2026, 4, 20), band="several"),
        HistoryRow("u1:isolation", "isolation", False, dt.date(2026, 5, 1)),
    ]
    summary = summarise(rows)
    litter = summary.place["litter"]
    march, april, may = dt.date(2026, 3, 1), dt.date(2026, 4, 1), dt.date(2026, 5, 1)
    assert (litter[march].raised, litter[march].resolved) == (5, 0)
    assert (litter[april].raised, litter[april].resolved) == (0, 4)
    assert (litter[may].raised, litter[may].resolved) == (0, 1)
    lonely = summary.person["isolation"]
    assert lonely[april].areas_by_band == {"several": 1}  # the month's latest band, one area
    assert (lonely[april].areas_raised, lonely[may].areas_resolved) == (1, 1)
    before, after = before_after(summary.place, dt.date(2026, 4, 15), dt.date(2026, 5, 20))
    assert (before, after) == (0.0, 2.5)


def test_chart_has_a_text_alternative_and_escapes():
    svg = str(
        bar_chart(
            "c", "Offers <each> month", "2 offers", ["Jan", "Feb"], [Series("Offers", [0, 2], "#00703c")]
        )
    )
    assert svg.startswith('<svg id="c" role="img" aria-labelledby="c-t c-d"')
    assert (
        '<title id="c-t">Offers &lt;each&gt; month</title>' in svg and '<desc id="c-d">2 offers</desc>' in svg
    )
    assert ">2</text>" in svg


def test_an_area_flagged_twice_in_a_month_began_once():
    """Found by the property above: flagged, cleared and flagged again counted two areas for one."""
    category, area = PERSON[0], f"area-0:{PERSON[0]}"
    rows = [
        HistoryRow(area, category, True, dt.date(2026, 3, 2), band=BANDS[0]),
        HistoryRow(area, category, False, dt.date(2026, 3, 9)),
        HistoryRow(area, category, True, dt.date(2026, 3, 20), band=BANDS[0]),
        HistoryRow(area, category, False, dt.date(2026, 4, 3)),
    ]
    months = summarise(rows).person[category]
    march, april = months[dt.date(2026, 3, 1)], months[dt.date(2026, 4, 1)]
    assert (march.areas_raised, march.areas_resolved) == (1, 1)
    assert (april.areas_raised, april.areas_resolved) == (0, 1)
