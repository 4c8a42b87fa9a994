"""The seed's alerting rules ("shown when seen"): error rate, p95, restarts, queue backlog."""

from __future__ import annotations

from tradewise_ops.core.timeline.records import (
    HpaSample,
    LoadSample,
    PodSample,
    Record,
    WarningRecord,
)

ALERT_ERROR_RATE = 0.05
ALERT_P95_MS = 500.0
ALERT_RESTARTS = 3
ALERT_RESTART_WINDOW_SECONDS = 900.0
ALERT_QUEUE_BACKLOG = 50


class WarningDetector:
    """The seed's alerts, each raised once when it starts and again only after it cleared."""

    def __init__(self) -> None:
        self._active: set[str] = set()
        self._restarts: dict[str, list[float]] = {}
        self._last_restarts: dict[str, int] = {}

    def feed(self, record: Record) -> list[WarningRecord]:
        """The warnings this record starts."""
        out: list[WarningRecord] = []
        if isinstance(record, LoadSample):
            label = "load test" if record.source == "load-test" else "the app"
            if record.error_rate is not None:
                self._check(
                    out,
                    record.t,
                    "error-rate",
                    record.error_rate > ALERT_ERROR_RATE,
                    f"error rate {record.error_rate:.1%} is above {ALERT_ERROR_RATE:.0%} ({label})",
                )
            if record.p95_ms is not None:
                self._check(
                    out,
                    record.t,
                    "p95",
                    record.p95_ms > ALERT_P95_MS,
                    f"p95 response time {record.p95_ms:.0f} ms is above {ALERT_P95_MS:.0f} ms"
                    f" ({label})",
                )
            if record.queue is not None:
                self._check(
                    out,
                    record.t,
                    "queue-backlog",
                    record.queue > ALERT_QUEUE_BACKLOG,
                    f"queue backlog {record.queue} tasks is above {ALERT_QUEUE_BACKLOG}",
                )
        elif isinstance(record, HpaSample) and not record.deleted:
            self._hpa_metrics(out, record)
        elif isinstance(record, PodSample):
            before = self._last_restarts.get(record.name)
            if record.deleted:
                self._last_restarts.pop(record.name, None)
            else:
                self._last_restarts[record.name] = record.restarts
            times = self._restarts.setdefault(record.name, [])
            if before is not None and record.restarts > before:
                times.extend([record.t] * (record.restarts - before))
            times[:] = [x for x in times if record.t - x <= ALERT_RESTART_WINDOW_SECONDS]
            self._check(
                out,
                record.t,
                f"restarts:{record.name}",
                len(times) > ALERT_RESTARTS,
                f"pod {record.name} restarted {len(times)} times in 15 minutes"
                f" (more than {ALERT_RESTARTS})"
                + (f", last: {record.last_termination}" if record.last_termination else ""),
            )
        return out

    def _hpa_metrics(self, out: list[WarningRecord], hpa: HpaSample) -> None:
        """The autoscaler's own latency and queue metrics, when it has them (names say which)."""
        for m in hpa.metrics:
            if m.value is None:
                continue
            name = m.name.lower()
            if "p95" in name:
                ms = m.value * 1000.0 if "second" in name else m.value
                self._check(
                    out,
                    hpa.t,
                    f"p95:{hpa.name}",
                    ms > ALERT_P95_MS,
                    f"p95 response time {ms:.0f} ms is above {ALERT_P95_MS:.0f} ms"
                    f" ({hpa.name} metric {m.name})",
                )
            elif "queue" in name:
                backlog = m.value * max(hpa.current, 1) if m.per_pod else m.value
                self._check(
                    out,
                    hpa.t,
                    f"queue-backlog:{hpa.name}",
                    backlog > ALERT_QUEUE_BACKLOG,
                    f"queue backlog {backlog:.0f} tasks is above {ALERT_QUEUE_BACKLOG}"
                    f" ({hpa.name} metric {m.name})",
                )

    def _check(self, out: list[WarningRecord], t: float, key: str, on: bool, message: str) -> None:
        if on and key not in self._active:
            self._active.add(key)
            out.append(WarningRecord(t=t, code=key.split(":", 1)[0], message=message))
        elif not on:
            self._active.discard(key)
