"""Release records as data: round trip through a Secret, history questions, prune."""

from __future__ import annotations

from typing import Any

import pytest

from tradewise_ops.core import release as rel
from tradewise_ops.core.release import Release
from tradewise_ops.errors import NotFoundError


def _obj(kind: str, name: str, image: str | None = None) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": kind,
        "metadata": {"name": name, "namespace": "ns"},
    }
    if image:
        obj["spec"] = {"template": {"spec": {"containers": [{"name": "c", "image": image}]}}}
    return obj


def _release(revision: int, status: str, tag: str = "v1") -> Release:
    return Release(
        revision=revision,
        environment="staging",
        namespace="ns",
        tag=tag,
        time="2026-01-01T00:00:00Z",
        user="me",
        change_cause=f"deploy {tag}",
        status=status,
        manifests=(_obj("Deployment", "api", f"img:{tag}"), _obj("ConfigMap", "cfg")),
    )


def test_secret_round_trip_and_status_label_wins() -> None:
    original = _release(3, rel.DEPLOYED)
    secret = rel.to_secret(original)
    assert secret["metadata"]["name"] == "tradewise-release.v3"
    assert secret["metadata"]["labels"]["owner"] == "tradewise"
    assert secret["type"] == rel.SECRET_TYPE
    assert rel.from_secret(secret) == original
    secret["metadata"]["labels"]["tradewise.io/status"] = rel.SUPERSEDED
    assert rel.from_secret(secret).status == rel.SUPERSEDED
    assert rel.from_secret(secret).images() == ["img:v1"]
    assert rel.to_secret(original) == rel.to_secret(original)  # deterministic (gzip mtime 0)


def test_rollback_target() -> None:
    history = [
        _release(1, rel.SUPERSEDED, "v1"),
        _release(2, rel.DEPLOYED, "v2"),
        _release(3, rel.FAILED, "v3"),
    ]
    assert rel.rollback_target(history).revision == 2  # after a failure: the one still deployed
    assert rel.rollback_target(history[:2]).revision == 1
    assert rel.rollback_target(history, 1).tag == "v1"
    with pytest.raises(NotFoundError):
        rel.rollback_target(history, 9)
    with pytest.raises(NotFoundError):
        rel.rollback_target([])
    with pytest.raises(NotFoundError):
        rel.rollback_target([_release(1, rel.FAILED)])


def test_revisions_current_and_supersede() -> None:
    history = [_release(1, rel.SUPERSEDED), _release(2, rel.DEPLOYED), _release(3, rel.FAILED)]
    assert rel.next_revision(history) == 4 and rel.next_revision([]) == 1
    assert rel.current(history).revision == 2  # type: ignore[union-attr]
    assert rel.latest(history).revision == 3  # type: ignore[union-attr]
    assert [(r.revision, s) for r, s in rel.after_success(history, 4)] == [(2, rel.SUPERSEDED)]
    rows = rel.history_rows(history)
    assert [r[0] for r in rows] == [1, 2, 3] and rows[1][2] == "deployed"


def test_prune_refs_never_namespaces_and_reverse_order() -> None:
    previous = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns"}},
        _obj("ConfigMap", "old"),
        _obj("Deployment", "gone"),
        _obj("Deployment", "kept"),
        _obj("Deployment", "gone"),  # listed twice (two releases): pruned once
    ]
    refs = rel.prune_refs(previous, [_obj("Deployment", "kept")])
    assert [str(r) for r in refs] == ["Deployment/gone", "ConfigMap/old"]
    assert rel.prune_refs(None, []) == []
