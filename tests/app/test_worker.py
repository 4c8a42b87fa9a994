"""Real Celery workers on the private Redis: tasks stored, a killed worker's task completed by
another, transient errors retried, the beat process and the pre-computation schedule."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
import redis
import sqlalchemy as sa
from celery import Celery

from app import create_app
from app.cache import KEY_PREFIX
from app.providers import NEW_YORK, SyntheticProvider
from app.schedule import beat_schedule
from app.settings import Settings
from tests.helpers import wait_until

BIN = Path(sys.executable).parent


class Workers:
    """Starts ``tradewise-worker`` / ``tradewise-precompute`` processes and stops them all."""

    def __init__(self, env: dict[str, str], tmp: Path) -> None:
        self.env = env
        self.tmp = tmp
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(
        self, name: str, script: str = "tradewise-worker", **env: str
    ) -> subprocess.Popen[bytes]:
        args = [str(BIN / script)]
        if script == "tradewise-worker":
            args += ["--pool=solo", f"--hostname={name}@%h", "--without-gossip", "--without-mingle"]
        log = open(self.tmp / f"{name}.log", "wb")  # noqa: SIM115 - closed below
        heartbeat = self.tmp / f"{name}.heartbeat"
        proc = subprocess.Popen(
            args,
            env={**self.env, "TRADEWISE_HEARTBEAT_FILE": str(heartbeat), **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.tmp,
        )
        log.close()
        self.procs.append(proc)
        wait_until(
            lambda: heartbeat.exists() or proc.poll() is not None, timeout=60, what=f"{name} ready"
        )
        assert proc.poll() is None, self.log(name)
        return proc

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(errors="replace")[-4000:]

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


@pytest.fixture
def worker_env(
    redis_server: Any, redis_url: str, postgres_url: str, tmp_path: Path
) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("TRADEWISE_", "CELERY_"))},
        "REDIS_URL": redis_url,
        "CELERY_RESULT_BACKEND": redis_server.url_for(1),
        "DATABASE_URL": postgres_url,
        "CELERY_VISIBILITY_TIMEOUT": "3",
        "TRADEWISE_POPULAR_SYMBOLS": "AAPL,MSFT,KO",
    }


@pytest.fixture
def workers(worker_env: dict[str, str], tmp_path: Path) -> Iterator[Workers]:
    pool = Workers(worker_env, tmp_path)
    try:
        yield pool
    finally:
        pool.stop_all()


@pytest.fixture
def producer(worker_env: dict[str, str]) -> Iterator[Celery]:
    """The test's side of the queue: the same Celery app, built from the same environment."""
    keys = ("REDIS_URL", "CELERY_RESULT_BACKEND", "DATABASE_URL", "CELERY_VISIBILITY_TIMEOUT")
    overrides = {k: worker_env[k] for k in keys}
    flask_app = create_app(overrides)
    yield flask_app.extensions["celery"]
    flask_app.extensions["tradewise"].close()


def _rows(database_url: str) -> dict[str, Any]:
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table("stock_analyses"):
                return {}
            rows = conn.execute(sa.text("SELECT symbol, updated_count FROM stock_analyses")).all()
    finally:
        engine.dispose()
    return {row.symbol: row.updated_count for row in rows}


def test_worker_processes_tasks_and_the_precompute_fan_out(
    workers: Workers, producer: Celery, worker_env: dict[str, str], tmp_path: Path
) -> None:
    workers.start("w1")
    result = producer.send_task("tradewise.analyse_symbol", args=["nvda"])
    body = result.get(timeout=60)
    assert body["symbol"] == "NVDA" and body["action"] in {"buy", "hold", "sell"}
    fan_out = producer.send_task("tradewise.precompute_popular").get(timeout=60)
    assert fan_out == ["AAPL", "MSFT", "KO"]
    wait_until(
        lambda: {"NVDA", "AAPL", "MSFT", "KO"} <= set(_rows(worker_env["DATABASE_URL"])),
        timeout=60,
        what="the popular symbols stored",
    )
    cache = redis.Redis.from_url(worker_env["REDIS_URL"])
    for symbol in ("NVDA", "AAPL", "MSFT", "KO"):
        assert json.loads(cache.get(KEY_PREFIX + symbol) or b"{}")["symbol"] == symbol
    bad = producer.send_task("tradewise.analyse_symbol", args=["ZZZZ"])
    with pytest.raises(Exception, match="ZZZZ"):
        bad.get(timeout=60)
    assert bad.state == "FAILURE"

    health = subprocess.run(
        [str(BIN / "tradewise-healthcheck"), "worker"],
        env={**worker_env, "TRADEWISE_HEARTBEAT_FILE": str(tmp_path / "w1.heartbeat")},
        capture_output=True,
        timeout=30,
    )
    assert health.returncode == 0, health.stderr


def test_a_worker_killed_mid_task_loses_no_work(
    workers: Workers, producer: Celery, worker_env: dict[str, str]
) -> None:
    first = workers.start("doomed", TRADEWISE_TASK_DELAY_MS="4000")
    result = producer.send_task("tradewise.analyse_symbol", args=["AMD"])
    wait_until(lambda: result.state == "STARTED", timeout=30, what="the task to start")
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=10)
    assert "AMD" not in _rows(worker_env["DATABASE_URL"])
    assert result.state == "STARTED"  # nobody finished it
    workers.start("rescuer", TRADEWISE_TASK_DELAY_MS="500")
    body = result.get(timeout=60)
    assert body["symbol"] == "AMD"
    assert result.state == "SUCCESS"
    assert "AMD" in _rows(worker_env["DATABASE_URL"])
    assert "Task tradewise.analyse_symbol" in workers.log("rescuer")


