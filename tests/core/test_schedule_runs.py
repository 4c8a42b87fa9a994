"""Schedules by the market's calendar: the config keys, the CronJobs, the run-time decision."""

from __future__ import annotations

import copy
import re
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from tradewise_ops.core import schedule_runs as sr
from tradewise_ops.core.config import Schedule, load_config, parse_config
from tradewise_ops.errors import BadInputError, ConfigError

ROOT = Path(__file__).resolve().parents[2]
NY = ZoneInfo("America/New_York")


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "tradewise.yaml").read_text())


def _schedules(raw: dict[str, Any], schedules: list[dict[str, Any]]) -> tuple[Schedule, ...]:
    doc = copy.deepcopy(raw)
    doc["schedules"] = schedules
    return parse_config(doc).schedules


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=NY)


@pytest.fixture(scope="module")
def shipped() -> dict[str, Schedule]:
    return {s.name: s for s in load_config(ROOT / "tradewise.yaml", environ={}).schedules}


def test_the_shipped_schedules_follow_the_nyse_calendar(shipped: dict[str, Schedule]) -> None:
    assert shipped["market-open"].calendar == "nyse"
    assert shipped["after-close"].anchor == "close"
    assert [w.profile for w in shipped["market-open"].windows] == ["peak"] * 4


def test_no_pre_market_scale_up_on_a_holiday(shipped: dict[str, Schedule]) -> None:
    good_friday = sr.decide(shipped["market-open"], "high", _at("2026-04-03T09:15"))
    assert not good_friday.run
    assert "NYSE closed (Good Friday)" in good_friday.reason
    observed = sr.decide(shipped["market-open"], "high", _at("2027-07-05T09:15"))
    assert not observed.run and "Independence Day" in observed.reason
    # the next trading day it runs, with the schedule's own profile (no window in March)
    monday = sr.decide(shipped["market-open"], "high", _at("2026-03-09T09:15"))
    assert monday.run and monday.profile == "high"


def test_a_window_selects_another_profile(shipped: dict[str, Schedule]) -> None:
    inside = sr.decide(shipped["market-open"], "high", _at("2026-01-20T09:15"))
    assert inside.run and inside.profile == "peak"
    assert "window q4-earnings" in inside.reason
    last_day = sr.decide(shipped["market-open"], "high", _at("2026-02-10T09:15"))
    assert last_day.profile == "peak"
    after = sr.decide(shipped["market-open"], "high", _at("2026-02-11T09:15"))
    assert after.run and after.profile == "high"
    # a holiday inside a window still skips (MLK day 2026 is inside q4-earnings)
    assert not sr.decide(shipped["market-open"], "high", _at("2026-01-19T09:15")).run


def test_the_after_close_step_moves_on_an_early_close(shipped: dict[str, Schedule]) -> None:
    s = shipped["after-close"]
    # the day after Thanksgiving 2026 closes at 13:00: the early CronJob runs, the regular skips
    early = sr.decide(s, "low", _at("2026-11-27T13:30"), early_close_slot=True)
    assert early.run and early.profile == "low"
    regular = sr.decide(s, "low", _at("2026-11-27T16:30"))
    assert not regular.run and "early close at 13:00" in regular.reason
    # an ordinary day: the other way round
    assert sr.decide(s, "low", _at("2026-11-30T16:30")).run
    idle = sr.decide(s, "low", _at("2026-11-30T13:30"), early_close_slot=True)
    assert not idle.run and "not an early close" in idle.reason
    # a holiday: neither
    assert not sr.decide(s, "low", _at("2026-12-25T16:30")).run
    assert not sr.decide(s, "low", _at("2026-12-25T13:30"), early_close_slot=True).run
    with pytest.raises(BadInputError, match="does not follow the close"):
        sr.decide(shipped["market-open"], "high", _at("2026-11-27T09:15"), early_close_slot=True)


def test_each_close_anchored_schedule_gets_an_early_close_cronjob(
    shipped: dict[str, Schedule],
) -> None:
    jobs = {j.name: j for j in sr.scheduled_jobs(list(shipped.values()), "prod")}
    assert set(jobs) == {"market-open", "after-close", "after-close-early-close"}
    assert jobs["after-close-early-close"].cron == "30 13 * 7,11,12 1-5"
    assert jobs["after-close-early-close"].timezone == "America/New_York"
    assert jobs["after-close"].args == (
        "scale",
        "traffic",
        "low",
        "--schedule",
        "after-close",
        "--env",
        "prod",
        "--yes",
        "--wait-for-lock=8m",
    )
    assert "--early-close" in jobs["after-close-early-close"].args
    assert sr.early_close_cron("5 17 * 6 *") == "5 14 * 6 *"


