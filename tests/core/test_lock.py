"""core.lock: Lease objects both ways, expiry, the holder sentence, interrupted releases."""

from __future__ import annotations

import datetime

from tradewise_ops.core import release as rel
from tradewise_ops.core.lock import (
    INTERRUPTED,
    LockHolder,
    holder_identity,
    holder_of,
    lease_object,
    live_holder,
    mark_interrupted,
    parse_time,
)

T0 = datetime.datetime(2026, 3, 1, 10, 0, 0, 123456, tzinfo=datetime.UTC)


def at(seconds: float) -> datetime.datetime:
    return T0 + datetime.timedelta(seconds=seconds)


HOLDER = LockHolder("ann@ci-7:4242", "tradewise deploy prod --tag v2", T0, at(20), 30, 2)


def test_a_lease_round_trip_keeps_every_field() -> None:
    lease = lease_object("prod", "tradewise-ai", HOLDER, resource_version="17")
    assert lease["apiVersion"] == "coordination.k8s.io/v1" and lease["kind"] == "Lease"
    assert lease["metadata"]["name"] == "tradewise-lock-prod"
    assert lease["metadata"]["resourceVersion"] == "17"
    assert lease["spec"]["acquireTime"] == "2026-03-01T10:00:00.123456Z"  # MicroTime
    assert holder_of(lease) == HOLDER
    assert holder_identity("ann", "ci-7", 4242) == "ann@ci-7:4242"


def test_expiry_counts_from_the_last_renewal() -> None:
    assert not HOLDER.expired(at(49))
    assert HOLDER.expired(at(50))
    assert LockHolder("x", "", None, None).expired(T0)  # no time at all: nothing says it lives
    lease = lease_object("prod", "ns", HOLDER)
    assert live_holder(lease, at(49)) == HOLDER and live_holder(lease, at(51)) is None
    assert holder_of({"spec": {"holderIdentity": ""}}) is None and holder_of(None) is None


def test_the_sentence_says_who_since_when_with_what() -> None:
    assert HOLDER.sentence(at(125)) == (
        "held by ann@ci-7:4242 since 2026-03-01T10:00:00Z (2m05s ago) with "
        "`tradewise deploy prod --tag v2`; expired 1m15s ago (its holder is gone)"
    )
    assert HOLDER.sentence(at(24)).endswith("; renewed 4s ago")
    assert HOLDER.to_dict(at(24))["expired"] is False


def test_unreadable_times_are_none() -> None:
    assert parse_time("yesterday") is None and parse_time(None) is None
    assert parse_time("2026-03-01T10:00:00Z") == T0.replace(microsecond=0)


def _release(revision: int, status: str, holder: str = "") -> rel.Release:
    return rel.Release(revision, "prod", "ns", "v1", "t", "u", "c", status, holder=holder)


def test_pending_releases_without_their_live_holder_are_interrupted() -> None:
    history = [
        _release(1, rel.DEPLOYED),
        _release(2, rel.PENDING, "bob@laptop:7"),
        _release(3, rel.PENDING, "ann@ci-7:4242"),
    ]
    shown = mark_interrupted(history, HOLDER)
    assert [r.status for r in shown] == [rel.DEPLOYED, INTERRUPTED, rel.PENDING]
    assert shown[1].note == "bob@laptop:7 stopped without finishing"
    assert [r.status for r in mark_interrupted(history, None)] == [
        rel.DEPLOYED,
        INTERRUPTED,
        INTERRUPTED,
    ]
    old = [_release(4, rel.PENDING)]  # recorded before the lock existed: no holder
    assert mark_interrupted(old, HOLDER)[0].status == rel.PENDING
    assert mark_interrupted(old, None)[0].status == INTERRUPTED


def test_the_holder_is_kept_in_the_release_record() -> None:
    record = _release(5, rel.PENDING, "ann@ci-7:4242")
    assert rel.from_secret(rel.to_secret(record)).holder == "ann@ci-7:4242"
    assert rel.from_secret(rel.to_secret(_release(6, rel.PENDING))).holder == ""
