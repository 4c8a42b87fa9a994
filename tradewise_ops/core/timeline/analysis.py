"""What a timeline says: scale-up latencies, pod-failure recoveries, warnings and the verdict.

Scale-up latency, for each rise of an HPA's desired replicas (or a ``SuccessfulRescale`` event):
``trigger`` (a metric crossed its target) -> ``rescale`` (the HPA raised desiredReplicas) ->
``ready`` (the target Deployment has that many ready pods). When the metric was already above
its target when the watch began, or since the HPA's previous rescale, the trigger is the later of
the two (``trigger_observed`` says whether the crossing itself was seen). Recovery: a pod that was
ready stops serving (crash, OOM kill, eviction, deletion) while its Deployment still wanted it ->
the Deployment is back to the ready count it had. Deletions while scaling down are not failures.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tradewise_ops.core.config import Slo
from tradewise_ops.core.timeline.alerts import WarningDetector
from tradewise_ops.core.timeline.records import (
    DeploymentSample,
    EventRecord,
    HpaSample,
    PodSample,
    Record,
    WarningRecord,
    iso,
)
from tradewise_ops.core.timeline.view import ClusterView

# an HPA's status and its SuccessfulRescale event come on two watches: one rescale if this close
_RESCALE_MATCH_SECONDS = 30.0
# a pod removed this shortly before its Deployment's scale-down was seen belongs to the scale-down
_SCALE_DOWN_GRACE_SECONDS = 10.0

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


def _iso_or_none(t: float | None) -> str | None:
    return None if t is None else iso(t)


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 3)
