"""Release records as data: what each deploy applied, kept in the cluster like Helm's.

A release is one revision of an environment: the rendered manifests, the tag, when, who, why, and
its status. It is stored as a Secret ``tradewise-release.v{N}`` of type ``tradewise.io/release.v1``
in the environment's namespace, labelled ``owner=tradewise``, the manifests gzip-compressed. This
module only turns releases into Secret dicts and back and answers questions about a history;
reading and writing them is the gateway's job.
"""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tradewise_ops.errors import BadInputError, NotFoundError

PENDING = "pending"
DEPLOYED = "deployed"
FAILED = "failed"
SUPERSEDED = "superseded"
ROLLED_BACK = "rolled-back"
STATUSES = (PENDING, DEPLOYED, FAILED, SUPERSEDED, ROLLED_BACK)

SECRET_TYPE = "tradewise.io/release.v1"
OWNER_LABEL = "owner"
ENV_LABEL = "tradewise.io/environment"
REVISION_LABEL = "tradewise.io/revision"
STATUS_LABEL = "tradewise.io/status"
RELEASE_NAME = "tradewise"


@dataclass(frozen=True)
class ObjectRef:
    """Which object: apiVersion, kind, namespace (None when cluster-scoped), name."""

    api_version: str
    kind: str
    name: str
    namespace: str | None = None

    @classmethod
    def of(cls, obj: dict[str, Any]) -> ObjectRef:
        meta = obj.get("metadata") or {}
        return cls(
            obj.get("apiVersion", ""),
            obj.get("kind", ""),
            meta.get("name", ""),
            meta.get("namespace"),
        )

    def __str__(self) -> str:
        return f"{self.kind}/{self.name}"


@dataclass(frozen=True)
class Release:
    """One revision of an environment."""

    revision: int
    environment: str
    namespace: str
    tag: str | None
    time: str  # ISO 8601, UTC
    user: str
    change_cause: str
    status: str
    manifests: tuple[dict[str, Any], ...] = field(default=(), repr=False)
    note: str = ""
    strategy: str = "rolling"  # rolling | blue-green
    slot: str | None = None  # blue-green: the API slot this release serves from (blue | green)
    # the load result that verified it (``core.compare.load_summary``), when one was recorded
    verification: dict[str, Any] | None = field(default=None, repr=False)
    # who ran it: the release lock's holder identity (``core.lock``), ``user@host:pid``
    holder: str = ""

    def refs(self) -> list[ObjectRef]:
        """The objects of this release."""
        return [ObjectRef.of(obj) for obj in self.manifests]

    def images(self) -> list[str]:
        """The container images of its workloads, in order, without repeats."""
        seen: list[str] = []
        for obj in self.manifests:
            spec = ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}
            for c in spec.get("containers") or []:
                if c.get("image") and c["image"] not in seen:
                    seen.append(c["image"])
        return seen

    def summary(self) -> dict[str, Any]:
        """The release without its manifests, JSON-ready."""
        return {
            "revision": self.revision,
            "environment": self.environment,
            "namespace": self.namespace,
            "tag": self.tag,
            "time": self.time,
            "user": self.user,
            "change_cause": self.change_cause,
            "status": self.status,
            "objects": len(self.manifests),
            "note": self.note,
            "strategy": self.strategy,
            "slot": self.slot,
        }


def secret_name(revision: int) -> str:
    """``tradewise-release.v{revision}``."""
    return f"{RELEASE_NAME}-release.v{revision}"


def selector(environment: str) -> str:
    """The label selector of an environment's release records."""
    return f"{OWNER_LABEL}=tradewise,{ENV_LABEL}={environment}"


def to_secret(release: Release) -> dict[str, Any]:
    """The Secret that stores ``release`` (manifests gzip + base64 in ``data.release``)."""
    payload = {**release.summary(), "manifests": list(release.manifests)}
    if release.verification is not None:
        payload["verification"] = release.verification
    if release.holder:
        payload["holder"] = release.holder
    packed = gzip.compress(json.dumps(payload, sort_keys=True).encode("utf-8"), mtime=0)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": SECRET_TYPE,
        "metadata": {
            "name": secret_name(release.revision),
            "namespace": release.namespace,
            "labels": {
                OWNER_LABEL: "tradewise",
                "app.kubernetes.io/managed-by": "tradewise",
                ENV_LABEL: release.environment,
                REVISION_LABEL: str(release.revision),
                STATUS_LABEL: release.status,
            },
            "annotations": {
                "tradewise.io/tag": release.tag or "",
                "tradewise.io/user": release.user,
                "tradewise.io/time": release.time,
            },
        },
        "data": {"release": base64.b64encode(packed).decode("ascii")},
    }


def status_patch(status: str, note: str | None = None) -> dict[str, Any]:
    """A merge patch that changes a record's status label (and note annotation)."""
    patch: dict[str, Any] = {"metadata": {"labels": {STATUS_LABEL: status}}}
    if note is not None:
        patch["metadata"]["annotations"] = {"tradewise.io/note": note}
    return patch


