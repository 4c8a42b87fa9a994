"""``tradewise restart`` against the emulator over real HTTP (the auto controller plays the
rollouts: every pod template change gets new pods, which carry the template's annotations)."""

from __future__ import annotations

import copy
import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from tests.k8s_emulator import Emulator
from tradewise_ops.adapters.kube import KubeGateway
from tradewise_ops.adapters.restarter import Restarter
from tradewise_ops.cli.main import app
from tradewise_ops.core.restart import RESTARTED_AT

pytest_plugins = ["tests.k8s_emulator.fixtures"]

ROOT = Path(__file__).resolve().parents[2]
CONFIG = str(ROOT / "tradewise.yaml")
NS = "tradewise-ai"
API = "tradewise-api-deployment"
WORKER = "tradewise-worker-deployment"
PRECOMPUTE = "tradewise-precompute-deployment"
WRITES = ("POST", "PUT", "PATCH", "DELETE")


def run(*args: str) -> Result:
    return CliRunner().invoke(app, ["--config", CONFIG, *args])


@pytest.fixture
def cluster(emulator: Emulator, kubeconfig: Path) -> Emulator:
    emulator.controllers.auto(delay=0.01)
    return emulator


@pytest.fixture
def deployed(cluster: Emulator) -> Emulator:
    result = run("deploy", "staging", "--tag", "v1.0", "--timeout", "20s")
    assert result.exit_code == 0, result.stderr
    cluster.reset_requests()
    return cluster


def pods_of(emu: Emulator, deployment: str) -> set[str]:
    return {
        p["metadata"]["name"]
        for p in emu.list("Pod", NS)
        if p["metadata"]["labels"].get("tradewise.emulator/owner") == deployment
    }


def restarted_at(emu: Emulator, deployment: str) -> str | None:
    obj = emu.get("Deployment", NS, deployment)
    assert obj is not None
    annotations = obj["spec"]["template"]["metadata"].get("annotations") or {}
    return annotations.get(RESTARTED_AT)


def writes(emu: Emulator) -> list[str]:
    return [f"{r.method} {r.path}" for r in emu.requests if r.method in WRITES]