def test_without_a_calendar_every_firing_runs(raw: dict[str, Any]) -> None:
    (s,) = _schedules(raw, [{"name": "x", "profile": "low", "cron": "0 2 * * *"}])
    assert sr.decide(s, "low", _at("2026-12-25T02:00")).run


def test_decide_now_parses_the_injected_time(shipped: dict[str, Schedule]) -> None:
    schedules = list(shipped.values())
    got = sr.decide_now(schedules, "market-open", "high", now="2026-04-03T13:15:00+00:00")
    assert not got.run
    with pytest.raises(BadInputError, match="needs a zone"):
        sr.decide_now(schedules, "market-open", "high", now="2026-04-03T09:15")
    with pytest.raises(BadInputError, match="unknown schedule 'nope'"):
        sr.decide_now(schedules, "nope", "high", now="2026-04-03T09:15:00+00:00")


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"calendar": "lse"}, "schedules[0].calendar is 'lse'; expected one of nyse"),
        ({"anchor": "close"}, "an anchor only with a calendar"),
        ({"calendar": "nyse", "anchor": "noon"}, "expected one of open, close"),
        (
            {"calendar": "nyse", "anchor": "close", "timezone": "UTC"},
            "schedules[0].timezone is 'UTC'; expected America/New_York",
        ),
        (
            {"calendar": "nyse", "anchor": "close", "cron": "*/5 16 * * 1-5"},
            "a single minute and hour",
        ),
        ({"windows": [{"from": "13-01", "until": "01-10", "profile": "peak"}]}, "MM-DD"),
        ({"windows": [{"from": "02-30", "until": "03-10", "profile": "peak"}]}, "MM-DD"),
        (
            {"windows": [{"from": "2026-01-10", "until": "01-20", "profile": "peak"}]},
            "the same form as from",
        ),
        (
            {"windows": [{"from": "2026-02-10", "until": "2026-01-20", "profile": "peak"}]},
            "on or after from",
        ),
        ({"windows": [{"from": "01-10", "until": "01-20", "profile": "turbo"}]}, "'turbo'"),
        (
            {
                "windows": [
                    {"name": "a", "from": "12-20", "until": "01-05", "profile": "peak"},
                    {"name": "b", "from": "01-05", "until": "01-10", "profile": "medium"},
                ]
            },
            "apart from 'a' (both hold 01-05)",
        ),
        ({"windows": [{"from": "01-10", "until": "01-20", "profile": "peak", "x": 1}]}, "x"),
    ],
)
def test_bad_calendar_keys_name_the_key(
    raw: dict[str, Any], entry: dict[str, Any], message: str
) -> None:
    base = {"name": "s", "profile": "high", "cron": "30 16 * * 1-5", "timezone": "America/New_York"}
    with pytest.raises(ConfigError, match=re.escape(message)):
        _schedules(raw, [{**base, **entry}])


def test_windows_wrap_the_year_and_one_off_windows(raw: dict[str, Any]) -> None:
    (s,) = _schedules(
        raw,
        [
            {
                "name": "s",
                "profile": "high",
                "cron": "15 9 * * 1-5",
                "timezone": "America/New_York",
                "windows": [
                    {"name": "holidays", "from": "12-20", "until": "01-05", "profile": "low"},
                    {
                        "name": "launch",
                        "from": "2026-03-02",
                        "until": "2026-03-04",
                        "profile": "peak",
                    },
                ],
            }
        ],
    )
    assert sr.decide(s, "high", _at("2026-12-28T09:15")).profile == "low"
    assert sr.decide(s, "high", _at("2027-01-05T09:15")).profile == "low"
    assert sr.decide(s, "high", _at("2027-01-06T09:15")).profile == "high"
    assert sr.decide(s, "high", _at("2026-03-03T09:15")).profile == "peak"
    assert sr.decide(s, "high", _at("2027-03-03T09:15")).profile == "high"
