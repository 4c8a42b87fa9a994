"""Deployer (apply, prune, wait, record) against the emulator; Ctrl-C on a real ``tradewise``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.k8s_emulator import Emulator
from tradewise_ops.adapters.deployer import Deployer
from tradewise_ops.adapters.kube import KubeGateway
from tradewise_ops.adapters.rollout_wait import wait_for_rollout
from tradewise_ops.core.config import load_config
from tradewise_ops.core.render import render_environment
from tradewise_ops.errors import AbortedError

pytest_plugins = ["tests.k8s_emulator.fixtures"]

ROOT = Path(__file__).resolve().parents[2]
NS = "tradewise-ai"
API = "tradewise-api-deployment"


def _rendered(tag: str) -> list[dict[str, Any]]:
    return render_environment(load_config(ROOT / "tradewise.yaml"), "staging", tag=tag)


@pytest.fixture
def gw(kubeconfig: Path) -> KubeGateway:
    return KubeGateway.from_kubeconfig(context="staging", namespace=NS, backoff=0.01)


def _releases(emu: Emulator) -> dict[int, tuple[str, str]]:
    out = {}
    for secret in emu.list("Secret", NS, "owner=tradewise"):
        meta = secret["metadata"]
        out[int(meta["labels"]["tradewise.io/revision"])] = (
            meta["labels"]["tradewise.io/status"],
            (meta.get("annotations") or {}).get("tradewise.io/note", ""),
        )
    return out


def test_ctrl_c_while_waiting_records_failed(gw: KubeGateway, emulator: Emulator) -> None:
    def interrupt(_status: Any) -> None:
        raise KeyboardInterrupt

    deployer = Deployer(gw, "staging", user="me", on_progress=interrupt)
    with pytest.raises(AbortedError) as err:
        deployer.deploy(_rendered("v1"), "v1", "test", timeout=10)
    assert "every object was applied" in err.value.message
    assert "revision 1 is recorded as failed" in err.value.message
    status, note = _releases(emulator)[1]
    assert status == "failed" and "interrupted" in note
    assert err.value.exit_code == 130


def test_ctrl_c_while_applying_says_what_was_not_applied(
    gw: KubeGateway, emulator: Emulator
) -> None:
    steps: list[str] = []

    def step(message: str) -> None:
        steps.append(message)
        if "applying" in message:
            raise KeyboardInterrupt

    deployer = Deployer(gw, "staging", on_step=step)
    with pytest.raises(AbortedError) as err:
        deployer.deploy(_rendered("v1"), "v1", "test", timeout=10)
    message = err.value.message
    assert "interrupted during apply: applied 1 objects (Namespace/tradewise-ai)" in message
    not_applied = message.split("not applied: ")[1]
    assert "ServiceAccount/tradewise" in not_applied and f"Deployment/{API}" in not_applied
    assert emulator.get("Deployment", NS, API) is None
    assert _releases(emulator)[1][0] == "failed"


def test_wait_returns_promptly_after_the_last_workload_is_ready(
    gw: KubeGateway, emulator: Emulator
) -> None:
    objects = [o for o in _rendered("v1") if o["kind"] in ("Namespace", "Deployment")]
    answers = [gw.apply(o) for o in objects]
    workloads = [a for a in answers if a["kind"] == "Deployment"]
    since = str(min(int(a["metadata"]["resourceVersion"]) for a in workloads) - 1)

    def controller() -> None:
        for w in workloads:
            time.sleep(0.1)
            emulator.controllers.deployment_progress(NS, w["metadata"]["name"])

    threading.Thread(target=controller).start()
    outcome = wait_for_rollout(gw, workloads, timeout=10, since_rv=since)
    returned = time.monotonic()
    assert outcome.ok
    last_ready = max(emulator.controllers.ready_at.values())
    assert returned - last_ready < 1.0


def test_progress_deadline_exceeded_fails(gw: KubeGateway, emulator: Emulator) -> None:
    objects = [o for o in _rendered("v1") if o["kind"] in ("Namespace", "Deployment")]
    answers = [gw.apply(o) for o in objects]
    workloads = [a for a in answers if a["kind"] == "Deployment" and a["metadata"]["name"] == API]

    def controller() -> None:
        time.sleep(0.2)
        emulator.controllers.progress_deadline_exceeded(NS, API)

    threading.Thread(target=controller).start()
    outcome = wait_for_rollout(gw, workloads, timeout=10)
    assert not outcome.ok and not outcome.timed_out
    assert outcome.state.failures[0].failure == "ProgressDeadlineExceeded"


def _tradewise(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tradewise_ops", "--config", str(ROOT / "tradewise.yaml"), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )


def _read_until(proc: subprocess.Popen[str], text: str, timeout: float = 30) -> str:
    assert proc.stderr is not None
    seen = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        seen += line
        if text in line:
            return seen
    raise AssertionError(f"never saw {text!r}; stderr so far:\n{seen}")


def test_sigint_to_a_real_deploy_stops_cleanly(emulator: Emulator, kubeconfig: Path) -> None:
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "NO_COLOR": "1"}
    # nothing becomes ready (no controller): the deploy waits until interrupted
    proc = _tradewise("deploy", "staging", "--tag", "v1", "--timeout", "60s", env=env)
    _read_until(proc, "waiting up to")
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "interrupted while waiting for the rollout" in err
    assert "Traceback" not in err
    assert _releases(emulator)[1][0] == "failed"


def test_sigint_during_apply_lists_what_was_applied(emulator: Emulator, kubeconfig: Path) -> None:
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "NO_COLOR": "1"}
    emulator.delay_next("PATCH", f"/deployments/{API}$", 20)
    proc = _tradewise("deploy", "staging", "--tag", "v1", env=env)
    _read_until(proc, "applying")
    emulator.wait_for(
        lambda: bool(emulator.requests_matching("PATCH", f"/deployments/{API}$")),
        timeout=20,
        what="the slow apply",
    )
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "interrupted during apply" in err
    assert "StatefulSet/postgres" in err.split("not applied")[0]  # applied before the API
    assert f"Deployment/{API}" in err.split("not applied")[1]


def test_a_workload_deleted_mid_wait_fails_it(gw: KubeGateway, emulator: Emulator) -> None:
    objects = [o for o in _rendered("v1") if o["kind"] in ("Namespace", "Deployment")]
    answers = [gw.apply(o) for o in objects]
    workloads = [a for a in answers if a["kind"] == "Deployment"]

    def someone_else() -> None:
        time.sleep(0.2)
        emulator.store.delete(emulator.resource("Deployment"), NS, API)

    threading.Thread(target=someone_else).start()
    start = time.monotonic()
    outcome = wait_for_rollout(gw, workloads, timeout=10)
    assert not outcome.ok and time.monotonic() - start < 5
    failure = outcome.state.failures[0]
    assert (failure.name, failure.failure) == (API, "Deleted")


# -- blue-green ------------------------------------------------------------------------------------
def _selector(emu: Emulator) -> dict[str, str]:
    svc = emu.get("Service", NS, "tradewise-api-service")
    assert svc is not None
    return dict(svc["spec"]["selector"])


def test_blue_green_switches_only_after_the_new_slot_is_ready(
    gw: KubeGateway, emulator: Emulator
) -> None:
    emulator.controllers.auto(delay=0.01)
    deployer = Deployer(gw, "staging", namespace=NS)
    assert deployer.deploy(_rendered("v1"), "v1", "v1", timeout=20).status == "deployed"
    api_hpa = emulator.get("HorizontalPodAutoscaler", NS, "tradewise-api-hpa")
    assert api_hpa is not None
    emulator.controllers.set_hpa(NS, "tradewise-api-hpa", 3)  # the HPA chose 3 API pods
    emulator.controllers.stop()  # from here the test plays the controllers by hand

    outcome: dict[str, Any] = {}

    def run() -> None:
        outcome["result"] = deployer.deploy(
            _rendered("v2"), "v2", "v2 blue-green", timeout=30, strategy="blue-green"
        )

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    blue = "tradewise-api-deployment-blue"
    try:
        _watch_the_switch(emulator, thread, blue)
    finally:
        if thread.is_alive():  # a failed check: let the deploy end before the emulator stops
            emulator.controllers.auto(delay=0.01)
            thread.join(timeout=30)
    result = outcome["result"]
    assert result.status == "deployed", result.message
    assert _selector(emulator)["tradewise.io/slot"] == "blue"
    hpa = emulator.get("HorizontalPodAutoscaler", NS, "tradewise-api-hpa")
    assert hpa is not None and hpa["spec"]["scaleTargetRef"]["name"] == blue
    assert emulator.get("Deployment", NS, API) is None  # the old version is gone
    record = deployer.records.list()[-1]
    assert (record.strategy, record.slot, record.status) == ("blue-green", "blue", "deployed")


def _watch_the_switch(emulator: Emulator, thread: threading.Thread, blue: str) -> None:
    emulator.wait_for(lambda: emulator.get("Deployment", NS, blue) is not None, timeout=10)
    # both versions exist while the new slot starts; traffic and autoscaling stay on the old one
    new = emulator.get("Deployment", NS, blue)
    old = emulator.get("Deployment", NS, API)
    assert new is not None and old is not None
    assert new["spec"]["replicas"] == 3  # as many as the live API, so it takes the load at once
    assert new["spec"]["template"]["metadata"]["labels"]["tradewise.io/slot"] == "blue"
    assert new["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":v2")
    time.sleep(0.3)
    assert "tradewise.io/slot" not in _selector(emulator)
    hpa = emulator.get("HorizontalPodAutoscaler", NS, "tradewise-api-hpa")
    assert hpa is not None and hpa["spec"]["scaleTargetRef"]["name"] == API
    # the rest of the release rolls out, the new slot not yet ready: still no switch
    workers = ("tradewise-worker-deployment", "tradewise-precompute-deployment")

    def applied() -> bool:  # made ready only once the deploy has applied v2 to them
        found = [emulator.get("Deployment", NS, name) for name in workers]
        return all(
            d is not None
            and d["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":v2")
            for d in found
        )

    emulator.wait_for(applied, timeout=10)
    for name in workers:
        emulator.controllers.deployment_progress(NS, name)
    for name in ("postgres", "redis"):
        emulator.controllers.deployment_progress(NS, name, kind="StatefulSet")
    if emulator.get("Deployment", NS, "tradewise-maintenance-deployment") is not None:
        emulator.controllers.deployment_progress(NS, "tradewise-maintenance-deployment")
    time.sleep(0.3)
    assert thread.is_alive() and "tradewise.io/slot" not in _selector(emulator)
    assert emulator.get("Deployment", NS, API) is not None
    emulator.controllers.deployment_progress(NS, blue)  # the new slot is ready
    thread.join(timeout=20)
    assert not thread.is_alive()
