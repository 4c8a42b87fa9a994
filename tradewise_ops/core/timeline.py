"""The monitoring timeline: what the autoscaler, the Deployments and the pods did, and when.

Watch events of HorizontalPodAutoscalers, Deployments, Pods and Events (plain dicts, as the API
serves them) become typed records on one clock: the monitor's, the moment each change was seen.
Load samples (a load test's intervals, or the app's own metrics) and process counts (the ``local``
environment) join the same timeline. Everything here is pure: ``TimelineBuilder`` folds events into
records and a live snapshot; ``analyze`` turns any sequence of records (live, or read back from a
``--record`` file) into scale-up latencies, pod-failure recoveries, warnings and verdicts.

Scale-up latency, for each rise of an HPA's desired replicas (or a ``SuccessfulRescale`` event):
``trigger`` (a metric crossed its target) -> ``rescale`` (the HPA raised desiredReplicas) ->
``ready`` (the target Deployment has that many ready pods). When the metric was already above
its target when the watch began, or since the HPA's previous rescale, the trigger is the later of
the two (``trigger_observed`` says whether the crossing itself was seen). Recovery: a pod that was
ready stops serving (crash, OOM kill, eviction, deletion) while its Deployment still wanted it ->
the Deployment is back to the ready count it had. Deletions while scaling down are not failures.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime
from typing import Any

from tradewise_ops.core.config import Slo
from tradewise_ops.core.hpa_metrics import read_hpa_metrics
from tradewise_ops.core.units import quantity_value as quantity
from tradewise_ops.errors import BadInputError

# the seed's alerting rules ("shown when seen")
ALERT_ERROR_RATE = 0.05
ALERT_P95_MS = 500.0
ALERT_RESTARTS = 3
ALERT_RESTART_WINDOW_SECONDS = 900.0
ALERT_QUEUE_BACKLOG = 50

WATCHED_KINDS = ("HorizontalPodAutoscaler", "Deployment", "Pod", "Event")
# an HPA's status and its SuccessfulRescale event come on two watches: one rescale if this close
_RESCALE_MATCH_SECONDS = 30.0
# a pod removed this shortly before its Deployment's scale-down was seen belongs to the scale-down
_SCALE_DOWN_GRACE_SECONDS = 10.0
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


# --------------------------------------------------------------------------------------------
# records
# --------------------------------------------------------------------------------------------
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
_RECORD_TYPES: dict[str, type[Any]] = {
    "hpa": HpaSample,
    "deployment": DeploymentSample,
    "pod": PodSample,
    "event": EventRecord,
    "load": LoadSample,
    "process": ProcessSample,
    "warning": WarningRecord,
}


# --------------------------------------------------------------------------------------------
# JSON lines
# --------------------------------------------------------------------------------------------
def record_to_json(record: Record) -> dict[str, Any]:
    """A record as a JSON-ready dict: ``type``, ``t`` (epoch seconds), ``time`` (ISO), fields."""
    data = asdict(record)
    out: dict[str, Any] = {"type": data.pop("type"), "t": data.pop("t")}
    out["time"] = iso(out["t"])
    out.update(data)
    return out


def record_from_json(data: Mapping[str, Any]) -> Record:
    """The record a ``record_to_json`` dict describes; ``BadInputError`` when it is not one."""
    kind = data.get("type")
    cls = _RECORD_TYPES.get(str(kind))
    if cls is None:
        raise BadInputError(f"not a timeline record: unknown type {kind!r}")
    names = {f.name for f in fields(cls) if f.init}
    values = {k: v for k, v in data.items() if k in names}
    if cls is HpaSample:
        values["metrics"] = tuple(MetricValue(**m) for m in values.get("metrics", ()))
    try:
        record: Record = cls(**values)
        return record
    except TypeError as exc:
        raise BadInputError(f"not a timeline record of type {kind!r}: {exc}") from None


def dumps_jsonl(records: Iterable[Record]) -> str:
    """Records as JSON lines (one object a line, newline-terminated)."""
    return "".join(json.dumps(record_to_json(r), sort_keys=False) + "\n" for r in records)


def loads_jsonl(text: str, source: str = "<timeline>") -> list[Record]:
    """Records from JSON lines; blank lines are skipped, a bad line names its number."""
    out: list[Record] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise BadInputError(f"{source}, line {number}: not JSON ({exc.msg})") from None
        if not isinstance(data, dict):
            raise BadInputError(f"{source}, line {number}: not a JSON object")
        try:
            out.append(record_from_json(data))
        except BadInputError as exc:
            raise BadInputError(f"{source}, line {number}: {exc.message}") from None
    return out


# --------------------------------------------------------------------------------------------
# Kubernetes objects -> records
# --------------------------------------------------------------------------------------------
def hpa_record(obj: Mapping[str, Any], t: float, deleted: bool = False) -> HpaSample:
    """An ``autoscaling/v2`` (or ``v1``) HorizontalPodAutoscaler as a sample."""
    meta = _map(obj.get("metadata"))
    spec = _map(obj.get("spec"))
    status = _map(obj.get("status"))
    ref = _map(spec.get("scaleTargetRef"))
    return HpaSample(
        t=t,
        name=str(meta.get("name", "")),
        target=str(ref.get("name", "")),
        min_replicas=_int(spec.get("minReplicas"), 1),
        max_replicas=_int(spec.get("maxReplicas"), 0),
        current=_int(status.get("currentReplicas"), 0),
        desired=_int(status.get("desiredReplicas"), 0),
        metrics=_hpa_metrics(obj),
        deleted=deleted,
    )


def deployment_record(obj: Mapping[str, Any], t: float, deleted: bool = False) -> DeploymentSample:
    """A Deployment as a sample (``desired`` is ``spec.replicas``, None when unset)."""
    meta = _map(obj.get("metadata"))
    spec = _map(obj.get("spec"))
    status = _map(obj.get("status"))
    replicas = spec.get("replicas")
    selector = _map(_map(spec.get("selector")).get("matchLabels"))
    return DeploymentSample(
        t=t,
        name=str(meta.get("name", "")),
        desired=None if replicas is None else _int(replicas, 0),
        ready=_int(status.get("readyReplicas"), 0),
        updated=_int(status.get("updatedReplicas"), 0),
        available=_int(status.get("availableReplicas"), 0),
        selector={str(k): str(v) for k, v in selector.items()},
        deleted=deleted,
    )


def pod_record(obj: Mapping[str, Any], t: float, deleted: bool = False) -> PodSample:
    """A Pod as a sample; its Deployment comes from its ReplicaSet owner and pod-template-hash."""
    meta = _map(obj.get("metadata"))
    status = _map(obj.get("status"))
    labels = {str(k): str(v) for k, v in _map(meta.get("labels")).items()}
    ready = any(
        _map(c).get("type") == "Ready" and _map(c).get("status") == "True"
        for c in _list(status.get("conditions"))
    )
    restarts = 0
    reason: str | None = None
    last_termination: str | None = None
    for cs in _list(status.get("containerStatuses")):
        cs = _map(cs)
        restarts += _int(cs.get("restartCount"), 0)
        state = _map(cs.get("state"))
        now = _map(state.get("waiting")).get("reason") or _map(state.get("terminated")).get(
            "reason"
        )
        if now and reason is None:
            reason = str(now)
        last = _map(_map(cs.get("lastState")).get("terminated")).get("reason")
        if last and last_termination is None:
            last_termination = str(last)
    if status.get("reason"):
        reason = str(status["reason"])  # Evicted, Preempting...: the pod's own reason wins
    return PodSample(
        t=t,
        name=str(meta.get("name", "")),
        deployment=_pod_deployment(meta, labels),
        phase=str(status.get("phase") or "Pending"),
        ready=ready,
        restarts=restarts,
        reason=reason,
        last_termination=last_termination,
        terminating=bool(meta.get("deletionTimestamp")),
        deleted=deleted,
        labels=labels,
    )


def event_record(obj: Mapping[str, Any], t: float, listed: bool = False) -> EventRecord:
    """A ``v1`` or ``events.k8s.io/v1`` Event as a record."""
    about = _map(obj.get("involvedObject")) or _map(obj.get("regarding"))
    series = _map(obj.get("series"))
    at = (
        obj.get("lastTimestamp")
        or obj.get("deprecatedLastTimestamp")
        or series.get("lastObservedTime")
        or obj.get("eventTime")
        or obj.get("firstTimestamp")
    )
    count = obj.get("count") or obj.get("deprecatedCount") or series.get("count") or 1
    return EventRecord(
        t=t,
        reason=str(obj.get("reason") or ""),
        event_type=str(obj.get("type") or "Normal"),
        object_kind=str(about.get("kind") or ""),
        object_name=str(about.get("name") or ""),
        message=str(obj.get("message") or obj.get("note") or "").strip(),
        count=_int(count, 1),
        at=None if at is None else str(at),
        listed=listed,
    )


def _hpa_metrics(obj: Mapping[str, Any]) -> tuple[MetricValue, ...]:
    out = []
    for metric in read_hpa_metrics(obj):
        target = metric.target
        ttype = str(target.get("type") or "")
        if ttype == "Utilization" or "averageUtilization" in target:
            key, unit = "averageUtilization", "%"
        elif ttype == "Value" or ("value" in target and "averageValue" not in target):
            key, unit = "value", ""
        else:
            key, unit = "averageValue", ""
        out.append(
            MetricValue(
                name=metric.name,
                kind=metric.kind,
                value=quantity(metric.current.get(key)),
                target=quantity(target.get(key)),
                unit=unit,
                per_pod=key == "averageValue",
            )
        )
    return tuple(out)


def _pod_deployment(meta: Mapping[str, Any], labels: Mapping[str, str]) -> str | None:
    hash_ = labels.get("pod-template-hash")
    for ref in _list(meta.get("ownerReferences")):
        ref = _map(ref)
        if ref.get("kind") == "ReplicaSet":
            rs = str(ref.get("name") or "")
            if hash_ and rs.endswith("-" + hash_):
                return rs[: -len(hash_) - 1]
            return rs.rsplit("-", 1)[0] if "-" in rs else rs
        if ref.get("kind") == "Deployment":
            return str(ref.get("name"))
    return None


# --------------------------------------------------------------------------------------------
# the cluster as the records describe it
# --------------------------------------------------------------------------------------------
class ClusterView:
    """The latest HPAs, Deployments, pods and processes after a sequence of records."""

    def __init__(self) -> None:
        self.hpas: dict[str, HpaSample] = {}
        self.deployments: dict[str, DeploymentSample] = {}
        self.pods: dict[str, PodSample] = {}
        self.processes: dict[str, ProcessSample] = {}
        self.load: LoadSample | None = None
        self._seen_pods_of: set[str] = set()

    def apply(self, record: Record) -> None:
        """Fold one record in."""
        if isinstance(record, HpaSample):
            _put(self.hpas, record.name, record, record.deleted)
        elif isinstance(record, DeploymentSample):
            _put(self.deployments, record.name, record, record.deleted)
        elif isinstance(record, PodSample):
            owner = self.owner(record)
            if owner:
                self._seen_pods_of.add(owner)
            _put(self.pods, record.name, record, record.deleted)
        elif isinstance(record, ProcessSample):
            self.processes[record.component] = record
        elif isinstance(record, LoadSample):
            self.load = record

    def copy(self) -> ClusterView:
        """A copy that later records do not change (records themselves are immutable)."""
        other = ClusterView()
        other.hpas = dict(self.hpas)
        other.deployments = dict(self.deployments)
        other.pods = dict(self.pods)
        other.processes = dict(self.processes)
        other.load = self.load
        other._seen_pods_of = set(self._seen_pods_of)
        return other

    def owner(self, pod: PodSample) -> str | None:
        """The Deployment a pod belongs to: its ReplicaSet's owner, else a matching selector."""
        if pod.deployment:
            return pod.deployment
        for dep in self.deployments.values():
            if dep.selector and all(pod.labels.get(k) == v for k, v in dep.selector.items()):
                return dep.name
        return None

    def pods_of(self, deployment: str) -> list[PodSample]:
        """The live pods of a Deployment."""
        return [p for p in self.pods.values() if self.owner(p) == deployment]

    def ready(self, deployment: str) -> int:
        """Serving pods of a Deployment (its status' readyReplicas until any pod of it is seen)."""
        if deployment in self._seen_pods_of:
            return sum(1 for p in self.pods_of(deployment) if p.serving)
        dep = self.deployments.get(deployment)
        return dep.ready if dep else 0

    def desired(self, deployment: str) -> int | None:
        """What a Deployment wants: its HPA's desired replicas, else its ``spec.replicas``.

        The HPA decides first; the Deployment's spec follows a moment later.
        """
        for hpa in self.hpas.values():
            if hpa.target == deployment and hpa.desired:
                return hpa.desired
        dep = self.deployments.get(deployment)
        return dep.desired if dep is not None else None

    def lowest_desired(self, deployment: str) -> int | None:
        """The lower of the HPA's decision and the Deployment's spec (scale-downs show in both)."""
        values = [h.desired for h in self.hpas.values() if h.target == deployment and h.desired]
        dep = self.deployments.get(deployment)
        if dep is not None and dep.desired is not None:
            values.append(dep.desired)
        return min(values) if values else None

    def deployment_names(self) -> list[str]:
        """Every Deployment known from its own records, its HPA or its pods, sorted."""
        names = set(self.deployments) | {h.target for h in self.hpas.values() if h.target}
        names |= self._seen_pods_of
        return sorted(names)


