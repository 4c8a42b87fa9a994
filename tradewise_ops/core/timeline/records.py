"""The timeline's records: what one HPA, Deployment, pod, Event, load or process sample said.

Every record is a frozen dataclass with ``t`` (epoch seconds, the monitor's clock: when the change
was seen) and ``type`` (its name in a ``--record`` file, see ``jsonl``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

# event reasons worth showing in the live event log (others are kept in the record too)
NOTABLE_EVENT_REASONS = frozenset(
    {
        "SuccessfulRescale",
        "FailedRescale",
        "FailedGetResourceMetric",
        "FailedGetPodsMetric",
        "FailedGetObjectMetric",
        "FailedGetExternalMetric",
        "FailedComputeMetricsReplicas",
        "FailedGetScale",
        "Evicted",
        "Evicting",
        "OOMKilling",
        "OOMKilled",
        "BackOff",
        "CrashLoopBackOff",
        "Killing",
        "Unhealthy",
        "FailedScheduling",
        "ScalingReplicaSet",
        "Preempted",
    }
)


@dataclass(frozen=True)
class MetricValue:
    """One HPA metric: its current value against its target (``unit`` is ``%`` for utilization)."""

    name: str
    kind: str
    value: float | None
    target: float | None
    unit: str = ""
    per_pod: bool = False  # an average per pod (averageValue), not a total

    @property
    def above(self) -> bool | None:
        """True when the value is above the target; None when either is unknown."""
        if self.value is None or self.target is None:
            return None
        return self.value > self.target

    def describe(self) -> str:
        """``cpu 85%/70%``."""
        return f"{self.name} {_num(self.value)}{self.unit}/{_num(self.target)}{self.unit}"


@dataclass(frozen=True)
class HpaSample:
    """An HPA's bounds, replicas and metrics when it changed."""

    t: float
    name: str
    target: str
    min_replicas: int
    max_replicas: int
    current: int
    desired: int
    metrics: tuple[MetricValue, ...] = ()
    deleted: bool = False
    type: str = field(default="hpa", init=False)


@dataclass(frozen=True)
class DeploymentSample:
    """A Deployment's wanted, ready, updated and available replicas when they changed."""

    t: float
    name: str
    desired: int | None
    ready: int
    updated: int
    available: int
    selector: Mapping[str, str] = field(default_factory=dict)
    deleted: bool = False
    type: str = field(default="deployment", init=False)


@dataclass(frozen=True)
class PodSample:
    """A pod's phase, readiness and restarts when they changed.

    ``reason``: why it is not running now (CrashLoopBackOff, Evicted, ContainerCreating...);
    ``last_termination``: why its container last stopped (OOMKilled, Error).
    """

    t: float
    name: str
    deployment: str | None
    phase: str
    ready: bool
    restarts: int
    reason: str | None = None
    last_termination: str | None = None
    terminating: bool = False
    deleted: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)
    type: str = field(default="pod", init=False)

    @property
    def serving(self) -> bool:
        """Ready, and neither terminating nor gone: what a Service would send traffic to."""
        return self.ready and not self.terminating and not self.deleted


@dataclass(frozen=True)
class EventRecord:
    """A Kubernetes Event (``at`` is the cluster's own timestamp, ``t`` when we saw it).

    ``listed``: it was already there when watching began (history, not news).
    """

    t: float
    reason: str
    event_type: str
    object_kind: str
    object_name: str
    message: str
    count: int = 1
    at: str | None = None
    listed: bool = False
    type: str = field(default="event", init=False)

    @property
    def notable(self) -> bool:
        """A scaling event, failed metrics, an eviction, an OOM kill, a crash loop, a Warning."""
        return self.reason in NOTABLE_EVENT_REASONS or self.event_type == "Warning"


@dataclass(frozen=True)
class LoadSample:
    """Traffic at one moment: from a load test's interval, or scraped from the app's metrics."""

    t: float
    rps: float | None = None
    p95_ms: float | None = None
    error_rate: float | None = None
    users: int | None = None
    queue: int | None = None
    source: str = "load-test"
    type: str = field(default="load", init=False)


@dataclass(frozen=True)
class ProcessSample:
    """The ``local`` environment: how many processes of a component run (and are wanted)."""

    t: float
    component: str
    running: int
    wanted: int | None = None
    type: str = field(default="process", init=False)


@dataclass(frozen=True)
class WarningRecord:
    """One of the seed's alerts, when first seen (again after it cleared)."""

    t: float
    code: str
    message: str
    type: str = field(default="warning", init=False)


Record = (
    HpaSample
    | DeploymentSample
    | PodSample
    | EventRecord
    | LoadSample
    | ProcessSample
    | WarningRecord
)
# a record's ``type`` -> its class (what a JSON line is read back as)
RECORD_TYPES: dict[str, type[Any]] = {
    "hpa": HpaSample,
    "deployment": DeploymentSample,
    "pod": PodSample,
    "event": EventRecord,
    "load": LoadSample,
    "process": ProcessSample,
    "warning": WarningRecord,
}


def iso(t: float) -> str:
    """Epoch seconds as an ISO-8601 UTC timestamp with milliseconds."""
    return (
        datetime.fromtimestamp(t, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


def _num(x: float | None) -> str:
    if x is None:
        return "?"
    return f"{x:g}" if abs(x) >= 1 or x == 0 else f"{x:.3g}"