def test_restart_api_rolls_new_pods_and_names_them(deployed: Emulator) -> None:
    before = pods_of(deployed, API)
    worker_before = pods_of(deployed, WORKER)
    result = run("restart", "api", "--env", "staging", "-o", "json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    at = restarted_at(deployed, API)
    assert at is not None and doc["restarted_at"] == at
    assert [s["name"] for s in doc["steps"]] == [API]
    (api,) = doc["workloads"]
    assert api["ok"] and api["state"] == "ready"
    after = pods_of(deployed, API)
    assert after and not (after & before)  # every pod replaced
    assert set(api["new_pods"]) == after
    for name in after:  # the new pods carry the template's restartedAt
        pod = deployed.get("Pod", NS, name)
        assert pod is not None and pod["metadata"]["annotations"][RESTARTED_AT] == at
    # one strategic-merge patch of the pod template, nothing else written; the worker untouched
    # the one patch, inside the environment's release lock (the Lease taken and given back)
    assert writes(deployed) == [
        f"POST /apis/coordination.k8s.io/v1/namespaces/{NS}/leases",
        f"PATCH /apis/apps/v1/namespaces/{NS}/deployments/{API}",
        f"DELETE /apis/coordination.k8s.io/v1/namespaces/{NS}/leases/tradewise-lock-staging",
    ]
    patch = deployed.requests_matching("PATCH", f"/deployments/{API}$")[0]
    assert patch.content_type == "application/strategic-merge-patch+json"
    assert restarted_at(deployed, WORKER) is None and pods_of(deployed, WORKER) == worker_before
    assert f"Deployment/{API}" in result.stderr  # live progress while waiting
    assert "restarted tradewise-api-deployment" in result.stderr


def test_restart_all_restarts_the_three_deployments(deployed: Emulator) -> None:
    result = run("restart", "--env", "staging")
    assert result.exit_code == 0, result.stderr
    stamps = {restarted_at(deployed, d) for d in (API, WORKER, PRECOMPUTE)}
    assert len(stamps) == 1 and None not in stamps  # one restart time for all
    assert restarted_at(deployed, API) is not None
    for name in (API, WORKER, PRECOMPUTE):
        assert name in result.stdout
    # postgres and redis (StatefulSets) are not restarted
    assert not any("statefulsets" in w for w in writes(deployed))


def test_dry_run_prints_the_plan_and_changes_nothing(deployed: Emulator) -> None:
    result = run("restart", "worker", "--env", "staging", "--dry-run", "-o", "json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["dry_run"] is True
    assert [(s["action"], s["name"]) for s in doc["steps"]] == [("patch", WORKER)]
    assert writes(deployed) == []
    assert restarted_at(deployed, WORKER) is None
    table = run("restart", "all", "--env", "staging", "--dry-run")
    assert table.exit_code == 0
    assert "restart plan for staging" in table.stdout and PRECOMPUTE in table.stdout
    assert writes(deployed) == []


def test_restart_follows_the_live_blue_green_slot(cluster: Emulator) -> None:
    # (the verification of a blue-green switch is tested in test_deploy_verified.py; here the
    # restart is: the emulator has no Job controller to run an in-cluster verification)
    bg = ("--strategy", "blue-green", "--no-verify")
    assert run("deploy", "staging", "--tag", "v1", *bg).exit_code == 0
    assert run("deploy", "staging", "--tag", "v2", *bg).exit_code == 0  # now serving from green
    svc = cluster.get("Service", NS, "tradewise-api-service")
    assert svc is not None and svc["spec"]["selector"]["tradewise.io/slot"] == "green"
    # a leftover Deployment in the other slot must not be the one restarted
    stale = copy.deepcopy(cluster.get("Deployment", NS, f"{API}-green"))
    assert stale is not None
    stale["metadata"] = {
        "name": f"{API}-blue",
        "namespace": NS,
        "labels": {**stale["metadata"]["labels"], "tradewise.io/slot": "blue"},
    }
    stale.pop("status", None)
    cluster.put(stale)
    cluster.reset_requests()
    result = run("restart", "api", "--env", "staging", "-o", "json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["slot"] == "green" and doc["workloads"][0]["name"] == f"{API}-green"
    assert restarted_at(cluster, f"{API}-green") is not None
    assert restarted_at(cluster, f"{API}-blue") is None
    assert doc["workloads"][0]["new_pods"]
    dry = run("restart", "api", "--env", "staging", "--dry-run")
    assert "blue-green slot green" in dry.stdout


def test_new_pods_failing_fail_the_restart_fast(deployed: Emulator) -> None:
    deployed.controllers.fail_images[":v1.0"] = "CrashLoopBackOff"
    start = time.monotonic()
    result = run("restart", "worker", "--env", "staging", "--timeout", "60s", "-o", "json")
    assert result.exit_code == 1
    assert time.monotonic() - start < 15  # failed fast, not at the timeout
    doc = json.loads(result.stdout)
    (worker,) = doc["workloads"]
    assert not worker["ok"] and "CrashLoopBackOff" in worker["state"]
    assert f"pod {WORKER}-" in worker["detail"]
    assert "the restart failed" in result.stderr and "CrashLoopBackOff" in result.stderr


def test_an_old_crash_looping_pod_is_not_the_restarts_failure(
    emulator: Emulator, kubeconfig: Path
) -> None:
    """The reason to restart is often a sick pod: its further crashes while the new pods come
    up must not fail the restart. The controllers are played by hand here, in order."""
    emulator.controllers.auto(delay=0.01)
    assert run("deploy", "staging", "--tag", "v1.0").exit_code == 0
    emulator.controllers.stop()
    (old,) = emulator.controllers.fail_pods(NS, WORKER, "CrashLoopBackOff")
    gw = KubeGateway.from_kubeconfig(namespace=NS)
    restarter = Restarter(gw, "staging", NS)
    plan = restarter.plan(["worker"])
    outcome: list[Any] = []
    thread = threading.Thread(target=lambda: outcome.append(restarter.apply(plan, timeout=20)))
    thread.start()
    emulator.wait_for(lambda: restarted_at(emulator, WORKER) is not None, what="the patch")
    time.sleep(0.3)  # the wait's watches are open
    pod = emulator.get("Pod", NS, old)
    assert pod is not None
    pod["status"]["containerStatuses"][0]["restartCount"] = 4  # the kubelet restarts it again
    emulator.store.replace(emulator.resource("Pod"), NS, old, pod, status_only=True)
    time.sleep(0.2)
    emulator.controllers.deployment_progress(NS, WORKER)
    thread.join(timeout=25)
    assert outcome and outcome[0].ok, outcome and outcome[0].message
    assert old not in outcome[0].workloads[0].new_pods and outcome[0].workloads[0].new_pods


def test_no_wait_returns_after_the_patch(emulator: Emulator, kubeconfig: Path) -> None:
    emulator.controllers.auto(delay=0.01)
    assert run("deploy", "staging", "--tag", "v1.0").exit_code == 0
    emulator.controllers.stop()  # nothing will become ready now
    result = run("restart", "api", "--env", "staging", "--no-wait")
    assert result.exit_code == 0, result.stderr
    assert "not waited for" in result.stderr
    assert restarted_at(emulator, API) is not None


def test_timeout_when_the_new_pods_never_come(emulator: Emulator, kubeconfig: Path) -> None:
    emulator.controllers.auto(delay=0.01)
    assert run("deploy", "staging", "--tag", "v1.0").exit_code == 0
    emulator.controllers.stop()
    result = run("restart", "precompute", "--env", "staging", "--timeout", "1s")
    assert result.exit_code == 1
    assert "did not finish in time" in result.stderr


def test_nothing_deployed_and_bad_targets(cluster: Emulator) -> None:
    empty = run("restart", "api", "--env", "staging")
    assert empty.exit_code == 1
    assert "nothing to restart" in empty.stderr
    bad = run("restart", "redis", "--env", "staging")
    assert bad.exit_code == 2 and "cannot restart 'redis'" in bad.stderr
    assert writes(cluster) == []


def test_prod_asks_for_confirmation(deployed: Emulator) -> None:
    result = run("restart", "api", "--env", "prod")
    assert result.exit_code == 2 and "needs confirmation" in result.stderr
    assert writes(deployed) == []
    assert run("restart", "api", "--env", "prod", "--yes").exit_code == 0


def test_restart_is_refused_while_another_run_holds_the_release_lock(deployed: Emulator) -> None:
    """A deploy (or scale) of the same environment holds its Lease: restart changes nothing."""
    import datetime

    from tradewise_ops.core.lock import LockHolder, lease_object

    now = datetime.datetime.now(datetime.UTC)
    holder = LockHolder(
        identity="alice@laptop:4242",
        command="tradewise deploy staging --tag v9",
        acquired=now,
        renewed=now,
        duration_seconds=30,
        transitions=0,
    )
    deployed.put(lease_object("staging", NS, holder))
    before = restarted_at(deployed, API)
    result = run("restart", "api", "--env", "staging")
    assert result.exit_code == 1, result.stderr
    assert "alice@laptop:4242" in result.stderr and "tradewise deploy staging" in result.stderr
    assert restarted_at(deployed, API) == before  # nothing was patched
