"""ReleaseLock against the emulator: a Lease created, renewed, taken over, released; races."""

from __future__ import annotations

import datetime
import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.k8s_emulator import Emulator
from tradewise_ops.adapters.kube import KubeGateway
from tradewise_ops.adapters.lock import LockHeldError, ReleaseLock
from tradewise_ops.core import lock as core_lock
from tradewise_ops.core.lock import LockHolder

pytest_plugins = ["tests.k8s_emulator.fixtures"]

NS = "tradewise-ai"
LEASE = "tradewise-lock-staging"
UTC = datetime.UTC


@pytest.fixture
def gw(kubeconfig: Path) -> KubeGateway:
    return KubeGateway.from_kubeconfig(namespace=NS, retries=3, backoff=0.01)


def lease(emu: Emulator) -> dict[str, Any] | None:
    return emu.get("Lease", NS, LEASE)


def dead_holder(emu: Emulator, seconds_ago: float, duration: int = 30) -> dict[str, Any]:
    """A Lease whose holder last renewed it ``seconds_ago`` (expired when above ``duration``)."""
    then = datetime.datetime.now(UTC) - datetime.timedelta(seconds=seconds_ago)
    holder = LockHolder(
        "gone@old-host:99", "tradewise deploy staging --tag v0", then, then, duration
    )
    return emu.put(core_lock.lease_object("staging", NS, holder))


def test_acquire_then_release_costs_two_requests(emulator: Emulator, gw: KubeGateway) -> None:
    lock = ReleaseLock(gw, "staging", command="tradewise deploy staging --tag v1")
    before = gw.request_count
    held = lock.acquire()
    stored = lease(emulator)
    assert stored is not None
    assert stored["spec"]["holderIdentity"] == lock.identity == held.identity
    assert lock.identity.endswith(f":{__import__('os').getpid()}") and "@" in lock.identity
    assert stored["spec"]["leaseDurationSeconds"] == 30
    assert stored["metadata"]["annotations"]["tradewise.io/command"] == (
        "tradewise deploy staging --tag v1"
    )
    lock.release()
    assert lease(emulator) is None
    assert gw.request_count - before == 2  # a create, a delete with a precondition
    lock.release()  # idempotent
    assert gw.request_count - before == 2


def test_a_live_holder_refuses_a_second_writer_naming_it(
    emulator: Emulator, gw: KubeGateway
) -> None:
    first = ReleaseLock(
        gw, "staging", command="tradewise deploy staging --tag v1", identity="a@h:1"
    )
    first.acquire()
    second = ReleaseLock(gw, "staging", command="tradewise scale api 3", identity="b@h:2")
    with pytest.raises(LockHeldError) as refused:
        second.acquire()
    text = refused.value.message
    assert "staging is locked: held by a@h:1 since " in text
    assert "with `tradewise deploy staging --tag v1`" in text and "nothing was changed" in text
    assert refused.value.exit_code == 1 and "--wait-for-lock" in (refused.value.hint or "")
    assert lease(emulator)["spec"]["holderIdentity"] == "a@h:1"  # type: ignore[index]
    first.release()


def test_waiting_takes_the_lock_once_it_is_released(emulator: Emulator, gw: KubeGateway) -> None:
    first = ReleaseLock(gw, "staging", command="one", identity="a@h:1")
    first.acquire()
    said: list[str] = []
    second = ReleaseLock(
        gw, "staging", command="two", identity="b@h:2", on_info=said.append, poll_seconds=0.1
    )
    threading.Timer(0.6, first.release).start()
    began = time.monotonic()
    second.acquire(wait=10)
    assert 0.5 < time.monotonic() - began < 5
    assert lease(emulator)["spec"]["holderIdentity"] == "b@h:2"  # type: ignore[index]
    assert said and said[0].startswith("waiting up to 10s for the lock of staging: held by a@h:1")
    with pytest.raises(LockHeldError):  # and a bounded wait ends with the refusal
        ReleaseLock(gw, "staging", command="three", poll_seconds=0.1).acquire(wait=0.3)
    second.release()