def _put(table: dict[str, Any], key: str, record: Any, deleted: bool) -> None:
    if deleted:
        table.pop(key, None)
    else:
        table[key] = record


# --------------------------------------------------------------------------------------------
# warnings
# --------------------------------------------------------------------------------------------
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


# --------------------------------------------------------------------------------------------
# building a timeline from watch events
# --------------------------------------------------------------------------------------------
class TimelineBuilder:
    """Folds watch events and samples into records; keeps the current view for a live display.

    Unchanged objects (a MODIFIED that only moved resourceVersion) add no record; a repeated
    Event adds one each time its count rises.
    """

    def __init__(self) -> None:
        self.records: list[Record] = []
        self.view = ClusterView()
        self.events: list[EventRecord] = []
        self.warnings: list[WarningRecord] = []
        self._detector = WarningDetector()
        self._event_counts: dict[str, int] = {}

    def observe(
        self,
        kind: str,
        event_type: str,
        obj: Mapping[str, Any],
        t: float,
        listed: bool = False,
    ) -> list[Record]:
        """Fold one watch event (``ADDED``/``MODIFIED``/``DELETED`` of a ``kind``) in.

        ``listed``: the object came with the initial list, before watching began.
        Returns the records it added (with any warnings it started).
        """
        deleted = event_type == "DELETED"
        record: Record
        if kind == "HorizontalPodAutoscaler":
            record = hpa_record(obj, t, deleted)
            previous: Any = self.view.hpas.get(record.name)
        elif kind == "Deployment":
            record = deployment_record(obj, t, deleted)
            previous = self.view.deployments.get(record.name)
        elif kind == "Pod":
            record = pod_record(obj, t, deleted)
            previous = self.view.pods.get(record.name)
        elif kind == "Event":
            if deleted:  # events expire; that is not news
                return []
            record = event_record(obj, t, listed)
            meta = _map(obj.get("metadata"))
            key = str(meta.get("uid") or meta.get("name") or id(obj))
            if self._event_counts.get(key) == record.count:
                return []
            self._event_counts[key] = record.count
            previous = None
        else:
            raise BadInputError(f"cannot monitor objects of kind {kind!r}")
        if previous is not None and replace(previous, t=t) == record:
            return []
        return self.add(record)

    def add(self, record: Record) -> list[Record]:
        """Append a record (a load or process sample, or one from ``observe``) and its warnings."""
        self.records.append(record)
        self.view.apply(record)
        if isinstance(record, EventRecord):
            self.events.append(record)
        added: list[Record] = [record]
        for warning in self._detector.feed(record):
            self.records.append(warning)
            self.warnings.append(warning)
            added.append(warning)
        return added


