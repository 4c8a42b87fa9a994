"""The NYSE trading calendar, computed by rule: full holidays, early closes, session hours.

Years covered: ``FIRST_YEAR`` (2022, the first year with Juneteenth) to ``LAST_YEAR`` (2099),
by the rules NYSE applies today; another year raises ``BadInputError``. Not covered, because no
rule foresees them: unscheduled closings (a national day of mourning such as 2025-01-09, weather,
emergencies), and any future change of NYSE's rules.

Full holidays: New Year's Day, Martin Luther King Jr. Day (3rd Monday of January), Washington's
Birthday (3rd Monday of February), Good Friday (two days before Easter Sunday, by the Gregorian
computus), Memorial Day (last Monday of May), Juneteenth (June 19), Independence Day (July 4),
Labor Day (1st Monday of September), Thanksgiving (4th Thursday of November), Christmas Day.
A fixed-date holiday on a Saturday is observed on the Friday before, on a Sunday on the Monday
after; except New Year's Day on a Saturday, which NYSE does not observe on the Friday before
(that Friday closes a year: 2027-12-31 is a normal trading day).

Early closes (13:00 instead of 16:00, New York time): July 3 when it is a Monday to Thursday (the
day before Independence Day; when July 4 is a weekend day there is none, as in 2026 and 2027), the
day after Thanksgiving, and December 24 when it is a Monday to Thursday (on a Friday it is the
observed Christmas holiday itself).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from tradewise_ops.errors import BadInputError

FIRST_YEAR = 2022
LAST_YEAR = 2099
MARKET_TIMEZONE = "America/New_York"
OPEN = time(9, 30)
CLOSE = time(16, 0)
EARLY_CLOSE = time(13, 0)

_MON, _THU, _FRI, _SAT, _SUN = 0, 3, 4, 5, 6


@dataclass(frozen=True)
class Session:
    """One trading day's regular session, New York time; ``early`` on a 13:00 close."""

    day: date
    open: time
    close: time
    early: bool = False


def easter_sunday(year: int) -> date:
    """Easter Sunday of ``year``: the anonymous Gregorian (Meeus/Jones/Butcher) computus."""
    a = year % 19
    b, c = divmod(year, 100)
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    lw = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * lw) // 451
    month, day = divmod(h + lw - 7 * m + 114, 31)
    return date(year, month, day + 1)


def holidays(year: int) -> dict[date, str]:
    """The full-day NYSE holidays of ``year``: observed date -> name, in date order."""
    return dict(_holidays(_covered(year)))


def early_closes(year: int) -> dict[date, str]:
    """The 13:00 early closes of ``year``: date -> why, in date order."""
    return dict(_early_closes(_covered(year)))


def is_trading_day(day: date) -> bool:
    """A weekday that is not a full holiday."""
    return day.weekday() < _SAT and day not in _holiday_dates(_covered(day.year))


def session(day: date) -> Session | None:
    """The regular session of ``day``, or None when the market is closed all day."""
    if not is_trading_day(day):
        return None
    early = day in dict(_early_closes(day.year))
    return Session(day, OPEN, EARLY_CLOSE if early else CLOSE, early)


def closed_reason(day: date) -> str | None:
    """Why the market is closed on ``day`` ("Good Friday", "Saturday"), None on a trading day."""
    name = dict(_holidays(_covered(day.year))).get(day)
    if name:
        return name
    if day.weekday() >= _SAT:
        return day.strftime("%A")
    return None


def market_date(moment: datetime) -> date:
    """The date on the exchange's clock (New York) at ``moment`` (an aware datetime)."""
    if moment.tzinfo is None:
        raise BadInputError(f"time {moment.isoformat()} has no time zone")
    return moment.astimezone(ZoneInfo(MARKET_TIMEZONE)).date()


# ------------------------------------------------------------------------------------------
def _covered(year: int) -> int:
    if not FIRST_YEAR <= year <= LAST_YEAR:
        raise BadInputError(
            f"the NYSE calendar covers {FIRST_YEAR} to {LAST_YEAR}; {year} is outside it"
        )
    return year


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    first = date(year, month, 1)
    return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))


def _last_weekday(year: int, month: int, weekday: int) -> date:
    last = date(year + (month == 12), month % 12 + 1, 1) - timedelta(days=1)
    return last - timedelta(days=(last.weekday() - weekday) % 7)


def _observed(day: date) -> date:
    if day.weekday() == _SAT:
        return day - timedelta(days=1)
    if day.weekday() == _SUN:
        return day + timedelta(days=1)
    return day


@lru_cache(maxsize=256)
def _holidays(year: int) -> tuple[tuple[date, str], ...]:
    days: list[tuple[date, str]] = []
    new_year = date(year, 1, 1)
    if new_year.weekday() != _SAT:  # NYSE: a Saturday New Year's Day is not observed at all
        days.append((_observed(new_year), "New Year's Day"))
    days.append((_nth_weekday(year, 1, _MON, 3), "Martin Luther King Jr. Day"))
    days.append((_nth_weekday(year, 2, _MON, 3), "Washington's Birthday"))
    days.append((easter_sunday(year) - timedelta(days=2), "Good Friday"))
    days.append((_last_weekday(year, 5, _MON), "Memorial Day"))
    if year >= 2022:
        days.append((_observed(date(year, 6, 19)), "Juneteenth"))
    days.append((_observed(date(year, 7, 4)), "Independence Day"))
    days.append((_nth_weekday(year, 9, _MON, 1), "Labor Day"))
    days.append((_nth_weekday(year, 11, _THU, 4), "Thanksgiving Day"))
    days.append((_observed(date(year, 12, 25)), "Christmas Day"))
    return tuple(sorted(days))


@lru_cache(maxsize=256)
def _holiday_dates(year: int) -> frozenset[date]:
    return frozenset(d for d, _ in _holidays(year))


@lru_cache(maxsize=256)
def _early_closes(year: int) -> tuple[tuple[date, str], ...]:
    days: list[tuple[date, str]] = []
    july3 = date(year, 7, 3)
    if july3.weekday() <= _THU:
        days.append((july3, "day before Independence Day"))
    days.append((_nth_weekday(year, 11, _THU, 4) + timedelta(days=1), "day after Thanksgiving"))
    dec24 = date(year, 12, 24)
    if dec24.weekday() <= _THU:
        days.append((dec24, "Christmas Eve"))
    return tuple(sorted(days))
