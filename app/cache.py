"""The Redis cache of serialized analyses, tolerant of Redis being down.

A hit costs one ``GET`` and returns the stored JSON bytes as they are. When Redis fails, the cache
reports a miss (or skips the write), remembers the failure, and does not try again for
``retry_seconds``, so a dead Redis costs the API nothing but the uncached work.

``REDIS_URL=none`` gives a :class:`DisabledCache` instead: every lookup misses, nothing is
written, and readiness reports the cache as disabled rather than down.
"""

from __future__ import annotations

import logging
import threading
import time

import redis

log = logging.getLogger(__name__)
KEY_PREFIX = "tradewise:analysis:v1:"


class AnalysisCache:
    """GET/SETEX of analysis JSON by symbol, with a short circuit breaker."""

    enabled = True

    def __init__(self, url: str, ttl_seconds: int, retry_seconds: float = 2.0) -> None:
        self.ttl = ttl_seconds
        self.retry_seconds = retry_seconds
        self.client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self._down_until = 0.0
        self._last_error: str | None = None
        self._lock = threading.Lock()

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
        """The cached JSON bytes, or None on a miss or when Redis is down."""
        if not self.available:
            return None
        try:
            value = self.client.get(KEY_PREFIX + symbol)
        except redis.RedisError as exc:
            self._failed(exc)
            return None
        return value if isinstance(value, bytes) else None

    def set(self, symbol: str, payload: bytes) -> bool:
        """Store ``payload`` with the TTL; False when Redis is down."""
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
    url: str | None, ttl_seconds: int, retry_seconds: float = 2.0
) -> AnalysisCache | DisabledCache:
    """The Redis cache of ``url``, or a :class:`DisabledCache` when ``url`` is None."""
    if url is None:
        return DisabledCache()
    return AnalysisCache(url, ttl_seconds, retry_seconds)