# --------------------------------------------------------------------------------------------
# analysis: scale-ups, recoveries, verdicts
# --------------------------------------------------------------------------------------------
PASS, FAIL, PENDING, NONE = "pass", "fail", "pending", "none"


@dataclass(frozen=True)
class ScaleUp:
    """One scale-up: trigger -> rescale -> ready, against the scale-up SLO."""

    hpa: str
    deployment: str
    from_replicas: int | None
    to_replicas: int
    metric: str | None
    trigger_at: float | None
    trigger_observed: bool
    rescale_at: float
    ready_at: float | None
    slo_seconds: float
    verdict: str

    @property
    def start(self) -> float:
        """When the clock starts: the trigger if known, else the rescale."""
        return self.trigger_at if self.trigger_at is not None else self.rescale_at

    @property
    def to_rescale_seconds(self) -> float | None:
        """Trigger to rescale."""
        return None if self.trigger_at is None else self.rescale_at - self.trigger_at

    @property
    def to_ready_seconds(self) -> float | None:
        """Rescale to the new pods ready."""
        return None if self.ready_at is None else self.ready_at - self.rescale_at

    @property
    def total_seconds(self) -> float | None:
        """Trigger (or rescale) to the new pods ready: what the SLO is about."""
        return None if self.ready_at is None else self.ready_at - self.start

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "hpa": self.hpa,
            "deployment": self.deployment,
            "from_replicas": self.from_replicas,
            "to_replicas": self.to_replicas,
            "metric": self.metric,
            "trigger_at": _iso_or_none(self.trigger_at),
            "trigger_observed": self.trigger_observed,
            "rescale_at": iso(self.rescale_at),
            "ready_at": _iso_or_none(self.ready_at),
            "trigger_to_rescale_seconds": _round(self.to_rescale_seconds),
            "rescale_to_ready_seconds": _round(self.to_ready_seconds),
            "total_seconds": _round(self.total_seconds),
            "slo_seconds": self.slo_seconds,
            "verdict": self.verdict,
        }


