"""Predictive scaling by the market's calendar: which CronJobs a schedule needs, and at run time
whether a firing applies its profile, another one, or nothing.

A schedule (``schedules:`` in ``tradewise.yaml``) may say ``calendar: nyse``: then a firing on a
day the exchange is closed (a weekend, a holiday of ``core.market_calendar``) applies nothing and
says why, so there is no pre-market scale-up on Good Friday. With ``anchor: close`` the step
follows the close: its time is the regular close (16:00) plus an offset, and on an early close
(13:00) it moves by the same offset, done by a second CronJob (``<name>-early-close``, the cron
three hours earlier, July, November and December only) that applies only on early-close days
while the regular one stands down on them. ``windows:`` (``from``/``until`` as ``MM-DD``, yearly,
or ``YYYY-MM-DD``, once; both days included) select another profile inside a date range, such
as an earnings season. The CronJobs run ``tradewise scale traffic PROFILE --schedule NAME``; the
command decides with ``decide`` at run time, against the config the image carries.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from tradewise_ops.core import market_calendar as cal
from tradewise_ops.errors import BadInputError

CALENDARS = ("nyse",)
ANCHORS = ("open", "close")
EARLY_CLOSE_SUFFIX = "-early-close"
# an early close is 13:00 instead of 16:00: a close-anchored step moves three hours earlier
_EARLY_SHIFT_MINUTES = (cal.CLOSE.hour - cal.EARLY_CLOSE.hour) * 60 + (
    cal.CLOSE.minute - cal.EARLY_CLOSE.minute
)
_EARLY_CLOSE_MONTHS = "7,11,12"  # July 3, the day after Thanksgiving, Christmas Eve
_MONTH_DAY = re.compile(r"^(\d{2})-(\d{2})$")
_FULL_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")


@dataclass(frozen=True)
class ScheduleWindow:
    """A date range in which a schedule applies ``profile`` instead of its own.

    ``start``/``until`` are both ``MM-DD`` (every year; ``12-15`` to ``01-10`` wraps the new
    year) or both ``YYYY-MM-DD`` (once). Both days are inside.
    """

    name: str
    start: str
    until: str
    profile: str

    def contains(self, day: date) -> bool:
        """Whether ``day`` is inside the window."""
        if _FULL_DATE.match(self.start):
            return date.fromisoformat(self.start) <= day <= date.fromisoformat(self.until)
        lo, hi, md = _md(self.start), _md(self.until), (day.month, day.day)
        return lo <= md <= hi if lo <= hi else md >= lo or md <= hi


@dataclass(frozen=True)
class Schedule:
    """A profile applied on a cron schedule inside the cluster (predictive scaling)."""

    name: str
    profile: str
    cron: str
    timezone: str
    # issue 16, by the market's calendar (core.schedule_runs): skip closed days, follow the close
    calendar: str | None = None
    anchor: str | None = None
    windows: tuple[ScheduleWindow, ...] = ()


@dataclass(frozen=True)
class ScheduledJob:
    """One CronJob of a schedule: its name suffix, cron, time zone and the CLI arguments."""

    name: str
    schedule: str
    profile: str
    cron: str
    timezone: str
    args: tuple[str, ...]


@dataclass(frozen=True)
class RunDecision:
    """What one firing of a schedule does: apply ``profile``, or skip; ``reason`` says why."""

    run: bool
    profile: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """The decision as JSON-ready data."""
        return {"run": self.run, "profile": self.profile, "reason": self.reason}


# ------------------------------------------------------------------------------------------
# config
# ------------------------------------------------------------------------------------------
def parse_calendar_keys(
    raw: Mapping[str, Any],
    key: str,
    cron: str,
    timezone: str,
    profiles: Collection[str],
    fail: Callable[[str, Any, str], Any],
) -> tuple[str | None, str | None, tuple[ScheduleWindow, ...]]:
    """``calendar``, ``anchor`` and ``windows`` of one schedule entry, checked.

    ``fail(key, value, allowed)`` raises the config's error (it names the file).
    """
    calendar = raw.get("calendar")
    if calendar is not None and calendar not in CALENDARS:
        fail(f"{key}.calendar", calendar, "one of " + ", ".join(CALENDARS) + " (or leave it out)")
    anchor = raw.get("anchor")
    if anchor is not None:
        if anchor not in ANCHORS:
            fail(f"{key}.anchor", anchor, "one of " + ", ".join(ANCHORS))
        if calendar is None:
            fail(f"{key}.anchor", anchor, "an anchor only with a calendar (calendar: nyse)")
        if timezone != cal.MARKET_TIMEZONE:
            fail(f"{key}.timezone", timezone, f"{cal.MARKET_TIMEZONE} for a market-anchored step")
        if anchor == "close":
            minute, hour = cron.split()[:2]
            if not (minute.isdigit() and hour.isdigit()):
                fail(f"{key}.cron", cron, "a single minute and hour (like '30 16 * * 1-5')")
            if int(hour) * 60 + int(minute) < _EARLY_SHIFT_MINUTES:
                fail(f"{key}.cron", cron, "a time after 03:00 (an early close moves it 3h)")
    windows_raw = raw.get("windows") or []
    if not isinstance(windows_raw, list):
        fail(f"{key}.windows", windows_raw, "a list of {name, from, until, profile}")
    windows: list[ScheduleWindow] = []
    for i, wraw in enumerate(windows_raw):
        wkey = f"{key}.windows[{i}]"
        if not isinstance(wraw, dict):
            fail(wkey, wraw, "a mapping with name, from, until and profile")
        extra = set(wraw) - {"name", "from", "until", "profile"}
        if extra:
            fail(f"{wkey}.{sorted(extra)[0]}", wraw[sorted(extra)[0]], "name, from, until, profile")
        name = wraw.get("name", f"window-{i + 1}")
        if not isinstance(name, str) or not name:
            fail(f"{wkey}.name", name, "a non-empty string")
        start, until = str(wraw.get("from", "")), str(wraw.get("until", ""))
        for what, text in (("from", start), ("until", until)):
            if not _valid_day(text):
                fail(f"{wkey}.{what}", wraw.get(what), "a day as MM-DD (yearly) or YYYY-MM-DD")
        if bool(_FULL_DATE.match(start)) != bool(_FULL_DATE.match(until)):
            fail(f"{wkey}.until", until, "the same form as from (both MM-DD or both YYYY-MM-DD)")
        if _FULL_DATE.match(start) and start > until:
            fail(f"{wkey}.until", until, f"a day on or after from ({start})")
        profile = wraw.get("profile")
        if profile not in profiles:
            fail(f"{wkey}.profile", profile, "one of " + ", ".join(profiles))
        window = ScheduleWindow(str(name), start, until, str(profile))
        for other in windows:
            clash = _overlap(window, other)
            if clash is not None:
                fail(wkey, name, f"a window apart from {other.name!r} (both hold {clash})")
        windows.append(window)
    return calendar, anchor, tuple(windows)


# ------------------------------------------------------------------------------------------
# rendering
# ------------------------------------------------------------------------------------------
# a scheduled scale that meets a deploy waits for it (the CronJob's activeDeadlineSeconds: 600)
SCHEDULED_LOCK_WAIT = "8m"


def scheduled_jobs(schedules: Sequence[Schedule], env: str) -> list[ScheduledJob]:
    """The CronJobs of ``schedules``: one each, and one more for a close-anchored step."""
    jobs: list[ScheduledJob] = []
    for s in schedules:
        base = (
            "scale", "traffic", s.profile, "--schedule", s.name, "--env", env, "--yes",
            f"--wait-for-lock={SCHEDULED_LOCK_WAIT}",
        )  # fmt: skip
        jobs.append(ScheduledJob(s.name, s.name, s.profile, s.cron, s.timezone, base))
        if s.calendar is not None and s.anchor == "close":
            jobs.append(
                ScheduledJob(
                    s.name + EARLY_CLOSE_SUFFIX,
                    s.name,
                    s.profile,
                    early_close_cron(s.cron),
                    s.timezone,
                    (*base[:5], "--early-close", *base[5:]),
                )
            )
    return jobs


def early_close_cron(cron: str) -> str:
    """``cron`` moved three hours earlier, limited to the months that have early closes."""
    minute, hour, dom, month, dow = cron.split()
    total = int(hour) * 60 + int(minute) - _EARLY_SHIFT_MINUTES
    if month == "*":
        month = _EARLY_CLOSE_MONTHS
    return f"{total % 60} {total // 60} {dom} {month} {dow}"


# ------------------------------------------------------------------------------------------
# run time
# ------------------------------------------------------------------------------------------
def find_schedule(schedules: Sequence[Schedule], name: str) -> Schedule:
    """The schedule called ``name`` (``BadInputError`` naming the known ones)."""
    for s in schedules:
        if s.name == name:
            return s
    known = ", ".join(s.name for s in schedules) or "none in this config"
    raise BadInputError(f"unknown schedule {name!r}: the config has {known}")


def decide(
    schedule: Schedule, profile: str, now: datetime, early_close_slot: bool = False
) -> RunDecision:
    """What a firing of ``schedule`` at ``now`` (aware) does, given the CronJob's ``profile``.

    ``early_close_slot``: the firing is the ``-early-close`` CronJob's. Weekends and holidays
    skip (with a calendar); a close-anchored step runs from one of its two CronJobs a day; a
    window containing the day replaces the profile.
    """
    if early_close_slot and schedule.anchor != "close":
        raise BadInputError(
            f"--early-close: schedule {schedule.name!r} does not follow the close (anchor: close)"
        )
    day = cal.market_date(now)
    chosen, why = profile, ""
    for window in schedule.windows:
        if window.contains(day):
            chosen, why = window.profile, f" (window {window.name}: {window.start}..{window.until})"
            break
    stamp = f"{schedule.name} on {day.isoformat()} ({day.strftime('%a')})"
    if schedule.calendar is None:
        return RunDecision(True, chosen, f"{stamp}: profile {chosen}{why}")
    closed = cal.closed_reason(day)
    if closed is not None:
        return RunDecision(False, chosen, f"{stamp}: NYSE closed ({closed}); nothing scaled")
    session = cal.session(day)
    early = session is not None and session.early
    if schedule.anchor == "close":
        if early_close_slot and not early:
            return RunDecision(
                False, chosen, f"{stamp}: not an early close; the regular step applies later"
            )
        if not early_close_slot and early:
            return RunDecision(
                False,
                chosen,
                f"{stamp}: early close at 13:00; the step ran with "
                f"{schedule.name}{EARLY_CLOSE_SUFFIX}",
            )
    when = " after the 13:00 early close" if early and early_close_slot else ""
    return RunDecision(True, chosen, f"{stamp}: NYSE open; profile {chosen}{why}{when}")


def decide_now(
    schedules: Sequence[Schedule],
    name: str,
    profile: str,
    early_close_slot: bool = False,
    now: str | None = None,
) -> RunDecision:
    """``decide`` for the schedule called ``name`` at ``now`` (ISO 8601 with a zone; None: the
    clock)."""
    if now is None:
        moment = datetime.now(UTC)
    else:
        try:
            moment = datetime.fromisoformat(now)
        except ValueError:
            raise BadInputError(f"--now {now!r} is not an ISO 8601 time") from None
        if moment.tzinfo is None:
            raise BadInputError(f"--now {now!r} needs a zone (like 2026-04-03T09:15:00-04:00)")
    return decide(find_schedule(schedules, name), profile, moment, early_close_slot)


# ------------------------------------------------------------------------------------------
def _md(text: str) -> tuple[int, int]:
    m = _MONTH_DAY.match(text)
    assert m is not None
    return int(m.group(1)), int(m.group(2))


def _valid_day(text: str) -> bool:
    try:
        if _FULL_DATE.match(text):
            date.fromisoformat(text)
            return True
        m = _MONTH_DAY.match(text)
        if m:
            date(2024, int(m.group(1)), int(m.group(2)))  # a leap year: 02-29 is a day
            return True
    except ValueError:
        return False
    return False


def _overlap(a: ScheduleWindow, b: ScheduleWindow) -> str | None:
    """A day both windows hold, as text; None when they are apart."""
    if _FULL_DATE.match(a.start) and _FULL_DATE.match(b.start):
        lo = max(a.start, b.start)
        return lo if lo <= min(a.until, b.until) else None
    # a yearly window against any: every day of a leap year and the next one
    day, end = date(2024, 1, 1), date(2025, 12, 31)
    if _FULL_DATE.match(a.start):
        day, end = date.fromisoformat(a.start), date.fromisoformat(a.until)
    elif _FULL_DATE.match(b.start):
        day, end = date.fromisoformat(b.start), date.fromisoformat(b.until)
    while day <= end:
        if a.contains(day) and b.contains(day):
            yearly = not (_FULL_DATE.match(a.start) or _FULL_DATE.match(b.start))
            return day.strftime("%m-%d") if yearly else day.isoformat()
        day += timedelta(days=1)
    return None
