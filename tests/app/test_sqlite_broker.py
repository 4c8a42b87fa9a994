"""The service without Redis: ``REDIS_URL=none`` and Celery on kombu's SQLAlchemy transport.

Real processes, no server at all: the API answers uncached, readiness is 200 with redis
disabled, and a real ``tradewise-worker`` takes tasks from the SQLite broker.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from app import create_app
from app.settings import ConfigError, Settings
from tests.helpers import wait_until

BIN = Path(sys.executable).parent


def _sqlite_env(tmp: Path) -> dict[str, str]:
    return {
        "DATABASE_URL": f"sqlite:///{tmp / 'tradewise.db'}",
        "REDIS_URL": "none",
        "CELERY_BROKER_URL": f"sqla+sqlite:///{tmp / 'broker.db'}",
        "CELERY_RESULT_BACKEND": f"db+sqlite:///{tmp / 'results.db'}",
    }


@pytest.fixture
def no_redis_app(tmp_path: Path) -> Iterator[Flask]:
    flask_app = create_app(_sqlite_env(tmp_path))
    yield flask_app
    flask_app.extensions["tradewise"].close()


def test_settings_without_redis_default_to_sqlite_beside_the_instance(tmp_path: Path) -> None:
    settings = Settings.from_env({"REDIS_URL": "none"}, instance_path=tmp_path)
    assert settings.redis_url is None
    assert settings.broker_url == f"sqla+sqlite:///{tmp_path / 'celery-broker.db'}"
    assert settings.result_backend == f"db+sqlite:///{tmp_path / 'celery-broker-results.db'}"
    explicit = Settings.from_env(
        {"REDIS_URL": "Disabled", "CELERY_BROKER_URL": "sqla+sqlite:////x/b.db"},
        instance_path=tmp_path,
    )
    assert explicit.redis_url is None and explicit.result_backend == "db+sqlite:////x/b-results.db"
    no_results = Settings.from_env({"REDIS_URL": "none", "CELERY_RESULT_BACKEND": "none"})
    assert no_results.result_backend is None
    # with Redis, the SQLite broker is accepted too, results still go to Redis by default
    mixed = Settings.from_env({"CELERY_BROKER_URL": "sqla+sqlite:////x/b.db"})
    assert mixed.redis_url == mixed.result_backend == "redis://127.0.0.1:6379/0"


@pytest.mark.parametrize(
    ("variable", "value", "fragment"),
    [
        ("CELERY_BROKER_URL", "sqla+sqlite://", "sqla+sqlite:///PATH"),
        ("CELERY_BROKER_URL", "sqla+sqlite:///", "sqla+sqlite:///PATH"),
        ("CELERY_BROKER_URL", "sqla+postgresql://u@db/x", "sqla+sqlite://"),
        ("CELERY_BROKER_URL", "amqp://guest@x//", "sqla+sqlite://"),
        ("CELERY_RESULT_BACKEND", "db+sqlite://", "db+sqlite:///PATH"),
        ("REDIS_URL", "nothing", "redis://"),
    ],
)
def test_bad_broker_values_name_the_variable(variable: str, value: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"REDIS_URL": "none", variable: value})
    assert info.value.variable == variable
    assert f"invalid {variable}=" in str(info.value)
    assert fragment in str(info.value)


def test_the_api_without_redis_answers_uncached_and_is_ready(
    no_redis_app: Flask, tmp_path: Path
) -> None:
    client = no_redis_app.test_client()
    # metrics are per process and tests share it: compare before and after
    before = client.get("/api/performance/stats").get_json()
    errors_before = _redis_errors(client.get("/metrics").data.decode())
    ready = client.get("/api/health/ready")
    assert ready.status_code == 200, ready.data
    body = ready.get_json()
    assert body["failing"] == []
    assert body["checks"]["redis"] == {"ok": True, "disabled": True}
    assert body["checks"]["database"]["ok"] is True
    for _ in range(2):
        answer = client.get("/api/stock-analysis?symbol=aapl")
        assert answer.status_code == 200
        assert answer.headers["X-Cache"] == "MISS"
        assert answer.headers["X-Cache-Status"] == "disabled"
        assert answer.get_json()["symbol"] == "AAPL"
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'tradewise.db'}")
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT symbol, updated_count FROM stock_analyses")).all()
    engine.dispose()
    assert [(r.symbol, r.updated_count) for r in rows] == [("AAPL", 1)]  # computed twice

    stats = client.get("/api/performance/stats").get_json()
    assert stats["cache"]["enabled"] is False and stats["cache"]["available"] is False
    assert stats["cache"]["hits"] == before["cache"]["hits"]  # every analysis is a miss
    assert stats["cache"]["misses"] == before["cache"]["misses"] + 2
    assert stats["broker"] == "sqlite"
    assert stats["dependencies"] == {"redis": None, "database": True}
    assert stats["task_queue_length"] is None  # no worker has created the broker's file yet
    text = client.get("/metrics").data.decode()
    for line in ("tradewise_redis_up 0.0", "tradewise_cache_enabled 0.0"):
        assert line in text
    assert "tradewise_task_queue_length -1.0" in text
    # no Redis errors are counted for a cache that is not configured
    assert _redis_errors(text) == errors_before


def _redis_errors(metrics_text: str) -> float:
    prefix = 'tradewise_dependency_errors_total{dependency="redis"} '
    lines = [line for line in metrics_text.splitlines() if line.startswith(prefix)]
    return float(lines[0][len(prefix) :]) if lines else 0.0


def test_the_openapi_document_describes_the_answers_without_redis(no_redis_app: Flask) -> None:
    from tests.app.test_openapi import _validate

    client = no_redis_app.test_client()
    doc = client.get("/api/openapi.json").get_json()
    for path in ("/api/health/ready", "/api/performance/stats"):
        response = client.get(path)
        assert response.status_code == 200
        schema = doc["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]
        _validate(doc, schema["schema"], response.get_json())
    headers = doc["paths"]["/api/stock-analysis"]["get"]["responses"]["200"]["headers"]
    assert "disabled" in headers["X-Cache-Status"]["schema"]["enum"]


def _start_worker(env: dict[str, str], tmp: Path) -> subprocess.Popen[bytes]:
    heartbeat = tmp / "worker.heartbeat"
    with open(tmp / "worker.log", "wb") as log:
        proc = subprocess.Popen(
            [
                str(BIN / "tradewise-worker"),
                "--pool=solo",
                "--hostname=sqlite@%h",
                "--without-gossip",
                "--without-mingle",
            ],
            env={**env, "TRADEWISE_HEARTBEAT_FILE": str(heartbeat)},
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=tmp,
        )
    wait_until(
        lambda: heartbeat.exists() or proc.poll() is not None, timeout=60, what="the worker ready"
    )
    assert proc.poll() is None, (tmp / "worker.log").read_text(errors="replace")[-3000:]
    return proc


def test_a_real_worker_takes_tasks_from_the_sqlite_broker(
    no_redis_app: Flask, tmp_path: Path
) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("TRADEWISE_", "CELERY_"))},
        **_sqlite_env(tmp_path),
        "TRADEWISE_POPULAR_SYMBOLS": "KO,PEP",
    }
    celery: Any = no_redis_app.extensions["celery"]
    client = no_redis_app.test_client()
    # queued before any worker runs: the API reads the length from the broker's table
    waiting = celery.send_task("tradewise.analyse_symbol", args=["msft"])
    assert client.get("/api/performance/stats").get_json()["task_queue_length"] == 1
    assert "tradewise_task_queue_length 1.0" in client.get("/metrics").data.decode()
    worker = _start_worker(env, tmp_path)
    try:
        body = waiting.get(timeout=30)
        assert body["symbol"] == "MSFT" and body["action"] in {"buy", "hold", "sell"}
        assert body["cached"] is False
        fan_out = celery.send_task("tradewise.precompute_popular").get(timeout=30)
        assert fan_out == ["KO", "PEP"]
        engine = sa.create_engine(f"sqlite:///{tmp_path / 'tradewise.db'}")
        try:

            def stored() -> set[str]:
                with engine.connect() as conn:
                    rows = conn.execute(sa.text("SELECT symbol FROM stock_analyses")).all()
                return {row.symbol for row in rows}

            wait_until(lambda: stored() >= {"MSFT", "KO", "PEP"}, timeout=30, what="rows stored")
        finally:
            engine.dispose()
        wait_until(
            lambda: client.get("/api/performance/stats").get_json()["task_queue_length"] == 0,
            timeout=10,
            what="the queue to drain",
        )
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(timeout=10)
    log = (tmp_path / "worker.log").read_text(errors="replace")
    assert "sqla+sqlite:///" in log and "Task tradewise.analyse_symbol" in log
    assert worker.returncode == 0, log[-3000:]
