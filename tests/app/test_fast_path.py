"""The hot path: the fast path beside Flask, the process-local cache layer and the market date.

Against a real Redis and a real SQLite database; the fast path's answers are compared with the
Flask views' own (the inner Flask WSGI app, called without the middleware).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from werkzeug.test import Client

from app import create_app
from app.cache import KEY_PREFIX, AnalysisCache, generated_at
from app.providers import NEW_YORK, market_date_bounds

AppFactory = Callable[..., Flask]


@pytest.fixture
def make_app(redis_url: str, tmp_path: Path) -> Iterator[AppFactory]:
    apps: list[Flask] = []

    def factory(**overrides: Any) -> Flask:
        settings = {
            "DATABASE_URL": f"sqlite:///{tmp_path / 'tradewise.db'}",
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


def _answer(client: Client, url: str) -> tuple[str, list[tuple[str, str]], bytes]:
    response = client.get(url)
    return response.status, list(response.headers.items()), response.get_data()


def _stats(client: Any) -> dict[str, Any]:
    body: dict[str, Any] = client.get("/api/performance/stats").get_json()
    return body


@pytest.mark.parametrize(
    "url",
    ["/api/health", "/api/health/serving", "/api/stock-analysis?symbol=AAPL"],
)
def test_the_fast_path_answers_as_the_flask_views_do(make_app: AppFactory, url: str) -> None:
    flask_app = make_app()
    outer = flask_app.test_client()
    outer.get("/api/stock-analysis?symbol=AAPL")  # cached from here on
    middleware = flask_app.wsgi_app
    path, _, query = url.partition("?")
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": query}
    assert middleware.fast.answer(path, environ) is not None, "not answered by the fast path"
    fast = _answer(Client(middleware), url)
    flask = _answer(Client(middleware.wsgi_app), url)  # the Flask app itself, no middleware
    assert fast == flask
    assert fast[0] == "200 OK"
    if "stock-analysis" in url:
        assert ("X-Cache", "HIT") in fast[1]
        assert json.loads(fast[2])["symbol"] == "AAPL"


@pytest.mark.parametrize(
    "query",
    ["symbol=aapl", "symbol=AAPL&extra=1", "symbol=%41APL", "extra=1&symbol=AAPL", "symbol="],
)
def test_other_queries_go_to_flask(make_app: AppFactory, query: str) -> None:
    flask_app = make_app()
    client = flask_app.test_client()
    client.get("/api/stock-analysis?symbol=AAPL")
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/api/stock-analysis", "QUERY_STRING": query}
    assert flask_app.wsgi_app.fast.answer("/api/stock-analysis", environ) is None
    response = client.get("/api/stock-analysis?" + query)
    if query == "symbol=":
        assert response.status_code == 400
        assert response.get_json()["error"]["code"] == "missing_symbol"
    else:  # normalised (or decoded) to AAPL by Flask: the same cached bytes
        assert response.status_code == 200
        assert response.headers["X-Cache"] == "HIT"
        assert response.get_data() == client.get("/api/stock-analysis?symbol=AAPL").get_data()


def test_a_miss_is_looked_up_once_and_counted_once(make_app: AppFactory) -> None:
    client = make_app().test_client()  # the metrics are the process's: compare before and after

    def counts() -> tuple[int, int, int]:
        stats = _stats(client)
        by_endpoint = stats["requests"]["by_endpoint"]
        return (
            stats["cache"]["hits"],
            stats["cache"]["misses"],
            by_endpoint.get("stock_analysis", 0),
        )

    hits, misses, requests = counts()
    first = client.get("/api/stock-analysis?symbol=MSFT")
    assert first.headers["X-Cache"] == "MISS"
    assert counts() == (hits, misses + 1, requests + 1)
    second = client.get("/api/stock-analysis?symbol=MSFT")
    assert second.headers["X-Cache"] == "HIT" and second.get_data() == first.get_data()
    assert counts() == (hits + 1, misses + 1, requests + 2)  # the fast path is counted too


def test_head_and_post_are_flask_s(make_app: AppFactory) -> None:
    client = make_app().test_client()
    client.get("/api/stock-analysis?symbol=AAPL")
    head = client.head("/api/stock-analysis?symbol=AAPL")
    assert head.status_code == 200 and head.get_data() == b""
    assert head.headers["X-Cache"] == "HIT"
    assert client.post("/api/health").status_code == 405


def test_injected_latency_still_applies_to_cached_answers(make_app: AppFactory) -> None:
    client = make_app(TRADEWISE_INJECT_LATENCY_MS="150").test_client()
    client.get("/api/stock-analysis?symbol=AAPL")
    started = time.monotonic()
    response = client.get("/api/stock-analysis?symbol=AAPL")
    assert response.headers["X-Cache"] == "HIT"
    assert time.monotonic() - started >= 0.15


def test_the_local_layer_serves_while_redis_is_down_then_lets_go(
    make_app: AppFactory, redis_server: Any
) -> None:
    client = make_app(CACHE_LOCAL_SECONDS="5").test_client()
    payload = client.get("/api/stock-analysis?symbol=NVDA").get_data()
    filled = time.monotonic()
    redis_server.stop()
    try:
        if time.monotonic() - filled < 4.5:  # stopping Redis took less than the local lifetime
            held = client.get("/api/stock-analysis?symbol=NVDA")
            assert held.headers["X-Cache"] == "HIT" and held.get_data() == payload
        time.sleep(max(0.0, 5.1 - (time.monotonic() - filled)))
        after = client.get("/api/stock-analysis?symbol=NVDA")
        assert after.status_code == 200
        assert after.headers["X-Cache"] == "MISS"  # computed: Redis is down, the layer expired
    finally:
        redis_server.start()


def test_a_refresh_by_another_process_is_served_within_the_local_lifetime(
    make_app: AppFactory, redis_url: str
) -> None:
    client = make_app(CACHE_LOCAL_SECONDS="0.5").test_client()
    old = client.get("/api/stock-analysis?symbol=AAPL").get_data()
    refreshed = json.loads(old)
    refreshed["generated_at"] = datetime.now(tz=UTC).isoformat(timespec="seconds")
    refreshed["rsi_note"] = "written by a task"
    new = json.dumps(refreshed, separators=(",", ":")).encode()
    redis.Redis.from_url(redis_url).set(KEY_PREFIX + "AAPL", new)
    time.sleep(0.6)
    response = client.get("/api/stock-analysis?symbol=AAPL")
    assert response.headers["X-Cache"] == "HIT"
    assert response.get_data() == new


def test_an_analysis_of_an_earlier_market_date_is_computed_again(
    make_app: AppFactory, redis_url: str
) -> None:
    client = make_app().test_client()
    current = json.loads(client.get("/api/stock-analysis?symbol=AMZN").get_data())
    opened, _ = market_date_bounds()
    before_close = (opened - timedelta(minutes=1)).astimezone(UTC)
    stale = {**current, "generated_at": before_close.isoformat(timespec="seconds")}
    server = redis.Redis.from_url(redis_url)
    server.set(KEY_PREFIX + "AMZN", json.dumps(stale, separators=(",", ":")).encode())
    time.sleep(1.1)  # the default local lifetime (1 s) of the bytes this process wrote
    response = client.get("/api/stock-analysis?symbol=AMZN")
    assert response.headers["X-Cache"] == "MISS"
    served = generated_at(response.get_data())
    assert served is not None and served >= opened.timestamp()
    stored = server.get(KEY_PREFIX + "AMZN")
    assert stored == response.get_data()  # the fresh analysis replaced the stale entry
    assert client.get("/api/stock-analysis?symbol=AMZN").headers["X-Cache"] == "HIT"


def _payload(symbol: str, made: datetime) -> bytes:
    doc = {"symbol": symbol, "generated_at": made.astimezone(UTC).isoformat(timespec="seconds")}
    return json.dumps(doc, separators=(",", ":")).encode()


@pytest.mark.parametrize("local_seconds", [3600.0, 0.0])
def test_the_close_ends_what_the_cache_may_serve(redis_url: str, local_seconds: float) -> None:
    # Wednesday 2026-12-02, New York time: the market date changes at 16:00
    now = [datetime(2026, 12, 2, 15, 59, 58, tzinfo=NEW_YORK).timestamp()]
    cache = AnalysisCache(redis_url, 86400, 0.0, local_seconds, clock=lambda: now[0])
    try:
        before = _payload("KO", datetime.fromtimestamp(now[0], tz=UTC))
        assert cache.set("KO", before)
        assert cache.get("KO") == before
        now[0] = datetime(2026, 12, 2, 16, 0, 1, tzinfo=NEW_YORK).timestamp()
        assert cache.get("KO") is None  # generated before the close: stale from 16:00 on
        after = _payload("KO", datetime.fromtimestamp(now[0], tz=UTC))
        assert cache.set("KO", after)
        assert cache.get("KO") == after
        # Friday's close opens a market date that lasts until Monday's close
        now[0] = datetime(2026, 12, 4, 16, 30, tzinfo=NEW_YORK).timestamp()
        friday = _payload("KO", datetime.fromtimestamp(now[0], tz=UTC))
        cache.set("KO", friday)
        now[0] = datetime(2026, 12, 7, 15, 59, tzinfo=NEW_YORK).timestamp()
        assert cache.get("KO") == friday
        now[0] = datetime(2026, 12, 7, 16, 0, tzinfo=NEW_YORK).timestamp()
        assert cache.get("KO") is None
    finally:
        cache.close()


def test_unreadable_generated_at_counts_as_stale(redis_url: str) -> None:
    cache = AnalysisCache(redis_url, 60)
    try:
        cache.client.set(KEY_PREFIX + "PEP", b'{"symbol":"PEP"}')
        assert cache.get("PEP") is None
        cache.client.set(KEY_PREFIX + "PEP", b'{"symbol":"PEP","generated_at":"yesterday"}')
        assert cache.get("PEP") is None
    finally:
        cache.close()


def test_market_date_bounds() -> None:
    opened, ends = market_date_bounds(datetime(2026, 11, 30, 10, 0, tzinfo=NEW_YORK))  # Monday
    assert opened == datetime(2026, 11, 27, 16, 0, tzinfo=NEW_YORK)  # Friday's close
    assert ends == datetime(2026, 11, 30, 16, 0, tzinfo=NEW_YORK)
    opened, ends = market_date_bounds(datetime(2026, 11, 30, 16, 0, tzinfo=NEW_YORK))
    assert opened == datetime(2026, 11, 30, 16, 0, tzinfo=NEW_YORK)
    assert ends == datetime(2026, 12, 1, 16, 0, tzinfo=NEW_YORK)