@dataclass(frozen=True)
class ScaleDown:
    """One scale-down of an HPA (reported, no SLO)."""

    hpa: str
    deployment: str
    from_replicas: int
    to_replicas: int
    at: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "hpa": self.hpa,
            "deployment": self.deployment,
            "from_replicas": self.from_replicas,
            "to_replicas": self.to_replicas,
            "at": iso(self.at),
        }


@dataclass(frozen=True)
class Recovery:
    """A pod failure and the time until its Deployment was back to the ready count it had."""

    deployment: str
    pod: str
    cause: str
    failed_at: float
    recovered_at: float | None
    slo_seconds: float
    verdict: str

    @property
    def seconds(self) -> float | None:
        """Failure to recovery."""
        return None if self.recovered_at is None else self.recovered_at - self.failed_at

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "deployment": self.deployment,
            "pod": self.pod,
            "cause": self.cause,
            "failed_at": iso(self.failed_at),
            "recovered_at": _iso_or_none(self.recovered_at),
            "seconds": _round(self.seconds),
            "slo_seconds": self.slo_seconds,
            "verdict": self.verdict,
        }


@dataclass(frozen=True)
class Analysis:
    """What a timeline says: scale-ups, scale-downs, recoveries, warnings and the verdict."""

    start: float | None
    end: float | None
    scale_ups: tuple[ScaleUp, ...]
    scale_downs: tuple[ScaleDown, ...]
    recoveries: tuple[Recovery, ...]
    warnings: tuple[WarningRecord, ...]
    verdict: str

    @property
    def breached(self) -> bool:
        """True when a scale-up or a recovery missed its SLO."""
        return self.verdict == FAIL

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "start": _iso_or_none(self.start),
            "end": _iso_or_none(self.end),
            "verdict": self.verdict,
            "scale_ups": [s.to_dict() for s in self.scale_ups],
            "scale_downs": [s.to_dict() for s in self.scale_downs],
            "recoveries": [r.to_dict() for r in self.recoveries],
            "warnings": [
                {"at": iso(w.t), "code": w.code, "message": w.message} for w in self.warnings
            ],
        }


