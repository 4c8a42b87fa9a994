"""The app's own metrics (the ``local`` environment): two ``/metrics`` scrapes -> a load sample."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tradewise_ops.core.timeline.records import LoadSample


@dataclass(frozen=True)
class AppScrape:
    """Cumulative counters of one ``/metrics`` scrape, summed over endpoints and processes.

    ``buckets``: ``(upper bound in seconds, cumulative count)`` of the request-duration histogram.
    """

    t: float
    requests: float
    errors: float
    buckets: tuple[tuple[float, float], ...]
    queue: int | None = None


def app_load_sample(previous: AppScrape | None, current: AppScrape) -> LoadSample:
    """Traffic between two scrapes: req/s, p95 of the interval's requests, 5xx rate, queue.

    The first scrape gives only the queue length. A counter that went down (the app restarted)
    counts from zero.
    """
    if previous is None or current.t <= previous.t:
        return LoadSample(t=current.t, queue=current.queue, source="app")
    reset = current.requests < previous.requests
    base = None if reset else previous
    requests = current.requests - (base.requests if base else 0.0)
    errors = current.errors - (base.errors if base else 0.0)
    seconds = current.t - previous.t
    old = dict(base.buckets) if base else {}
    delta = [(bound, count - old.get(bound, 0.0)) for bound, count in current.buckets]
    p95 = histogram_quantile(0.95, delta)
    return LoadSample(
        t=current.t,
        rps=round(requests / seconds, 3),
        p95_ms=None if p95 is None else round(p95 * 1000.0, 3),
        error_rate=round(errors / requests, 5) if requests > 0 else 0.0,
        queue=current.queue,
        source="app",
    )


def histogram_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """Prometheus' ``histogram_quantile`` over cumulative ``(le, count)`` buckets (linear)."""
    ordered = sorted(buckets)
    if not ordered:
        return None
    total = ordered[-1][1]
    if total <= 0:
        return None
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in ordered:
        if count >= rank:
            if bound == float("inf"):
                return lower_bound
            width = count - lower_count
            if width <= 0:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / width
        lower_bound, lower_count = bound, count
    return lower_bound
