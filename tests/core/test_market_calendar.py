"""The NYSE calendar against the exchange's published holidays and early closes.

The dates below are copied from NYSE Group's announcements of its 2026, 2027 and 2028 holiday
and early-closing calendars (published 2024-11-08 and 2025-12-23); the module computes them by
rule, so a wrong rule shows up as a difference here.
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from tradewise_ops.core import market_calendar as cal
from tradewise_ops.errors import BadInputError

PUBLISHED_HOLIDAYS: dict[int, list[str]] = {
    2026: [
        "2026-01-01",  # New Year's Day, Thursday
        "2026-01-19",  # Martin Luther King, Jr. Day
        "2026-02-16",  # Washington's Birthday
        "2026-04-03",  # Good Friday
        "2026-05-25",  # Memorial Day
        "2026-06-19",  # Juneteenth, Friday
        "2026-07-03",  # Independence Day observed (July 4 is a Saturday)
        "2026-09-07",  # Labor Day
        "2026-11-26",  # Thanksgiving Day
        "2026-12-25",  # Christmas Day, Friday
    ],
    2027: [
        "2027-01-01",  # New Year's Day, Friday
        "2027-01-18",
        "2027-02-15",
        "2027-03-26",  # Good Friday (Easter is March 28)
        "2027-05-31",
        "2027-06-18",  # Juneteenth observed (June 19 is a Saturday)
        "2027-07-05",  # Independence Day observed (July 4 is a Sunday)
        "2027-09-06",
        "2027-11-25",
        "2027-12-24",  # Christmas Day observed (December 25 is a Saturday)
    ],
    2028: [
        # no New Year's Day: January 1, 2028 is a Saturday and NYSE does not observe it
        "2028-01-17",
        "2028-02-21",
        "2028-04-14",
        "2028-05-29",
        "2028-06-19",
        "2028-07-04",
        "2028-09-04",
        "2028-11-23",
        "2028-12-25",
    ],
}
PUBLISHED_EARLY_CLOSES: dict[int, list[str]] = {
    2026: ["2026-11-27", "2026-12-24"],  # no July early close: July 3 is the holiday
    2027: ["2027-11-26"],  # July 3 a Saturday, December 24 the holiday: only one
    2028: ["2028-07-03", "2028-11-24"],  # December 24 is a Sunday
}


@pytest.mark.parametrize("year", sorted(PUBLISHED_HOLIDAYS))
def test_full_holidays_match_the_published_calendar(year: int) -> None:
    expected = [date.fromisoformat(d) for d in PUBLISHED_HOLIDAYS[year]]
    assert list(cal.holidays(year)) == expected
    for day in expected:
        assert not cal.is_trading_day(day)
        assert cal.session(day) is None


@pytest.mark.parametrize("year", sorted(PUBLISHED_EARLY_CLOSES))
def test_early_closes_match_the_published_calendar(year: int) -> None:
    expected = [date.fromisoformat(d) for d in PUBLISHED_EARLY_CLOSES[year]]
    assert list(cal.early_closes(year)) == expected
    for day in expected:
        session = cal.session(day)
        assert session is not None and session.early
        assert session.close == cal.EARLY_CLOSE == cal.EARLY_CLOSE.replace(hour=13)


@pytest.mark.parametrize("year", sorted(PUBLISHED_HOLIDAYS))
def test_every_other_weekday_is_a_full_session(year: int) -> None:
    closed = {date.fromisoformat(d) for d in PUBLISHED_HOLIDAYS[year]}
    early = {date.fromisoformat(d) for d in PUBLISHED_EARLY_CLOSES[year]}
    day, trading = date(year, 1, 1), 0
    while day.year == year:
        session = cal.session(day)
        if day.weekday() >= 5 or day in closed:
            assert session is None, day
        else:
            trading += 1
            assert session is not None
            assert (session.open, session.close) == (
                cal.OPEN,
                cal.EARLY_CLOSE if day in early else cal.CLOSE,
            ), day
        day += timedelta(days=1)
    weekdays = sum(
        1
        for n in range(366)
        if (date(year, 1, 1) + timedelta(n)).year == year
        and (date(year, 1, 1) + timedelta(n)).weekday() < 5
    )
    assert trading == weekdays - len(closed)


def test_the_saturday_new_year_is_not_observed_on_the_friday_before() -> None:
    # 2022-01-01 and 2028-01-01 were/are Saturdays: the Fridays before are trading days
    assert cal.is_trading_day(date(2021, 12, 31)) if 2021 >= cal.FIRST_YEAR else True
    assert cal.is_trading_day(date(2027, 12, 31))
    assert date(2022, 1, 1) not in cal.holidays(2022)
    # but Christmas on a Saturday is observed on the Friday (2027-12-24), and a Sunday
    # holiday on the Monday after (2023-01-02 for New Year's Day 2023)
    assert cal.closed_reason(date(2027, 12, 24)) == "Christmas Day"
    assert cal.closed_reason(date(2023, 1, 2)) == "New Year's Day"


@pytest.mark.parametrize(
    ("year", "easter"),
    [
        (2022, "04-17"),
        (2024, "03-31"),
        (2025, "04-20"),
        (2026, "04-05"),
        (2038, "04-25"),
        (2049, "04-18"),
        (2095, "04-24"),
    ],
)
def test_easter_computus(year: int, easter: str) -> None:
    assert cal.easter_sunday(year) == date.fromisoformat(f"{year}-{easter}")


def test_juneteenth_counts_from_2022_and_the_range_is_stated() -> None:
    assert cal.closed_reason(date(2022, 6, 20)) == "Juneteenth"  # June 19, 2022: a Sunday
    assert cal.FIRST_YEAR == 2022 and cal.LAST_YEAR == 2099
    with pytest.raises(BadInputError, match="covers 2022 to 2099"):
        cal.holidays(2021)
    with pytest.raises(BadInputError, match="2100 is outside"):
        cal.is_trading_day(date(2100, 1, 4))


def test_weekends_and_market_date() -> None:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    assert cal.closed_reason(date(2026, 3, 7)) == "Saturday"
    assert cal.closed_reason(date(2026, 3, 9)) is None
    # 02:00 UTC on a Saturday is still Friday evening in New York
    late = datetime(2026, 3, 7, 2, 0, tzinfo=ZoneInfo("UTC"))
    assert cal.market_date(late) == date(2026, 3, 6)
    with pytest.raises(BadInputError):
        cal.market_date(datetime(2026, 3, 7, 2, 0))