@dataclass
class _OpenScaleUp:
    hpa: str
    deployment: str
    from_replicas: int | None
    to_replicas: int
    metric: str | None
    trigger_at: float | None
    trigger_observed: bool
    rescale_at: float
    ready_at: float | None = None


@dataclass
class _OpenFailure:
    deployment: str
    pod: str
    cause: str
    failed_at: float
    ready_before: int
    removed: bool = False  # deleted or terminating, not crashed: maybe a scale-down's
    recovered_at: float | None = None
    cancelled: bool = False


@dataclass
class _HpaTrack:
    desired: int | None = None
    last_rescale: float | None = None
    # metric name -> (when its current above-target run began, whether the crossing was seen)
    above_since: dict[str, tuple[float, bool]] = field(default_factory=dict)
    seen_metrics: set[str] = field(default_factory=set)


_NEW_SIZE = re.compile(r"New size:\s*(\d+)")


def analyze(
    records: Sequence[Record], slo: Slo | None = None, end: float | None = None
) -> Analysis:
    """Scale-up latencies, recoveries, warnings and the verdict of a timeline.

    ``end`` is when watching stopped (default: the last record): an unfinished scale-up or
    recovery is ``fail`` once it has taken longer than its SLO by then, else ``pending``.
    Stored warnings are ignored and recomputed, so a ``--record`` file replays to the same result.
    """
    slo = slo or Slo()
    ordered = sorted(records, key=lambda r: r.t)
    view = ClusterView()
    detector = WarningDetector()
    tracks: dict[str, _HpaTrack] = {}
    scale_ups: list[_OpenScaleUp] = []
    scale_downs: list[ScaleDown] = []
    failures: list[_OpenFailure] = []
    warnings: list[WarningRecord] = []
    rescale_events: list[tuple[float, str, int, str]] = []  # t, hpa, new size, message

    for record in ordered:
        if isinstance(record, WarningRecord):
            continue
        if isinstance(record, PodSample):
            _pod_failure(view, record, failures)
        view.apply(record)
        warnings.extend(detector.feed(record))
        if isinstance(record, HpaSample) and not record.deleted:
            _hpa_change(record, tracks, scale_ups, scale_downs, rescale_events)
        elif isinstance(record, EventRecord) and record.reason == "SuccessfulRescale":
            m = _NEW_SIZE.search(record.message)
            if m and record.object_kind in ("HorizontalPodAutoscaler", ""):
                _rescale_event(record, int(m.group(1)), view, tracks, scale_ups, rescale_events)
        for up in scale_ups:
            if up.ready_at is None:
                wanted = up.to_replicas
                hpa = view.hpas.get(up.hpa)
                if hpa is not None and hpa.t > up.rescale_at and 0 < hpa.desired < wanted:
                    wanted = hpa.desired  # scaled down again before it finished
                if view.ready(up.deployment) >= wanted:
                    up.ready_at = record.t
        if isinstance(record, (HpaSample, DeploymentSample)):
            _scale_down_seen(view, record.t, failures)
        for failure in failures:
            if failure.recovered_at is None:
                wanted = failure.ready_before
                desired = view.desired(failure.deployment)
                if desired is not None:
                    wanted = min(wanted, desired)
                if view.ready(failure.deployment) >= wanted:
                    failure.recovered_at = record.t

    start = ordered[0].t if ordered else None
    stop = end if end is not None else (ordered[-1].t if ordered else None)
    ups = tuple(_close_scale_up(u, slo.scale_up_seconds, stop) for u in scale_ups)
    recoveries = tuple(
        _close_failure(f, slo.recovery_seconds, stop) for f in failures if not f.cancelled
    )
    verdicts = [u.verdict for u in ups] + [r.verdict for r in recoveries]
    if FAIL in verdicts:
        verdict = FAIL
    elif PENDING in verdicts:
        verdict = PENDING
    elif verdicts:
        verdict = PASS
    else:
        verdict = NONE
    return Analysis(
        start=start,
        end=stop,
        scale_ups=ups,
        scale_downs=tuple(scale_downs),
        recoveries=recoveries,
        warnings=tuple(warnings),
        verdict=verdict,
    )


