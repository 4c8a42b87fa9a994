"""Market data providers: the synthetic series and the HTTP provider against a real server."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from app.providers import (
    NEW_YORK,
    HttpProvider,
    ProviderError,
    ProviderUnavailableError,
    SyntheticProvider,
    UnknownSymbolError,
    business_days,
    last_completed_session,
    symbol_seed,
)
from tests.helpers import free_port

FIXED_NOW = datetime(2026, 11, 20, 18, 0, tzinfo=NEW_YORK)  # a Friday after the close


def test_last_completed_session() -> None:
    assert last_completed_session(datetime(2026, 11, 20, 18, 0, tzinfo=NEW_YORK)) == date(
        2026, 11, 20
    )
    # before the close on Friday: Thursday; on Sunday and Monday morning: Friday
    assert last_completed_session(datetime(2026, 11, 20, 10, 0, tzinfo=NEW_YORK)).day == 19
    assert last_completed_session(datetime(2026, 11, 22, 12, 0, tzinfo=NEW_YORK)).day == 20
    assert last_completed_session(datetime(2026, 11, 23, 9, 0, tzinfo=NEW_YORK)).day == 20


def test_business_days_skip_weekends() -> None:
    days = business_days(date(2026, 11, 16), date(2026, 11, 29))
    assert len(days) == 10
    assert all(d.weekday() < 5 for d in days)


def test_synthetic_series_is_deterministic_and_realistic() -> None:
    provider = SyntheticProvider(clock=lambda: FIXED_NOW)
    a = provider.daily_closes("AAPL", 200)
    b = SyntheticProvider(clock=lambda: FIXED_NOW).daily_closes("AAPL", 200)
    assert a == b
    assert a.source == "synthetic"
    assert len(a.closes) == 200 and a.as_of == date(2026, 11, 20)
    assert all(d.weekday() < 5 for d in a.dates)
    assert all(c > 0 for c in a.closes)
    assert provider.daily_closes("MSFT").closes != a.closes
    returns = [math.log(y / x) for x, y in zip(a.closes, a.closes[1:], strict=False)]
    mean = sum(returns) / len(returns)
    vol = math.sqrt(sum((r - mean) ** 2 for r in returns) / (len(returns) - 1)) * math.sqrt(252)
    _, _, configured = provider.parameters("AAPL")
    assert 0.15 <= configured <= 0.55
    assert vol == pytest.approx(configured, rel=0.35)
    assert max(abs(r) for r in returns) < 0.2  # no absurd daily moves


def test_a_later_day_extends_the_same_history() -> None:
    earlier = SyntheticProvider(clock=lambda: datetime(2026, 11, 19, 17, tzinfo=NEW_YORK))
    later = SyntheticProvider(clock=lambda: FIXED_NOW)
    assert later.daily_closes("NVDA", 50).closes[:-1] == earlier.daily_closes("NVDA", 49).closes


def test_seed_does_not_depend_on_python_hash_randomisation() -> None:
    code = "from app.providers import symbol_seed; print(symbol_seed('AAPL'))"
    outputs = set()
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        outputs.add(int(out.stdout))
    assert outputs == {symbol_seed("AAPL")}


def test_unknown_and_extra_symbols() -> None:
    with pytest.raises(UnknownSymbolError):
        SyntheticProvider().daily_closes("ZZZZ")
    extra = SyntheticProvider(extra_symbols=["ZZZZ"], clock=lambda: FIXED_NOW)
    assert len(extra.daily_closes("ZZZZ", 60).closes) == 60


class _MarketApi(BaseHTTPRequestHandler):
    """A tiny market-data API: /daily?symbol=... ; a few symbols misbehave on purpose."""

    requests: list[dict[str, Any]] = []

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        url = urlparse(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        type(self).requests.append(
            {"path": url.path, "query": query, "auth": self.headers.get("Authorization")}
        )
        symbol = query.get("symbol", "")
        if symbol == "DOWN":
            self._send(503, {"error": "maintenance"})
        elif symbol == "JUNK":
            self._send(200, {"unexpected": True})
        elif symbol != "AAPL":
            self._send(404, {"error": "unknown"})
        else:
            series = SyntheticProvider(clock=lambda: FIXED_NOW).daily_closes("AAPL", 80)
            prices = [
                {"date": d.isoformat(), "close": c}
                for d, c in zip(series.dates, series.closes, strict=True)
            ]
            self._send(200, {"symbol": "AAPL", "source": "test-feed", "prices": prices[::-1]})

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def market_api() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _MarketApi)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _MarketApi.requests = []
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_http_provider_against_a_real_server(market_api: str) -> None:
    provider = HttpProvider(market_api, api_key="s3cret", timeout=2)
    try:
        series = provider.daily_closes("AAPL", 60)
        assert len(series.closes) == 60
        assert list(series.dates) == sorted(series.dates)
        assert series.source == "test-feed"
        assert (
            series.closes
            == SyntheticProvider(clock=lambda: FIXED_NOW).daily_closes("AAPL", 60).closes
        )
        assert _MarketApi.requests[0]["auth"] == "Bearer s3cret"
        assert _MarketApi.requests[0]["query"] == {"symbol": "AAPL", "days": "60"}
        with pytest.raises(UnknownSymbolError):
            provider.daily_closes("MSFT")
        with pytest.raises(ProviderUnavailableError):
            provider.daily_closes("DOWN")
        with pytest.raises(ProviderError):
            provider.daily_closes("JUNK")
    finally:
        provider.close()


def test_http_provider_unreachable_is_transient() -> None:
    provider = HttpProvider(f"http://127.0.0.1:{free_port()}", timeout=1)
    try:
        with pytest.raises(ProviderUnavailableError):
            provider.daily_closes("AAPL")
    finally:
        provider.close()
