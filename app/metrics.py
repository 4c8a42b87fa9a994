"""Prometheus metrics, correct under gunicorn with several worker processes.

When ``PROMETHEUS_MULTIPROC_DIR`` is set (``tradewise-api`` sets it to a fresh directory before
gunicorn starts), prometheus_client keeps each process's values in memory-mapped files there and a
scrape merges them (``MultiProcessCollector``); gunicorn's ``child_exit`` hook marks dead workers.
Without it (tests, ``flask run``) the in-process default registry is used.

``tradewise_cache_hit_rate``, ``tradewise_task_queue_length``, ``tradewise_redis_up``,
``tradewise_cache_enabled`` and ``tradewise_database_up`` are computed at scrape time from the
merged counters and from Redis, so they are the same whichever worker answers the scrape.
Without a cache (``REDIS_URL=none``) every analysis counts as a miss (hit rate 0),
``tradewise_redis_up`` is 0 and ``tradewise_cache_enabled`` 0.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075,
    0.1, 0.15, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip

# the version this process serves (the pod's app.kubernetes.io/version label, through the
# TRADEWISE_VERSION variable): a canary's requests are told from the stable version's by it
VERSION = os.environ.get("TRADEWISE_VERSION", "").strip() or "unknown"
REQUEST_DURATION = Histogram(
    "flask_request_duration_seconds",
    "Flask HTTP request duration in seconds",
    ["method", "endpoint", "version"],
    buckets=LATENCY_BUCKETS,
)
REQUEST_TOTAL = Counter(
    "flask_request_total", "Flask HTTP requests", ["method", "endpoint", "status", "version"]
)
REQUEST_EXCEPTIONS = Counter(
    "flask_request_exceptions_total",
    "Flask HTTP requests that raised an unhandled exception (type in the log)",
    ["method", "endpoint"],
)
CACHE_LOOKUPS = Counter(
    "tradewise_cache_lookups_total", "Analysis cache lookups by result", ["result"]
)
ANALYSIS_COMPUTE = Histogram(
    "tradewise_analysis_compute_seconds",
    "Time to fetch prices and compute an uncached analysis",
    buckets=LATENCY_BUCKETS,
)
DEPENDENCY_ERRORS = Counter(
    "tradewise_dependency_errors_total", "Errors talking to a dependency", ["dependency"]
)

# -- the database connection pool of each process (summed over live processes at scrape time) --
# what `tradewise stress db` reads: how full the pools were and how long calls waited on them
DB_POOL_CHECKOUTS = Counter(
    "tradewise_db_pool_checkouts_total", "Connections taken from the database pool"
)
DB_POOL_WAITS = Counter(
    "tradewise_db_pool_waits_total",
    "Connections asked for while every connection of the pool was taken (the call waited)",
)
DB_POOL_WAIT = Histogram(
    "tradewise_db_pool_wait_seconds",
    "How long a call that found the pool full waited for a connection",
    buckets=LATENCY_BUCKETS,
)
DB_POOL_TIMEOUTS = Counter(
    "tradewise_db_pool_timeouts_total",
    "Calls that gave up waiting for a pool connection (the pool timeout passed)",
)
DB_POOL_CHECKED_OUT = Gauge(
    "tradewise_db_pool_checked_out",
    "Database connections in use now, over the live processes",
    multiprocess_mode="livesum",
)
DB_POOL_CAPACITY = Gauge(
    "tradewise_db_pool_capacity",
    "Connections the live processes' pools may open (size + overflow, summed)",
    multiprocess_mode="livesum",
)
DB_POOL_SETTING = Gauge(
    "tradewise_db_pool_setting",
    "The pool settings of a process: size, overflow, timeout_seconds",
    ["setting"],
    multiprocess_mode="livemax",
)

_hit = CACHE_LOOKUPS.labels("hit")
_miss = CACHE_LOOKUPS.labels("miss")
_children_lock = threading.Lock()
_request_children: dict[tuple[str, str, str], tuple[Any, Any]] = {}


def multiprocess_mode() -> bool:
    """True when values live in ``PROMETHEUS_MULTIPROC_DIR`` (gunicorn with several workers)."""
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


def observe_request(method: str, endpoint: str, status: int, seconds: float) -> None:
    """Record one finished request (the label children are cached: this is on the hot path)."""
    key = (method, endpoint, str(status))
    children = _request_children.get(key)
    if children is None:
        with _children_lock:
            children = (
                REQUEST_DURATION.labels(method, endpoint, VERSION),
                REQUEST_TOTAL.labels(method, endpoint, str(status), VERSION),
            )
            _request_children[key] = children
    children[0].observe(seconds)
    children[1].inc()


def init_endpoint(method: str, endpoint: str) -> None:
    """Create the zero-valued exception counter of a route, so it is exported before any error."""
    REQUEST_EXCEPTIONS.labels(method, endpoint)


def count_cache(hit: bool) -> None:
    """Count one analysis cache lookup."""
    (_hit if hit else _miss).inc()


class _ScrapeGauges:
    """Collector of the gauges computed at scrape time."""

    def __init__(self, merged: Callable[[], Iterable[Metric]], probe: Callable[[], Probe]) -> None:
        self._merged = merged
        self._probe = probe

    def collect(self) -> Iterator[Metric]:
        hits = misses = 0.0
        for metric in self._merged():
            if metric.name == "tradewise_cache_lookups":
                for sample in metric.samples:
                    if sample.name.endswith("_total"):
                        if sample.labels.get("result") == "hit":
                            hits += sample.value
                        elif sample.labels.get("result") == "miss":
                            misses += sample.value
        probe = self._probe()
        rate = GaugeMetricFamily(
            "tradewise_cache_hit_rate", "Analysis cache hits / lookups since start (0 when none)"
        )
        rate.add_metric([], hits / (hits + misses) if hits + misses else 0.0)
        yield rate
        queue = GaugeMetricFamily(
            "tradewise_task_queue_length",
            "Tasks waiting in the Celery queue (-1: unknown or broker down)",
        )
        queue.add_metric([], float(probe.queue_length if probe.queue_length is not None else -1))
        yield queue
        up = GaugeMetricFamily("tradewise_redis_up", "1 when Redis answers PING")
        up.add_metric([], 1.0 if probe.redis_ok else 0.0)
        yield up
        enabled = GaugeMetricFamily(
            "tradewise_cache_enabled", "1 when a Redis cache is configured (0: REDIS_URL=none)"
        )
        enabled.add_metric([], 1.0 if probe.cache_enabled else 0.0)
        yield enabled
        db = GaugeMetricFamily("tradewise_database_up", "1 when the database answers SELECT 1")
        db.add_metric([], 1.0 if probe.database_ok else 0.0)
        yield db


@dataclass(frozen=True)
class Probe:
    """Dependency state sampled at scrape time."""

    redis_ok: bool
    database_ok: bool
    queue_length: int | None
    cache_enabled: bool = True


class _Registry:
    """A registry-like object: the merged (or in-process) metrics plus the scrape-time gauges."""

    def __init__(self, probe: Callable[[], Probe]) -> None:
        if multiprocess_mode():
            base = CollectorRegistry()
            multiprocess.MultiProcessCollector(base)
            self._base: Any = base
        else:
            self._base = REGISTRY
        self._gauges = _ScrapeGauges(self._base.collect, probe)

    def collect(self) -> Iterator[Metric]:
        yield from self._base.collect()
        yield from self._gauges.collect()


def collect(probe: Callable[[], Probe]) -> list[Metric]:
    """All metric families, merged across processes, with the scrape-time gauges."""
    return list(_Registry(probe).collect())


def exposition(probe: Callable[[], Probe]) -> bytes:
    """The Prometheus text exposition."""
    return generate_latest(_Registry(probe))


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """Estimate quantile ``q`` from cumulative ``(upper_bound, count)`` buckets, like PromQL.

    Linear interpolation inside the bucket; the +Inf bucket returns the largest finite bound.
    """
    if not buckets:
        return None
    buckets = sorted(buckets)
    total = buckets[-1][1]
    if total <= 0:
        return None
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == float("inf"):
                return lower_bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (
                count - lower_count
            )
        lower_bound, lower_count = bound, count
    return buckets[-1][0]
