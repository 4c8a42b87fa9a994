"""The predictive-scaling CronJobs' command on the market's calendar, against the emulator.

Each test runs the rendered CronJob's own command, with only the scaler Role's rights, at a
given time (``--now``): on a holiday nothing is sent to the cluster but reads, and the log line
says why; on an early close the early CronJob applies and the regular one stands down; inside
an earnings window the profile is the window's.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.cli.test_scale_cronjob import _cronjob, _replicas, _run_as_cronjob
from tests.k8s_emulator import Emulator

# the fixtures (prod's objects, a cluster with only the scaler Role's rights) are the CronJob tests'
pytest_plugins = ["tests.k8s_emulator.fixtures", "tests.cli.test_scale_cronjob"]


def _writes(emu: Emulator) -> list[Any]:
    return [r for r in emu.requests if r.method not in ("GET",)]


def test_good_friday_has_no_pre_market_scale_up(
    scaler_cluster: Emulator, prod_objects: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    command, env = _cronjob(prod_objects, "tradewise-scale-market-open")
    result = _run_as_cronjob(command, env, monkeypatch, "2026-04-03T09:15:00-04:00")
    assert result.exit_code == 0, result.stderr
    assert "skipped: market-open on 2026-04-03 (Fri): NYSE closed (Good Friday)" in result.stderr
    assert _writes(scaler_cluster) == []
    assert _replicas(scaler_cluster, "tradewise-api-deployment") == 3


def test_an_earnings_window_applies_peak(
    scaler_cluster: Emulator, prod_objects: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    command, env = _cronjob(prod_objects, "tradewise-scale-market-open")
    assert command[3] == "high"
    result = _run_as_cronjob(command, env, monkeypatch, "2026-04-20T09:15:00-04:00")
    assert result.exit_code == 0, result.stderr
    assert "window q1-earnings" in result.stderr
    assert _replicas(scaler_cluster, "tradewise-api-deployment") == 15
    assert _replicas(scaler_cluster, "tradewise-worker-deployment") == 6


def test_the_after_close_step_runs_at_1330_on_an_early_close(
    scaler_cluster: Emulator, prod_objects: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    regular, env = _cronjob(prod_objects, "tradewise-scale-after-close")
    early, _ = _cronjob(prod_objects, "tradewise-scale-after-close-early-close")
    # Christmas Eve 2026 closes at 13:00: the regular 16:30 run stands down ...
    result = _run_as_cronjob(regular, env, monkeypatch, "2026-12-24T16:30:00-05:00")
    assert result.exit_code == 0, result.stderr
    assert "early close at 13:00" in result.stderr
    assert _writes(scaler_cluster) == []
    assert _replicas(scaler_cluster, "tradewise-api-deployment") == 3
    # ... and the 13:30 one applies the profile
    result = _run_as_cronjob(early, env, monkeypatch, "2026-12-24T13:30:00-05:00")
    assert result.exit_code == 0, result.stderr
    assert _replicas(scaler_cluster, "tradewise-api-deployment") == 2
    assert _replicas(scaler_cluster, "tradewise-worker-deployment") == 1


def test_the_early_close_cronjob_stands_down_on_an_ordinary_day(
    scaler_cluster: Emulator, prod_objects: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    early, env = _cronjob(prod_objects, "tradewise-scale-after-close-early-close")
    result = _run_as_cronjob(early, env, monkeypatch, "2026-12-22T13:30:00-05:00")
    assert result.exit_code == 0, result.stderr
    assert "not an early close" in result.stderr
    assert _writes(scaler_cluster) == []


def test_a_bad_now_is_bad_input(
    scaler_cluster: Emulator, prod_objects: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    command, env = _cronjob(prod_objects, "tradewise-scale-market-open")
    result = _run_as_cronjob(command, env, monkeypatch, "yesterday")
    assert result.exit_code == 2
    assert "not an ISO 8601 time" in result.stderr