class _FlakyMarket(BaseHTTPRequestHandler):
    """Answers 503 for the first two requests, then real (synthetic) prices."""

    calls = 0
    lock = threading.Lock()

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        with type(self).lock:
            type(self).calls += 1
            calls = type(self).calls
        symbol = parse_qs(urlparse(self.path).query)["symbol"][0]
        if calls <= 2:
            status, body = 503, {"error": "busy"}
        else:
            series = SyntheticProvider().daily_closes(symbol, 120)
            prices = [
                {"date": d.isoformat(), "close": c}
                for d, c in zip(series.dates, series.closes, strict=True)
            ]
            status, body = 200, {"symbol": symbol, "prices": prices}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def test_transient_errors_are_retried_with_backoff(
    workers: Workers, worker_env: dict[str, str], producer: Celery
) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FlakyMarket)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _FlakyMarket.calls = 0
    try:
        workers.start(
            "retrier",
            MARKET_DATA_PROVIDER="http",
            MARKET_DATA_URL=f"http://127.0.0.1:{server.server_address[1]}",
        )
        body = producer.send_task("tradewise.analyse_symbol", args=["AAPL"]).get(timeout=60)
    finally:
        server.shutdown()
        server.server_close()
    assert body["attempt"] == 3
    assert _FlakyMarket.calls == 3
    assert "Retry in" in workers.log("retrier")


def test_precompute_beat_runs_and_reports_healthy(
    workers: Workers, worker_env: dict[str, str], tmp_path: Path
) -> None:
    workers.start("beat", script="tradewise-precompute")
    health = subprocess.run(
        [str(BIN / "tradewise-healthcheck"), "precompute"],
        env={**worker_env, "TRADEWISE_HEARTBEAT_FILE": str(tmp_path / "beat.heartbeat")},
        capture_output=True,
        timeout=30,
    )
    assert health.returncode == 0, health.stderr
    assert "beat: Starting" in workers.log("beat") or "Scheduler" in workers.log("beat")


def _fire_times(schedule: Any, start: datetime, end: datetime) -> list[datetime]:
    times = []
    t = start
    while t < end:
        if (
            t.minute in schedule.minute
            and t.hour in schedule.hour
            and t.isoweekday() % 7 in schedule.day_of_week
        ):
            times.append(t)
        t += timedelta(minutes=1)
    return times


def test_schedule_warms_before_the_open_and_refreshes_in_session(
    worker_env: dict[str, str],
) -> None:
    settings = Settings.from_env({"TRADEWISE_REFRESH_MINUTES": "15"})
    schedule = beat_schedule(settings)
    flask_app = create_app({k: worker_env[k] for k in ("REDIS_URL", "DATABASE_URL")})
    celery = flask_app.extensions["celery"]
    assert celery.conf.timezone == "America/New_York"
    assert celery.conf.worker_prefetch_multiplier == 1
    assert celery.conf.task_acks_late is True
    assert celery.conf.task_reject_on_worker_lost is True
    task = celery.tasks["tradewise.analyse_symbol"]
    assert task.acks_late and task.reject_on_worker_lost and task.retry_backoff
    flask_app.extensions["tradewise"].close()

    monday = datetime(2026, 11, 23, 0, 0, tzinfo=NEW_YORK)
    week: list[datetime] = []
    for entry in schedule.values():
        assert entry["task"] == "tradewise.precompute_popular"
        week += _fire_times(entry["schedule"], monday, monday + timedelta(days=7))
    week.sort()
    assert all(t.weekday() < 5 for t in week)  # never on weekends
    for day in range(5):
        runs = [t for t in week if t.weekday() == day]
        pre_open = [t.strftime("%H:%M") for t in runs if (t.hour, t.minute) < (9, 30)]
        assert pre_open == ["09:00", "09:25"]
        session = [t for t in runs if (9, 30) <= (t.hour, t.minute) < (16, 0)]
        assert len(session) == 26  # every 15 minutes from 09:30 to 15:45
        gaps = {(b - a) for a, b in zip(session, session[1:], strict=False)}
        assert gaps == {timedelta(minutes=15)}
        assert runs[-1].strftime("%H:%M") == "16:10"


def test_beat_fires_at_nine_new_york_time_whatever_the_utc_offset() -> None:
    entry = beat_schedule(Settings.from_env({}))["warm-cache-0900"]["schedule"]
    assert entry.hour == {9} and entry.minute == {0} and entry.day_of_week == {1, 2, 3, 4, 5}
    # 09:00 New York is 14:00 UTC in winter and 13:00 UTC in summer: the entry is in local time
    winter = datetime(2026, 1, 5, 9, 0, tzinfo=NEW_YORK)
    summer = datetime(2026, 7, 6, 9, 0, tzinfo=NEW_YORK)
    assert winter.utcoffset() != summer.utcoffset()
    check: Callable[[datetime], bool] = lambda t: t.hour in entry.hour and t.minute in entry.minute  # noqa: E731
    assert check(winter) and check(summer)
