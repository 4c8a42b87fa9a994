"""The HTTP API against real Redis and a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from app import create_app
from app.cache import KEY_PREFIX
from app.service import AnalysisService
from tests.helpers import free_port

AppFactory = Callable[..., Flask]


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each API test runs against SQLite (embedded default) and a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'tradewise.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def make_app(redis_url: str, database_url: str) -> Iterator[AppFactory]:
    apps: list[Flask] = []

    def factory(**overrides: Any) -> Flask:
        settings = {
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "TRADEWISE_REDIS_RETRY_SECONDS": "0",
            **overrides,
        }
        flask_app = create_app(settings)
        apps.append(flask_app)
        return flask_app

    yield factory
    for flask_app in apps:
        flask_app.extensions["tradewise"].close()


@pytest.fixture
def client(make_app: AppFactory) -> FlaskClient:
    return make_app().test_client()


def _error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.data
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body["error"]) == {"code", "message", "status"}
    assert body["error"]["status"] == status
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body


def test_health_and_readiness(client: FlaskClient) -> None:
    assert client.get("/api/health").get_json() == {"status": "ok"}
    ready = client.get("/api/health/ready")
    assert ready.status_code == 200
    body = ready.get_json()
    assert body["status"] == "ready"
    assert body["checks"]["database"]["ok"] and body["checks"]["redis"]["ok"]


def test_analysis_is_computed_cached_and_stored(
    make_app: AppFactory, redis_url: str, database_url: str
) -> None:
    flask_app = make_app(CACHE_TTL_SECONDS="120")
    client = flask_app.test_client()
    first = client.get("/api/stock-analysis?symbol=aapl")
    assert first.status_code == 200
    assert first.headers["X-Cache"] == "MISS"
    doc = first.get_json()
    assert doc["symbol"] == "AAPL"
    assert doc["data_source"] == "synthetic"
    assert doc["recommendation"]["action"] in {"buy", "hold", "sell"}
    assert len(doc["recommendation"]["signals"]) == 5
    for key in ("sma_20", "sma_50", "rsi_14", "macd", "bollinger", "volatility"):
        assert key in doc["indicators"]

    second = client.get("/api/stock-analysis?symbol=AAPL")
    assert second.headers["X-Cache"] == "HIT"
    assert second.data == first.data

    r = redis.Redis.from_url(redis_url)
    assert 0 < r.ttl(KEY_PREFIX + "AAPL") <= 120
    assert json.loads(r.get(KEY_PREFIX + "AAPL") or b"{}")["symbol"] == "AAPL"

    engine = sa.create_engine(database_url)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT symbol, as_of, action, data_source, payload FROM stock_analyses")
        ).all()
    engine.dispose()
    assert len(rows) == 1
    assert rows[0].symbol == "AAPL" and rows[0].data_source == "synthetic"
    assert str(rows[0].as_of) == doc["as_of"]
    assert json.loads(rows[0].payload) == doc


def test_storing_twice_upserts_one_row(make_app: AppFactory, database_url: str) -> None:
    flask_app = make_app()
    service: AnalysisService = flask_app.extensions["tradewise"]
    service.compute_and_store("MSFT", strict=True)
    service.compute_and_store("MSFT", strict=True)
    engine = sa.create_engine(database_url)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT updated_count FROM stock_analyses")).all()
    engine.dispose()
    assert [row.updated_count for row in rows] == [1]


@pytest.mark.parametrize(
    ("query", "status", "code"),
    [
        ("", 400, "missing_symbol"),
        ("?symbol=", 400, "missing_symbol"),
        ("?symbol=1ABC", 400, "invalid_symbol"),
        ("?symbol=TOOLONGSYMBOL", 400, "invalid_symbol"),
        ("?symbol=A%20B", 400, "invalid_symbol"),
        ("?symbol=MSFT%0AX", 400, "invalid_symbol"),
        ("?symbol=ZZZZ", 404, "unknown_symbol"),
    ],
)
def test_bad_symbols(client: FlaskClient, query: str, status: int, code: str) -> None:
    body = _error(client.get("/api/stock-analysis" + query), status, code)
    if status == 400:
        assert "1-10 characters" in body["error"]["message"]
        assert "starting with a letter" in body["error"]["message"]


def test_other_errors_are_json(client: FlaskClient) -> None:
    _error(client.get("/api/nope"), 404, "not_found")
    response = client.post("/api/stock-analysis?symbol=AAPL")
    _error(response, 405, "method_not_allowed")
    assert "GET" in response.headers["Allow"]


def test_redis_stopped_mid_test(make_app: AppFactory, redis_server: Any) -> None:
    # Redis's own behaviour: without the process-local layer (tests/app/test_fast_path.py covers
    # what that layer serves while Redis is down)
    client = make_app(CACHE_LOCAL_SECONDS="0").test_client()
    assert client.get("/api/stock-analysis?symbol=NVDA").headers["X-Cache"] == "MISS"
    assert client.get("/api/stock-analysis?symbol=NVDA").headers["X-Cache"] == "HIT"
    redis_server.stop()
    try:
        for _ in range(3):
            answer = client.get("/api/stock-analysis?symbol=NVDA")
            assert answer.status_code == 200
            assert answer.headers["X-Cache"] == "MISS"
            assert answer.get_json()["symbol"] == "NVDA"
        assert client.get("/api/stock-analysis?symbol=msft").status_code == 200
        ready = client.get("/api/health/ready")
        body = _error(ready, 503, "dependency_unavailable")
        assert body["failing"] == ["redis"]
        assert "redis" in body["error"]["message"]
        assert body["checks"]["database"]["ok"] is True
        metrics_text = client.get("/metrics").data.decode()
        assert "tradewise_redis_up 0.0" in metrics_text
        assert "tradewise_task_queue_length -1.0" in metrics_text
        assert "tradewise_cache_enabled 1.0" in metrics_text  # configured, only down
        stats = client.get("/api/performance/stats").get_json()
        assert stats["cache"]["available"] is False
        assert stats["cache"]["enabled"] is True and stats["broker"] == "redis"
        assert stats["dependencies"]["redis"] is False
        assert stats["task_queue_length"] is None
    finally:
        redis_server.start()
    assert client.get("/api/health/ready").status_code == 200
    assert client.get("/api/stock-analysis?symbol=NVDA").headers["X-Cache"] == "MISS"
    assert client.get("/api/stock-analysis?symbol=NVDA").headers["X-Cache"] == "HIT"
    assert "tradewise_redis_up 1.0" in client.get("/metrics").data.decode()


def test_database_down_is_named_and_analyses_still_answer(redis_url: str) -> None:
    dead = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nope"
    flask_app = create_app({"DATABASE_URL": dead, "REDIS_URL": redis_url})
    try:
        client = flask_app.test_client()
        body = _error(client.get("/api/health/ready"), 503, "dependency_unavailable")
        assert body["failing"] == ["database"]
        assert "database" in body["error"]["message"]
        answer = client.get("/api/stock-analysis?symbol=AAPL")
        assert answer.status_code == 200 and answer.get_json()["symbol"] == "AAPL"
        assert "tradewise_database_up 0.0" in client.get("/metrics").data.decode()
    finally:
        flask_app.extensions["tradewise"].close()


def test_injected_latency_delays_analyses(make_app: AppFactory) -> None:
    client = make_app(TRADEWISE_INJECT_LATENCY_MS="600").test_client()
    client.get("/api/stock-analysis?symbol=AAPL")
    started = time.perf_counter()
    assert client.get("/api/stock-analysis?symbol=AAPL").headers["X-Cache"] == "HIT"
    assert time.perf_counter() - started >= 0.6
    started = time.perf_counter()
    client.get("/api/health")  # the knob delays analyses only
    assert time.perf_counter() - started < 0.6


def _counter(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            if all(f'{k}="{v}"' in line for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
    return total


def test_stats_and_metrics_count_requests(make_app: AppFactory) -> None:
    client = make_app().test_client()
    before_text = client.get("/metrics").data.decode()
    before = client.get("/api/performance/stats").get_json()
    for _ in range(4):
        client.get("/api/health")
    client.get("/api/stock-analysis?symbol=KO")
    client.get("/api/stock-analysis?symbol=KO")
    client.get("/api/stock-analysis?symbol=KO")
    client.get("/api/stock-analysis?symbol=1")
    after = client.get("/api/performance/stats").get_json()
    after_text = client.get("/metrics").data.decode()
    by_ep = after["requests"]["by_endpoint"]
    assert by_ep["health"] - before["requests"]["by_endpoint"].get("health", 0) == 4
    assert by_ep["stock_analysis"] - before["requests"]["by_endpoint"].get("stock_analysis", 0) == 4
    assert after["cache"]["hits"] - before["cache"]["hits"] == 2
    assert after["cache"]["misses"] - before["cache"]["misses"] == 1
    assert 0 < after["cache"]["hit_rate"] <= 1
    assert after["task_queue_length"] == 0
    assert after["latency_ms"]["p50"] is not None
    assert after["latency_ms"]["p50"] <= after["latency_ms"]["p95"] <= after["latency_ms"]["p99"]
    health_delta = _counter(
        after_text, "flask_request_total", endpoint="health", status="200"
    ) - _counter(before_text, "flask_request_total", endpoint="health", status="200")
    assert health_delta == 4
    bad = _counter(after_text, "flask_request_total", endpoint="stock_analysis", status="400")
    assert bad >= 1
    for name in (
        "flask_request_duration_seconds_bucket",
        "flask_request_total",
        "tradewise_cache_hit_rate",
        "tradewise_task_queue_length",
    ):
        assert name in after_text
    assert "# TYPE flask_request_exceptions_total counter" in after_text


def test_unexpected_exceptions_are_json_and_counted(make_app: AppFactory) -> None:
    flask_app = make_app()

    def boom() -> str:
        raise RuntimeError("kaboom")

    flask_app.add_url_rule("/api/test-boom", "boom", boom)
    client = flask_app.test_client()
    body = _error(client.get("/api/test-boom"), 500, "internal_error")
    assert "kaboom" not in body["error"]["message"]
    text = client.get("/metrics").data.decode()
    assert _counter(text, "flask_request_exceptions_total", endpoint="boom") >= 1
