"""The release lock as data: who holds an environment's Lease, whether it expired, what to say.

A running ``deploy``, ``rollback`` or ``scale`` of an environment holds a ``coordination.k8s.io/v1``
Lease, ``tradewise-lock-<env>`` in the environment's namespace, the way controllers hold their
leader-election Lease: ``holderIdentity`` (``user@host:pid``), ``acquireTime``, ``renewTime``
(renewed while the command runs) and ``leaseDurationSeconds``. A Lease not renewed within its
duration has **expired**: its holder is gone (killed, its machine lost) and the next writer may
take it over. The command it runs is in the annotation ``tradewise.io/command``.

This module builds and reads Lease objects and answers questions about them (expired? who, since
when, doing what?); it does no I/O. ``adapters.lock.ReleaseLock`` creates, renews and deletes them.
Times are timezone-aware UTC ``datetime``s, passed in by the caller.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tradewise_ops.core.release import PENDING, Release
from tradewise_ops.core.units import format_duration

LEASE_API_VERSION = "coordination.k8s.io/v1"
LEASE_PREFIX = "tradewise-lock-"
COMMAND_ANNOTATION = "tradewise.io/command"
ENV_LABEL = "tradewise.io/environment"
DEFAULT_LEASE_SECONDS = 30
INTERRUPTED = "interrupted"  # how status and history show a pending release whose holder is gone

_MICRO_TIME = "%Y-%m-%dT%H:%M:%S.%fZ"  # the API's MicroTime


def lease_name(environment: str) -> str:
    """``tradewise-lock-<environment>`` (environment names are DNS-1123 labels)."""
    return f"{LEASE_PREFIX}{environment}"


def holder_identity(user: str, host: str, pid: int) -> str:
    """``user@host:pid``: who holds a lock, as ``holderIdentity`` and in messages."""
    return f"{user or 'unknown'}@{host or 'unknown'}:{pid}"


def format_time(moment: datetime.datetime) -> str:
    """A ``MicroTime``: ``2026-01-01T10:00:00.000000Z``."""
    return moment.astimezone(datetime.UTC).strftime(_MICRO_TIME)


def parse_time(text: Any) -> datetime.datetime | None:
    """A ``MicroTime`` or ``Time`` (``...Z`` or an offset) as aware UTC; None when unreadable."""
    if not isinstance(text, str) or not text:
        return None
    try:
        moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.astimezone(datetime.UTC)


@dataclass(frozen=True)
class LockHolder:
    """Who holds an environment's lock: identity, command, acquired and last renewed when."""

    identity: str
    command: str
    acquired: datetime.datetime | None
    renewed: datetime.datetime | None
    duration_seconds: int = DEFAULT_LEASE_SECONDS
    transitions: int = 0

    def expires_at(self) -> datetime.datetime | None:
        """When the lease runs out unless renewed (None: it carries no renew time)."""
        last = self.renewed or self.acquired
        return None if last is None else last + datetime.timedelta(seconds=self.duration_seconds)

    def expired(self, now: datetime.datetime) -> bool:
        """Not renewed within ``duration_seconds``: its holder is gone. A lease without any
        time counts as expired (nothing says it is alive)."""
        until = self.expires_at()
        return until is None or now >= until

    def sentence(self, now: datetime.datetime) -> str:
        """``held by alice@ci-7:4242 since 2026-...Z (2m05s ago) with `tradewise deploy ...```,
        and when it was renewed or that it has expired."""
        since = ""
        if self.acquired is not None:
            ago = max((now - self.acquired).total_seconds(), 0.0)
            since = f" since {self.acquired.strftime('%Y-%m-%dT%H:%M:%SZ')} ({_ago(ago)})"
        command = f" with `{self.command}`" if self.command else ""
        text = f"held by {self.identity}{since}{command}"
        until = self.expires_at()
        if until is not None and now >= until:
            return text + f"; expired {_ago((now - until).total_seconds())} (its holder is gone)"
        if self.renewed is not None:
            text += f"; renewed {_ago(max((now - self.renewed).total_seconds(), 0.0))}"
        return text

    def to_dict(self, now: datetime.datetime) -> dict[str, Any]:
        """JSON-ready, with ``expired`` as of ``now``."""
        return {
            "holder": self.identity,
            "command": self.command,
            "acquired": format_time(self.acquired) if self.acquired else None,
            "renewed": format_time(self.renewed) if self.renewed else None,
            "lease_seconds": self.duration_seconds,
            "expired": self.expired(now),
            "transitions": self.transitions,
        }


