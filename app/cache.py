"""The Redis cache of serialized analyses, tolerant of Redis being down.

A hit costs one ``GET`` and returns the stored JSON bytes as they are. When Redis fails, the cache
reports a miss (or skips the write), remembers the failure, and does not try again for
``retry_seconds``, so a dead Redis costs the API nothing but the uncached work.

In front of Redis each process keeps the bytes it last read or wrote for a symbol for
``local_seconds`` (``CACHE_LOCAL_SECONDS``, default 1 s; 0 turns it off): the hot path of a popular
symbol then costs no Redis round trip at all. Two rules bound what that layer may serve:

- a refresh written by another process (a Celery task, another pod) is seen after at most
  ``local_seconds``;
- nothing is served across a change of market date (the 16:00 New York close of a business day):
  the layer is emptied at the close, and an entry read from Redis that was generated before the
  close that began the current market date counts as a miss, so it is computed again rather than
  served stale (Redis keeps entries up to ``CACHE_TTL_SECONDS``, which may span a close).

``REDIS_URL=none`` gives a :class:`DisabledCache` instead: every lookup misses, nothing is
written, and readiness reports the cache as disabled rather than down.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

import redis

from app.providers import market_date_bounds

log = logging.getLogger(__name__)
KEY_PREFIX = "tradewise:analysis:v1:"
_GENERATED_AT = b'"generated_at":"'


def generated_at(payload: bytes) -> float | None:
    """The ``generated_at`` instant of a serialized analysis (epoch seconds), None if unreadable."""
    at = payload.rfind(_GENERATED_AT)
    if at < 0:
        return None
    start = at + len(_GENERATED_AT)
    end = payload.find(b'"', start)
    try:
        return datetime.fromisoformat(payload[start:end].decode("ascii")).timestamp()
    except (UnicodeDecodeError, ValueError):
        return None


class AnalysisCache:
    """GET/SETEX of analysis JSON by symbol, with a short circuit breaker."""

    enabled = True

    def __init__(
        self,
        url: str,
        ttl_seconds: int,
        retry_seconds: float = 2.0,
        local_seconds: float = 0.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.ttl = ttl_seconds
        self.retry_seconds = retry_seconds
        self.local_seconds = local_seconds
        self.client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self._down_until = 0.0
        self._last_error: str | None = None
        self._lock = threading.Lock()
        self._clock = clock  # wall clock (epoch seconds): the market date is a wall-clock matter
        self._local: dict[str, tuple[bytes, float]] = {}  # symbol -> (bytes, monotonic expiry)
        self._date_opened = 0.0  # the close that began the current market date
        self._date_ends = 0.0  # the next close: everything local is dropped then

    def _roll_market_date(self, now: float) -> None:
        opened, ends = market_date_bounds(datetime.fromtimestamp(now, tz=UTC))
        self._local.clear()
        self._date_opened, self._date_ends = opened.timestamp(), ends.timestamp()

    @staticmethod
    def key(symbol: str) -> str:
        """The Redis key of a symbol's analysis."""
        return KEY_PREFIX + symbol

    @property
    def available(self) -> bool:
        """False while the breaker is open after a failure."""
        return time.monotonic() >= self._down_until

    @property
    def last_error(self) -> str | None:
        """The last Redis error seen, if the breaker is open."""
        return self._last_error if not self.available else None

    def _failed(self, exc: Exception) -> None:
        with self._lock:
            self._down_until = time.monotonic() + self.retry_seconds
            self._last_error = f"{type(exc).__name__}: {exc}"
        log.warning("redis unavailable, serving uncached for %.1fs: %s", self.retry_seconds, exc)

    def get(self, symbol: str) -> bytes | None:
        """The cached JSON bytes, or None on a miss, when Redis is down, or when the stored
        analysis was generated for an earlier market date."""
        if self._clock() >= self._date_ends:
            self._roll_market_date(self._clock())
        local = self._local.get(symbol)
        if local is not None and local[1] > time.monotonic():
            return local[0]
        if not self.available:
            return None
        try:
            value = self.client.get(KEY_PREFIX + symbol)
        except redis.RedisError as exc:
            self._failed(exc)
            return None
        if not isinstance(value, bytes):
            return None
        made = generated_at(value)
        if made is None or made < self._date_opened:
            return None  # computed before the close that began this market date: stale
        if self.local_seconds > 0:
            self._local[symbol] = (value, time.monotonic() + self.local_seconds)
        return value

    def set(self, symbol: str, payload: bytes) -> bool:
        """Store ``payload`` with the TTL; False when Redis is down."""
        if self.local_seconds > 0:
            self._local[symbol] = (payload, time.monotonic() + self.local_seconds)
        if not self.available:
            return False
        try:
            self.client.set(KEY_PREFIX + symbol, payload, ex=self.ttl)
        except redis.RedisError as exc:
            self._failed(exc)
            return False
        return True

    def ping(self) -> tuple[bool, str | None]:
        """Check Redis now (ignores the breaker): (ok, error message)."""
        try:
            self.client.ping()
        except redis.RedisError as exc:
            self._failed(exc)
            return False, f"{type(exc).__name__}: {exc}"
        with self._lock:
            self._down_until = 0.0
            self._last_error = None
        return True, None

    def close(self) -> None:
        """Close the connection pool."""
        self.client.close()


class DisabledCache:
    """No cache configured (``REDIS_URL=none``): the same interface, always a miss."""

    enabled = False
    ttl = 0
    available = False
    last_error: str | None = None

    @staticmethod
    def key(symbol: str) -> str:
        """The key a symbol would have in Redis."""
        return KEY_PREFIX + symbol

    def get(self, symbol: str) -> bytes | None:
        """Always a miss."""
        return None

    def set(self, symbol: str, payload: bytes) -> bool:
        """Nothing is stored: False."""
        return False

    def ping(self) -> tuple[bool, str | None]:
        """There is no Redis to answer: (False, why)."""
        return False, "no cache configured (REDIS_URL=none)"

    def close(self) -> None:
        """Nothing to release."""


def make_cache(
    url: str | None, ttl_seconds: int, retry_seconds: float = 2.0, local_seconds: float = 0.0
) -> AnalysisCache | DisabledCache:
    """The Redis cache of ``url``, or a :class:`DisabledCache` when ``url`` is None."""
    if url is None:
        return DisabledCache()
    return AnalysisCache(url, ttl_seconds, retry_seconds, local_seconds)
