"""The release records of an environment, stored in the cluster (``tradewise history``).

Each release is a Secret labelled ``owner=tradewise`` (``core.release`` converts both ways); the
record of a new revision doubles as a lock: creating it fails when another deploy got there first.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from tradewise_ops.adapters.kube import KubeGateway
from tradewise_ops.core import release as rel
from tradewise_ops.core.release import Release
from tradewise_ops.errors import ConflictError


class ReleaseStore:
    """The release records of one environment (Secrets labelled ``owner=tradewise``)."""

    def __init__(self, gw: KubeGateway, environment: str, namespace: str | None = None) -> None:
        self.gw = gw
        self.environment = environment
        self.namespace = namespace or gw.namespace

    def list(self) -> list[Release]:
        """Every release of the environment, oldest first (one request)."""
        secrets = self.gw.list("Secret", rel.selector(self.environment), namespace=self.namespace)
        return rel.sort_history(
            rel.from_secret(s) for s in secrets if s.get("type") == rel.SECRET_TYPE
        )

    def create(self, release: Release) -> None:
        """Store a new release record; ``ConflictError`` when that revision exists (another
        deploy of the environment got there first: the record doubles as a lock)."""
        secret = rel.to_secret(release)
        try:
            self.gw.create(secret)
        except ConflictError:
            existing = self.gw.find("Secret", secret["metadata"]["name"], namespace=self.namespace)
            if existing is not None and existing.get("data") == secret["data"]:
                return  # our own create, retried after its answer was lost
            raise ConflictError(
                f"revision {release.revision} of {self.environment} was recorded by someone else "
                "meanwhile: another deploy or rollback is running; try again when it is done"
            ) from None

    def set_status(
        self,
        revision: int,
        status: str,
        note: str | None = None,
        verification: dict[str, Any] | None = None,
    ) -> None:
        """Change a record's status (a merge patch of its labels); with ``verification``, store
        that in its payload in the same patch (after one read of the record)."""
        name = rel.secret_name(revision)
        patch = rel.status_patch(status, note)
        if verification is not None:
            secret = self.gw.get("Secret", name, namespace=self.namespace)
            release = dataclasses.replace(rel.from_secret(secret), verification=verification)
            patch["data"] = rel.to_secret(release)["data"]
        self.gw.patch("Secret", name, patch, namespace=self.namespace)