def _hpa_change(
    hpa: HpaSample,
    tracks: dict[str, _HpaTrack],
    scale_ups: list[_OpenScaleUp],
    scale_downs: list[ScaleDown],
    rescale_events: list[tuple[float, str, int, str]],
) -> None:
    track = tracks.setdefault(hpa.name, _HpaTrack())
    for value in hpa.metrics:
        above = value.above
        if above is None:
            continue
        if above and value.name not in track.above_since:
            track.above_since[value.name] = (hpa.t, value.name in track.seen_metrics)
        elif not above:
            track.above_since.pop(value.name, None)
        track.seen_metrics.add(value.name)
    previous = track.desired
    if hpa.desired <= 0:
        return  # no status yet
    track.desired = hpa.desired
    if previous is None or hpa.desired == previous:
        return
    if hpa.desired < previous:
        scale_downs.append(ScaleDown(hpa.name, hpa.target, previous, hpa.desired, hpa.t))
        track.last_rescale = hpa.t
        return
    # a scale-up: did its SuccessfulRescale event arrive first (another watch)?
    rescale_at = hpa.t
    for t, name, size, _ in rescale_events:
        if name == hpa.name and size == hpa.desired and 0 <= hpa.t - t <= _RESCALE_MATCH_SECONDS:
            rescale_at = min(rescale_at, t)
    # a scale-up the event already opened (no HPA status seen for it) is this one
    for up in scale_ups:
        if (
            up.hpa == hpa.name
            and up.to_replicas == hpa.desired
            and abs(up.rescale_at - hpa.t) <= _RESCALE_MATCH_SECONDS
        ):
            up.from_replicas = up.from_replicas if up.from_replicas is not None else previous
            track.last_rescale = up.rescale_at
            return
    trigger, observed, metric = _trigger(track, rescale_at)
    scale_ups.append(
        _OpenScaleUp(
            hpa=hpa.name,
            deployment=hpa.target,
            from_replicas=previous,
            to_replicas=hpa.desired,
            metric=metric,
            trigger_at=trigger,
            trigger_observed=observed,
            rescale_at=rescale_at,
        )
    )
    track.last_rescale = rescale_at


