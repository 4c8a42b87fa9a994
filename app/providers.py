"""Market data behind a small interface: a synthetic offline provider and an HTTP provider.

``SyntheticProvider`` (the default) produces a deterministic, realistic daily close series per
symbol: a geometric random walk on business days (Monday to Friday; exchange holidays are not
modelled) from 2020-01-02 up to the last completed session in America/New_York, seeded by a SHA-256
of the symbol, so every process and every run sees the same prices. Its universe is
``app.symbols.UNIVERSE`` plus the configured extra symbols.

``HttpProvider`` asks a market-data API (``MARKET_DATA_URL``, ``MARKET_DATA_API_KEY``) for
``GET {url}/daily?symbol=SYM&days=N`` and expects
``{"symbol": "SYM", "prices": [{"date": "YYYY-MM-DD", "close": 123.4}, ...]}`` (oldest first or
not: it is sorted), 404 for an unknown symbol. Timeouts, connection errors and 5xx/429 answers are
transient (:class:`ProviderUnavailableError`): tasks retry them with backoff.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

import httpx

from app.symbols import UNIVERSE

NEW_YORK = ZoneInfo("America/New_York")
SESSION_CLOSE = time(16, 0)  # the regular close, New York time
SYNTHETIC_EPOCH = date(2020, 1, 2)
DEFAULT_DAYS = 200


class ProviderError(Exception):
    """The market-data provider failed in a way a retry will not fix."""


class UnknownSymbolError(ProviderError):
    """The provider does not know the symbol."""


class ProviderUnavailableError(ProviderError):
    """A transient failure (timeout, connection refused, 5xx): worth retrying."""


@dataclass(frozen=True)
class PriceSeries:
    """Daily closes of one symbol, oldest first."""

    symbol: str
    dates: tuple[date, ...]
    closes: tuple[float, ...]
    source: str

    @property
    def as_of(self) -> date:
        """The date of the last close."""
        return self.dates[-1]


class MarketDataProvider(Protocol):
    """What the service needs from market data."""

    name: str

    def daily_closes(self, symbol: str, days: int = DEFAULT_DAYS) -> PriceSeries:
        """The last ``days`` daily closes of ``symbol``; raises the errors above."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


def last_completed_session(now: datetime | None = None) -> date:
    """The last business day whose 16:00 New York close has passed at ``now``."""
    now_ny = (now or datetime.now(tz=NEW_YORK)).astimezone(NEW_YORK)
    day = now_ny.date()
    if now_ny.hour < 16:
        day -= timedelta(days=1)
    while day.weekday() >= 5:
        day -= timedelta(days=1)
    return day


def market_date_bounds(now: datetime | None = None) -> tuple[datetime, datetime]:
    """The close that began the market date of ``now`` and the next close, which ends it.

    The market date is :func:`last_completed_session`; it changes at 16:00 New York on a business
    day. An analysis generated before the first bound was computed for an earlier market date.
    """
    opened_day = last_completed_session(now)
    next_day = opened_day + timedelta(days=1)
    while next_day.weekday() >= 5:
        next_day += timedelta(days=1)
    return (
        datetime.combine(opened_day, SESSION_CLOSE, tzinfo=NEW_YORK),
        datetime.combine(next_day, SESSION_CLOSE, tzinfo=NEW_YORK),
    )


def business_days(start: date, end: date) -> list[date]:
    """Monday-to-Friday dates from ``start`` to ``end`` inclusive."""
    out: list[date] = []
    day = start
    while day <= end:
        if day.weekday() < 5:
            out.append(day)
        day += timedelta(days=1)
    return out


def symbol_seed(symbol: str) -> int:
    """A stable 64-bit seed for ``symbol`` (SHA-256; unlike ``hash()`` it is not salted)."""
    return int.from_bytes(hashlib.sha256(symbol.encode("utf-8")).digest()[:8], "big")


class SyntheticProvider:
    """Deterministic geometric random walk per symbol, labelled ``synthetic``."""

    name = "synthetic"

    def __init__(
        self,
        extra_symbols: Iterable[str] = (),
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.universe = frozenset(UNIVERSE) | frozenset(extra_symbols)
        self._clock = clock

    def knows(self, symbol: str) -> bool:
        """True when ``symbol`` is in this provider's universe."""
        return symbol in self.universe

    def parameters(self, symbol: str) -> tuple[float, float, float]:
        """(start price, annual drift, annual volatility) drawn from the symbol's seed."""
        rng = random.Random(symbol_seed(symbol))
        start = math.exp(rng.uniform(math.log(15.0), math.log(600.0)))
        drift = rng.uniform(-0.05, 0.25)
        vol = rng.uniform(0.15, 0.55)
        return start, drift, vol

    def daily_closes(self, symbol: str, days: int = DEFAULT_DAYS) -> PriceSeries:
        """The last ``days`` synthetic closes up to the last completed session."""
        if symbol not in self.universe:
            raise UnknownSymbolError(symbol)
        end = last_completed_session(self._clock() if self._clock else None)
        dates = business_days(SYNTHETIC_EPOCH, end)
        start, drift, vol = self.parameters(symbol)
        rng = random.Random(symbol_seed(symbol) ^ 0x5EED)
        dt = 1.0 / 252.0
        mu = (drift - 0.5 * vol * vol) * dt
        sd = vol * math.sqrt(dt)
        price = start
        closes: list[float] = []
        for _ in dates:
            closes.append(round(price, 4))
            price *= math.exp(mu + sd * rng.gauss(0.0, 1.0))
        return PriceSeries(symbol, tuple(dates[-days:]), tuple(closes[-days:]), self.name)

    def close(self) -> None:
        """Nothing to release."""


class HttpProvider:
    """A market-data HTTP API (see the module docstring for the expected shape)."""

    name = "http"

    def __init__(self, base_url: str, api_key: str | None = None, timeout: float = 5.0) -> None:
        headers = {"Accept": "application/json", "User-Agent": "tradewise/1"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self.base_url = base_url.rstrip("/")
        self._client = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)

    def daily_closes(self, symbol: str, days: int = DEFAULT_DAYS) -> PriceSeries:
        """Fetch the last ``days`` closes of ``symbol``."""
        try:
            response = self._client.get("/daily", params={"symbol": symbol, "days": days})
        except httpx.TransportError as exc:
            raise ProviderUnavailableError(f"market data API unreachable: {exc}") from exc
        if response.status_code == 404:
            raise UnknownSymbolError(symbol)
        if response.status_code == 429 or response.status_code >= 500:
            raise ProviderUnavailableError(f"market data API answered {response.status_code}")
        if response.status_code != 200:
            raise ProviderError(f"market data API answered {response.status_code}")
        try:
            body = response.json()
            rows = sorted(
                ((date.fromisoformat(r["date"]), float(r["close"])) for r in body["prices"]),
                key=lambda row: row[0],
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ProviderError(f"market data API sent an unexpected body: {exc}") from exc
        if not rows:
            raise UnknownSymbolError(symbol)
        rows = rows[-days:]
        return PriceSeries(
            symbol,
            tuple(r[0] for r in rows),
            tuple(r[1] for r in rows),
            str(body.get("source") or self.name),
        )

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()