def test_an_expired_lease_is_taken_over(emulator: Emulator, gw: KubeGateway) -> None:
    dead_holder(emulator, seconds_ago=45)
    warned: list[str] = []
    lock = ReleaseLock(gw, "staging", command="tradewise deploy staging", on_warning=warned.append)
    lock.acquire()
    stored = lease(emulator)
    assert stored is not None and stored["spec"]["holderIdentity"] == lock.identity
    assert stored["spec"]["leaseTransitions"] == 1
    assert warned and "took over the lock of staging: it was held by gone@old-host:99" in warned[0]
    assert re.search(r"expired 1[5-8]s ago \(its holder is gone\)", warned[0])
    # the take-over was an update carrying the resourceVersion read
    puts = emulator.requests_matching("PUT", f"/leases/{LEASE}$")
    assert len(puts) == 1 and puts[0].status == 200
    lock.release()
    assert lease(emulator) is None


def test_a_lease_not_yet_expired_is_not_taken_over(emulator: Emulator, gw: KubeGateway) -> None:
    dead_holder(emulator, seconds_ago=20)
    with pytest.raises(LockHeldError, match="held by gone@old-host:99"):
        ReleaseLock(gw, "staging", command="x").acquire()
    assert emulator.requests_matching("PUT", "/leases/") == []


def test_two_writers_taking_over_one_expired_lease_one_wins(
    emulator: Emulator, gw: KubeGateway
) -> None:
    dead_holder(emulator, seconds_ago=60)
    # our take-over is held back until a rival has taken the lease over: ours then carries a
    # stale resourceVersion, gets 409, reads again and finds a live holder
    emulator.delay_next("PUT", f"/leases/{LEASE}$", 0.6)
    rival = ReleaseLock(
        KubeGateway.from_kubeconfig(namespace=NS), "staging", command="rival", identity="r@h:7"
    )

    def race() -> None:
        emulator.wait_for(lambda: bool(emulator.requests_matching("PUT", "/leases/")), 10)
        rival.acquire()

    racer = threading.Thread(target=race)
    racer.start()
    ours = ReleaseLock(gw, "staging", command="ours", identity="o@h:8")
    with pytest.raises(LockHeldError, match="held by r@h:7"):
        ours.acquire()
    racer.join(10)
    # ours was sent first (and held back), the rival's second: it won, ours lost with a 409
    assert [r.status for r in emulator.requests_matching("PUT", "/leases/")] == [409, 200]
    assert lease(emulator)["spec"]["holderIdentity"] == "r@h:7"  # type: ignore[index]
    rival.release()


def test_renewal_keeps_it_alive_and_release_leaves_a_taken_over_lease(
    emulator: Emulator, gw: KubeGateway
) -> None:
    warned: list[str] = []
    lock = ReleaseLock(
        gw, "staging", command="c", identity="a@h:1", lease_seconds=3, on_warning=warned.append
    )
    lock.acquire()
    first = lease(emulator)["spec"]["renewTime"]  # type: ignore[index]
    emulator.wait_for(
        lambda: lease(emulator)["spec"]["renewTime"] != first,  # type: ignore[index]
        timeout=5,
        what="a renewal",
    )
    # another run takes it over (as if ours had stalled): ours must notice, not delete theirs
    now = datetime.datetime.now(UTC)
    emulator.put(core_lock.lease_object("staging", NS, LockHolder("b@h:2", "o", now, now, 30)))
    emulator.wait_for(lambda: lock.lost_to is not None, timeout=5, what="the lost lock")
    assert lock.lost_to is not None and lock.lost_to.identity == "b@h:2"
    assert any("lost the lock of staging to b@h:2" in w for w in warned)
    lock.release()
    assert lease(emulator)["spec"]["holderIdentity"] == "b@h:2"  # type: ignore[index]


def test_a_first_deploy_creates_the_namespace_for_its_lock(
    emulator: Emulator, kubeconfig: Path
) -> None:
    gw = KubeGateway.from_kubeconfig(namespace="brand-new")
    lock = ReleaseLock(gw, "staging", command="c")
    lock.acquire()
    assert emulator.get("Namespace", None, "brand-new") is not None
    assert emulator.get("Lease", "brand-new", LEASE) is not None
    lock.release()


def test_a_lost_answer_to_the_create_is_still_ours(emulator: Emulator, gw: KubeGateway) -> None:
    emulator.fail_next("POST", "/leases$", 0, after_processing=True)
    lock = ReleaseLock(gw, "staging", command="c")
    lock.acquire()
    assert lease(emulator)["spec"]["holderIdentity"] == lock.identity  # type: ignore[index]
    lock.release()
    assert lease(emulator) is None