def _trigger(track: _HpaTrack, rescale_at: float) -> tuple[float | None, bool, str | None]:
    """The earliest start of a metric's above-target run, not before the previous rescale."""
    best: tuple[float, bool, str] | None = None
    for name, (since, observed) in track.above_since.items():
        if since > rescale_at:
            continue
        if track.last_rescale is not None and since < track.last_rescale:
            since, observed = track.last_rescale, False
        if best is None or since < best[0]:
            best = (since, observed, name)
    if best is None:
        return None, False, None
    return best


def _rescale_event(
    event: EventRecord,
    size: int,
    view: ClusterView,
    tracks: dict[str, _HpaTrack],
    scale_ups: list[_OpenScaleUp],
    rescale_events: list[tuple[float, str, int, str]],
) -> None:
    name = event.object_name
    rescale_events.append((event.t, name, size, event.message))
    for up in scale_ups:  # the HPA's status got here first: keep the earlier sighting
        if up.hpa == name and up.to_replicas == size:
            if 0 <= event.t - up.rescale_at <= _RESCALE_MATCH_SECONDS:
                return
    if event.listed:
        return  # history from before watching began
    track = tracks.get(name)
    if track is not None and track.desired is not None:
        if size <= track.desired:
            return  # a scale-down or the size it already has: the HPA's status tells those
    elif "above target" not in event.message:
        return  # unknowable direction: wait for the HPA's status
    hpa = view.hpas.get(name)
    track = tracks.setdefault(name, _HpaTrack())
    trigger, observed, metric = _trigger(track, event.t)
    if metric is None:
        metric = _metric_from_message(event.message)
    scale_ups.append(
        _OpenScaleUp(
            hpa=name,
            deployment=hpa.target if hpa else _guess_target(name),
            from_replicas=track.desired,
            to_replicas=size,
            metric=metric,
            trigger_at=trigger,
            trigger_observed=observed,
            rescale_at=event.t,
        )
    )
    track.last_rescale = event.t
    track.desired = size


def _metric_from_message(message: str) -> str | None:
    m = re.search(r"reason:\s*(.+?)\s+above target", message)
    if not m:
        return None
    words = m.group(1).split()
    return words[0] if words else None


def _guess_target(hpa: str) -> str:
    return hpa[: -len("-hpa")] + "-deployment" if hpa.endswith("-hpa") else hpa