def _ago(seconds: float) -> str:
    return "just now" if seconds < 1 else f"{format_duration(round(seconds))} ago"


def holder_of(lease: dict[str, Any] | None) -> LockHolder | None:
    """The holder a Lease names; None when there is no Lease or it names nobody (released)."""
    if not lease:
        return None
    spec = lease.get("spec") or {}
    identity = spec.get("holderIdentity")
    if not identity:
        return None
    annotations = (lease.get("metadata") or {}).get("annotations") or {}
    try:
        duration = int(spec.get("leaseDurationSeconds") or DEFAULT_LEASE_SECONDS)
    except (TypeError, ValueError):
        duration = DEFAULT_LEASE_SECONDS
    try:
        transitions = int(spec.get("leaseTransitions") or 0)
    except (TypeError, ValueError):
        transitions = 0
    return LockHolder(
        identity=str(identity),
        command=str(annotations.get(COMMAND_ANNOTATION) or ""),
        acquired=parse_time(spec.get("acquireTime")),
        renewed=parse_time(spec.get("renewTime")),
        duration_seconds=max(duration, 1),
        transitions=transitions,
    )


def lease_object(
    environment: str,
    namespace: str,
    holder: LockHolder,
    *,
    resource_version: str | None = None,
) -> dict[str, Any]:
    """The Lease that says ``holder`` holds ``environment``'s lock (with ``resource_version``:
    a replacement of that version, for a renewal or a take-over)."""
    metadata: dict[str, Any] = {
        "name": lease_name(environment),
        "namespace": namespace,
        "labels": {
            "app.kubernetes.io/managed-by": "tradewise",
            "owner": "tradewise",
            ENV_LABEL: environment,
        },
        "annotations": {COMMAND_ANNOTATION: holder.command},
    }
    if resource_version is not None:
        metadata["resourceVersion"] = resource_version
    spec: dict[str, Any] = {
        "holderIdentity": holder.identity,
        "leaseDurationSeconds": holder.duration_seconds,
        "leaseTransitions": holder.transitions,
    }
    if holder.acquired is not None:
        spec["acquireTime"] = format_time(holder.acquired)
    if holder.renewed is not None:
        spec["renewTime"] = format_time(holder.renewed)
    return {"apiVersion": LEASE_API_VERSION, "kind": "Lease", "metadata": metadata, "spec": spec}


def live_holder(lease: dict[str, Any] | None, now: datetime.datetime) -> LockHolder | None:
    """The holder of ``lease`` if it has not expired; None when the lock is free or stale."""
    holder = holder_of(lease)
    return None if holder is None or holder.expired(now) else holder


def mark_interrupted(releases: Sequence[Release], live: LockHolder | None) -> list[Release]:
    """``releases`` with each ``pending`` one whose deploy is gone shown as ``interrupted``.

    A pending release belongs to a running deploy only while that deploy holds the lock:
    ``live`` (the unexpired holder, or None) must be the holder recorded on it. A record from
    before the lock (no holder) counts as running only while someone holds the lock.
    """
    out = []
    for release in releases:
        if release.status == PENDING and not _still_running(release, live):
            note = "its deploy stopped without finishing (no live lock holder)"
            if release.holder:
                note = f"{release.holder} stopped without finishing"
            out.append(dataclasses.replace(release, status=INTERRUPTED, note=note))
        else:
            out.append(release)
    return out


def _still_running(release: Release, live: LockHolder | None) -> bool:
    if live is None:
        return False
    return not release.holder or release.holder == live.identity