def from_secret(secret: dict[str, Any]) -> Release:
    """The release stored in a record Secret; the status label wins over the payload's."""
    meta = secret.get("metadata") or {}
    try:
        packed = base64.b64decode((secret.get("data") or {})["release"])
        payload = json.loads(gzip.decompress(packed))
    except (KeyError, ValueError, OSError) as exc:
        raise BadInputError(
            f"release record {meta.get('name')} is damaged ({exc}); delete it or fix it by hand"
        ) from None
    labels = meta.get("labels") or {}
    notes = (meta.get("annotations") or {}).get("tradewise.io/note")
    return Release(
        revision=int(payload["revision"]),
        environment=payload["environment"],
        namespace=payload.get("namespace") or meta.get("namespace", ""),
        tag=payload.get("tag"),
        time=payload.get("time", ""),
        user=payload.get("user", ""),
        change_cause=payload.get("change_cause", ""),
        status=labels.get(STATUS_LABEL, payload.get("status", "")),
        manifests=tuple(payload.get("manifests") or ()),
        note=notes if notes is not None else payload.get("note", ""),
        strategy=payload.get("strategy") or "rolling",
        slot=payload.get("slot"),
        verification=payload.get("verification"),
        holder=str(payload.get("holder") or ""),
    )


def sort_history(releases: Iterable[Release]) -> list[Release]:
    """Oldest first."""
    return sorted(releases, key=lambda r: r.revision)


def next_revision(releases: Sequence[Release]) -> int:
    """One above the highest revision so far (1 for the first release)."""
    return max((r.revision for r in releases), default=0) + 1


def current(releases: Sequence[Release]) -> Release | None:
    """The release running now: the newest with status ``deployed``."""
    deployed = [r for r in releases if r.status == DEPLOYED]
    return max(deployed, key=lambda r: r.revision) if deployed else None


def latest(releases: Sequence[Release]) -> Release | None:
    """The newest release, whatever its status."""
    return max(releases, key=lambda r: r.revision) if releases else None


def rollback_target(releases: Sequence[Release], to_revision: int | None = None) -> Release:
    """The release ``rollback`` restores: ``to_revision``, else the newest healthy one before
    the newest release (after a failed deploy that is the one still deployed)."""
    if not releases:
        raise NotFoundError("there are no releases to roll back to (nothing was deployed)")
    if to_revision is not None:
        for r in releases:
            if r.revision == to_revision:
                if not r.manifests:
                    raise BadInputError(f"revision {to_revision} has no manifests to restore")
                return r
        known = ", ".join(str(r.revision) for r in sort_history(releases))
        raise NotFoundError(f"there is no revision {to_revision}; revisions: {known}")
    newest = latest(releases)
    assert newest is not None
    candidates = [
        r
        for r in releases
        if r.revision < newest.revision and r.status in (DEPLOYED, SUPERSEDED, ROLLED_BACK)
    ]
    if not candidates:
        raise NotFoundError(
            f"no earlier healthy release before revision {newest.revision} to roll back to"
        )
    return max(candidates, key=lambda r: r.revision)


def after_success(releases: Sequence[Release], new_revision: int) -> list[tuple[Release, str]]:
    """Status changes once ``new_revision`` is deployed: earlier ``deployed`` -> ``superseded``."""
    return [
        (r, SUPERSEDED) for r in releases if r.revision != new_revision and r.status == DEPLOYED
    ]


def prune_refs(
    previous: Sequence[dict[str, Any]] | None, rendered: Sequence[dict[str, Any]]
) -> list[ObjectRef]:
    """Objects an earlier release applied that the new one no longer renders (never Namespaces),
    in reverse apply order."""
    if not previous:
        return []
    keep = {(r.kind, r.namespace, r.name) for r in map(ObjectRef.of, rendered)}
    out = []
    for obj in reversed(previous):
        ref = ObjectRef.of(obj)
        key = (ref.kind, ref.namespace, ref.name)
        if ref.kind == "Namespace" or key in keep:
            continue
        keep.add(key)
        out.append(ref)
    return out


def history_rows(releases: Sequence[Release]) -> list[list[Any]]:
    """Rows ``REVISION TIME STATUS TAG USER VERIFIED CHANGE-CAUSE`` oldest first, for a table."""
    return [
        [
            r.revision,
            r.time,
            r.status,
            r.tag or "-",
            r.user,
            verification_cell(r.verification),
            r.change_cause + (f" ({r.note})" if r.note else ""),
        ]
        for r in sort_history(releases)
    ]


def history_entry(release: Release) -> dict[str, Any]:
    """One release of ``history -o json``: its summary and its verification (without the load
    summary and the smoke details: ``tradewise compare ENV@REV`` reads those)."""
    return {**release.summary(), "verification": verification_summary(release.verification)}


def verification_summary(record: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A record's ``verification`` without the bulky parts (load summary, smoke details), for
    ``history -o json``."""
    if not record:
        return None
    keys = ("passed", "skipped", "p95_ms", "error_rate", "rps", "slo", "url", "job", "reason")
    out = {k: record.get(k) for k in keys}
    if record.get("problem"):
        out["problem"] = record["problem"]
    if record.get("step") is not None:
        out["step"] = record["step"]
    return out


def verification_cell(record: Mapping[str, Any] | None) -> str:
    """The VERIFIED column of ``history``: ``pass p95 120ms 0.00%``, ``FAIL ...``, ``skipped``."""
    if not record:
        return "-"
    if record.get("skipped"):
        return "skipped"
    if "passed" not in record:  # an older record that only carries a load summary
        return "load"
    word = "pass" if record.get("passed") else "FAIL"
    p95, rate = record.get("p95_ms"), record.get("error_rate")
    parts = [word]
    if p95 is not None:
        parts.append(f"p95 {float(p95):.0f}ms")
    if rate is not None:
        parts.append(f"{float(rate) * 100:.2f}%")
    return " ".join(parts)