def _pod_failure(view: ClusterView, pod: PodSample, failures: list[_OpenFailure]) -> None:
    """Open a failure when a serving pod stops serving while its Deployment still wants it."""
    before = view.pods.get(pod.name)
    if before is None or not before.serving or pod.serving:
        return
    deployment = view.owner(before)
    if deployment is None:
        return
    ready_before = view.ready(deployment)
    crashed = pod.restarts > before.restarts or pod.phase == "Failed"
    desired = view.lowest_desired(deployment)
    if not crashed and desired is not None and ready_before > desired:
        return  # removed by a scale-down (or a rollout's surge): the pod is not missed
    if any(f.pod == pod.name and f.recovered_at is None for f in failures):
        return
    if pod.restarts > before.restarts:
        cause = pod.last_termination or pod.reason or "restarted"
    elif pod.reason:
        cause = pod.reason
    elif pod.deleted or pod.terminating:
        cause = "deleted"
    else:
        cause = "not ready"
    failures.append(
        _OpenFailure(
            deployment=deployment,
            pod=pod.name,
            cause=cause,
            failed_at=pod.t,
            ready_before=ready_before,
            removed=not crashed and (pod.deleted or pod.terminating),
        )
    )


def _scale_down_seen(view: ClusterView, t: float, failures: list[_OpenFailure]) -> None:
    """A pod removed just before its scale-down was seen was the scale-down's, not a failure.

    The HPA, the Deployment and the pods arrive on separate watches, so a scale-down's pod
    deletions may be seen a moment before the decision that caused them.
    """
    for f in failures:
        if f.removed and not f.cancelled and 0 <= t - f.failed_at <= _SCALE_DOWN_GRACE_SECONDS:
            desired = view.lowest_desired(f.deployment)
            if desired is not None and desired < f.ready_before:
                f.cancelled = True


def _close_scale_up(up: _OpenScaleUp, slo: float, stop: float | None) -> ScaleUp:
    start = up.trigger_at if up.trigger_at is not None else up.rescale_at
    if up.ready_at is not None:
        verdict = PASS if up.ready_at - start <= slo else FAIL
    else:
        verdict = FAIL if stop is not None and stop - start > slo else PENDING
    return ScaleUp(
        hpa=up.hpa,
        deployment=up.deployment,
        from_replicas=up.from_replicas,
        to_replicas=up.to_replicas,
        metric=up.metric,
        trigger_at=up.trigger_at,
        trigger_observed=up.trigger_observed,
        rescale_at=up.rescale_at,
        ready_at=up.ready_at,
        slo_seconds=slo,
        verdict=verdict,
    )


def _close_failure(f: _OpenFailure, slo: float, stop: float | None) -> Recovery:
    if f.recovered_at is not None:
        verdict = PASS if f.recovered_at - f.failed_at <= slo else FAIL
    else:
        verdict = FAIL if stop is not None and stop - f.failed_at > slo else PENDING
    return Recovery(
        deployment=f.deployment,
        pod=f.pod,
        cause=f.cause,
        failed_at=f.failed_at,
        recovered_at=f.recovered_at,
        slo_seconds=slo,
        verdict=verdict,
    )


# --------------------------------------------------------------------------------------------
# series for charts
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReplicaPoint:
    """Desired and ready replicas of one Deployment at one moment."""

    t: float
    desired: int | None
    ready: int


def replica_series(records: Sequence[Record]) -> dict[str, list[ReplicaPoint]]:
    """Per Deployment, a point each time its desired or ready replicas changed."""
    view = ClusterView()
    out: dict[str, list[ReplicaPoint]] = {}
    for record in sorted(records, key=lambda r: r.t):
        if not isinstance(record, (HpaSample, DeploymentSample, PodSample)):
            continue
        view.apply(record)
        for name in view.deployment_names():
            point = ReplicaPoint(record.t, view.desired(name), view.ready(name))
            series = out.setdefault(name, [])
            if series and (series[-1].desired, series[-1].ready) == (point.desired, point.ready):
                continue
            if series and series[-1].t == point.t:
                series[-1] = point
            else:
                series.append(point)
    return out


# --------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------
def iso(t: float) -> str:
    """Epoch seconds as an ISO-8601 UTC timestamp with milliseconds."""
    return (
        datetime.fromtimestamp(t, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


def _iso_or_none(t: float | None) -> str | None:
    return None if t is None else iso(t)


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def _num(x: float | None) -> str:
    if x is None:
        return "?"
    return f"{x:g}" if abs(x) >= 1 or x == 0 else f"{x:.3g}"


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else []


def _int(value: Any, default: int) -> int:
    if value is None or isinstance(value, bool):
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


# --------------------------------------------------------------------------------------------
# the app's own metrics (the ``local`` environment)
# --------------------------------------------------------------------------------------------
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
