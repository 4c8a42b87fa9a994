"""The steps a release decided by evidence adds to a deploy plan, and where they go.

A verified blue-green release (``core.plan.release_steps`` gives the plain one) goes:

1. ``retire``: a slot Deployment that is not serving (the previous slot kept for an instant
   rollback, expired or not, or one an interrupted release left) is deleted first, so the new
   version starts in a clean slot and never more than two slots run;
2. the usual apply, prune and wait for the new slot;
3. ``preview``: the Service ``tradewise-api-preview`` selecting only the new slot (and the
   preview Ingress host where there is a domain);
4. ``verify``: smoke checks, then the load test with the SLOs (``core.verify``); a miss stops
   here: the new slot and the preview are deleted, traffic never moved;
5. ``switch``: the API Service and HPA move to the new slot (only when it has ready pods);
6. ``close-preview``: the preview objects are deleted;
7. ``keep``: the old slot stays, scaled as it was, for ``release.keep_previous`` (an annotation
   with the time it expires: ``rollback`` within it only switches back), instead of the late
   prune that deleted it;
8. ``finish``: the record says deployed (with the verification in it).

The step types live here; ``core.verified_plan`` puts them into a plan (``with_verification``,
``with_retired``, ``instant_steps``). Pure.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from tradewise_ops.core.bluegreen import slot_deployment
from tradewise_ops.core.canary import CanaryPlan
from tradewise_ops.core.release import ObjectRef
from tradewise_ops.core.units import format_duration
from tradewise_ops.core.verify import VerifyPlan

# on a kept previous slot: until when it is kept (UTC, ISO 8601) and which revision it serves
PREVIOUS_UNTIL = "tradewise.io/previous-until"
PREVIOUS_REVISION = "tradewise.io/previous-revision"


def _deployment_ref(slot: str, namespace: str) -> ObjectRef:
    return ObjectRef("apps/v1", "Deployment", slot_deployment(slot), namespace)


@dataclass(frozen=True)
class RetireSlot:
    """Delete a slot Deployment that does not serve: a kept previous slot (``revision``,
    ``until``) or one an interrupted release left behind."""

    op: ClassVar[str] = "retire"
    phase: ClassVar[str] = "apply"
    slot: str
    namespace: str
    revision: int | None = None
    until: str | None = None

    @property
    def ref(self) -> ObjectRef:
        return _deployment_ref(self.slot, self.namespace)

    @property
    def target(self) -> str:
        return str(self.ref)

    @property
    def detail(self) -> str:
        if self.until is None:
            return f"slot {self.slot} does not serve: deleted"
        kept = f"the previous slot (revision {self.revision}) kept until {self.until}"
        return f"{kept}: deleted before the new version starts"


@dataclass(frozen=True)
class OpenPreview:
    """Apply the preview of the new slot: a Service selecting only it (and an Ingress host)."""

    op: ClassVar[str] = "preview"
    phase: ClassVar[str] = "preview"
    slot: str
    objects: tuple[dict[str, Any], ...] = field(repr=False)

    @property
    def refs(self) -> list[ObjectRef]:
        return [ObjectRef.of(o) for o in self.objects]

    @property
    def target(self) -> str:
        return str(self.refs[0])

    @property
    def detail(self) -> str:
        text = f"selects slot {self.slot} only"
        hosts = [
            r.get("host")
            for o in self.objects
            if o["kind"] == "Ingress"
            for r in o["spec"].get("rules") or []
        ]
        if hosts:
            text += f"; Ingress host {', '.join(str(h) for h in hosts)}"
        return text


@dataclass(frozen=True)
class VerifyRelease:
    """Smoke checks and the verification load against the new slot's preview; a miss stops
    the release before any traffic moves."""

    op: ClassVar[str] = "verify"
    phase: ClassVar[str] = "verify"
    slot: str
    verify: VerifyPlan = field(repr=False)
    namespace: str = ""

    @property
    def target(self) -> str:
        if self.verify.mode == "cluster":
            return f"Jobs in {self.namespace} -> {self.verify.url}"
        return str(self.verify.url)

    @property
    def detail(self) -> str:
        return self.verify.describe()


@dataclass(frozen=True)
class ClosePreview:
    """Delete the preview objects (the release is decided)."""

    op: ClassVar[str] = "close-preview"
    phase: ClassVar[str] = "cleanup"
    refs: tuple[ObjectRef, ...]

    @property
    def target(self) -> str:
        return str(self.refs[0])

    @property
    def detail(self) -> str:
        return "deleted: " + ", ".join(str(r) for r in self.refs)


@dataclass(frozen=True)
class KeepPrevious:
    """Keep the slot traffic left, scaled as it was, for ``seconds``: an annotation says until
    when (and which revision it serves), so ``rollback`` in that window only switches back and
    the next deploy (or ``release finalize``) deletes it."""

    op: ClassVar[str] = "keep"
    phase: ClassVar[str] = "cleanup"
    slot: str
    namespace: str
    revision: int | None
    seconds: float

    @property
    def ref(self) -> ObjectRef:
        return _deployment_ref(self.slot, self.namespace)

    @property
    def target(self) -> str:
        return str(self.ref)

    @property
    def detail(self) -> str:
        return (
            f"the previous slot stays {format_duration(self.seconds)} as it is: `rollback` "
            "switches back to it in seconds until then"
        )


@dataclass(frozen=True)
class ReleaseOptions:
    """What a release decided by evidence needs besides the rendered objects: the verification,
    the preview host (``preview_host``.``domain``, None without a domain), and how long the
    previous slot stays (``keep_seconds``)."""

    verify: VerifyPlan
    keep_seconds: float = 900.0
    domain: str | None = None
    preview_host: str = "preview"
    preview_tls_secret: str | None = None
    canary: CanaryPlan | None = None  # a canary release's steps and analysis

    def preview(self, rendered: Sequence[dict[str, Any]], slot: str) -> list[dict[str, Any]]:
        """The preview objects of ``slot`` (none when the verification is skipped)."""
        if self.verify.skipped:
            return []
        from tradewise_ops.core.preview import preview_objects

        return preview_objects(
            rendered,
            slot,
            domain=self.domain,
            preview_host=self.preview_host,
            tls_secret=self.preview_tls_secret,
        )


@dataclass(frozen=True)
class OpenCanary:
    """Apply the canary Service (the new slot only) and the canary Ingress at weight 0."""

    op: ClassVar[str] = "canary-open"
    phase: ClassVar[str] = "canary"
    slot: str
    objects: tuple[dict[str, Any], ...] = field(repr=False)

    @property
    def refs(self) -> list[ObjectRef]:
        return [ObjectRef.of(o) for o in self.objects]

    @property
    def target(self) -> str:
        return str(self.refs[-1])

    @property
    def detail(self) -> str:
        return f"ingress-nginx canary at weight 0 -> {self.refs[0]} (slot {self.slot} only)"


@dataclass(frozen=True)
class CanaryStep:
    """Set the canary Ingress's weight, hold it, then judge the canary (Prometheus, or the
    verification load without it); a breach stops the release: weight 0, canary deleted."""

    op: ClassVar[str] = "canary"
    phase: ClassVar[str] = "canary"
    number: int
    total: int
    weight: int
    hold_seconds: float
    ingress: str
    judged_by: str = ""  # what the analysis is, in words (CanaryPlan.describe)

    @property
    def target(self) -> str:
        return f"Ingress/{self.ingress}"

    @property
    def detail(self) -> str:
        return (
            f"step {self.number}/{self.total}: weight {self.weight}% for "
            f"{format_duration(self.hold_seconds)}, {self.judged_by}"
        )


@dataclass(frozen=True)
class CloseCanary:
    """Delete the canary Ingress and Service (the stable Service serves the new slot now)."""

    op: ClassVar[str] = "canary-close"
    phase: ClassVar[str] = "cleanup"
    refs: tuple[ObjectRef, ...]

    @property
    def target(self) -> str:
        return str(self.refs[-1])

    @property
    def detail(self) -> str:
        return "deleted: " + ", ".join(str(r) for r in self.refs)


def keep_annotations(until_epoch: float, revision: int | None) -> dict[str, str]:
    """The annotations of a kept previous slot."""
    out = {PREVIOUS_UNTIL: iso_time(until_epoch)}
    if revision is not None:
        out[PREVIOUS_REVISION] = str(revision)
    return out


def iso_time(epoch: float) -> str:
    """``2026-11-30T08:25:06Z`` (UTC)."""
    moment = datetime.datetime.fromtimestamp(epoch, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str | None) -> float | None:
    """Seconds since the epoch of an ``iso_time`` text; None when absent or unreadable."""
    if not text:
        return None
    try:
        moment = datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        return None
    return moment.replace(tzinfo=datetime.UTC).timestamp()


@dataclass(frozen=True)
class KeptSlot:
    """A slot Deployment kept after a switch: which slot, until when, which revision."""

    slot: str
    until: str | None
    revision: int | None
    ready: int = 0

    def expired(self, now: float) -> bool:
        """Whether its window is over (a slot without a readable time counts as expired)."""
        until = parse_time(self.until)
        return until is None or now >= until

    def left(self, now: float) -> float:
        until = parse_time(self.until)
        return 0.0 if until is None else max(0.0, until - now)


def kept_slot(slot: str, deployment: Mapping[str, Any]) -> KeptSlot:
    """What a slot Deployment says about itself: its keep annotations and ready pods."""
    meta = deployment.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    raw_revision = annotations.get(PREVIOUS_REVISION)
    revision = int(str(raw_revision)) if str(raw_revision or "").isdigit() else None
    ready = int((deployment.get("status") or {}).get("readyReplicas") or 0)
    return KeptSlot(slot, annotations.get(PREVIOUS_UNTIL), revision, ready)
