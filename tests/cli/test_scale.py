"""``tradewise scale`` against the Kubernetes emulator over real HTTP (a temporary kubeconfig).

The cluster is seeded with the rendered prod Deployments and HPAs. Where a test needs the HPA
controller to react, the test plays it through the emulator: with no load an HPA settles at its
floor, and it always keeps the replicas within [min, max].
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.k8s_emulator import Emulator
from tradewise_ops.cli.main import app
from tradewise_ops.core.config import load_config

pytest_plugins = ["tests.k8s_emulator.fixtures"]

ROOT = Path(__file__).resolve().parents[2]
NS = "tradewise-ai"
API, WORKER, PRE = (
    "tradewise-api-deployment",
    "tradewise-worker-deployment",
    "tradewise-precompute-deployment",
)
API_HPA, WORKER_HPA = "tradewise-api-hpa", "tradewise-worker-hpa"
MAINTENANCE = "tradewise-maintenance-deployment"
PROFILE = "tradewise.io/traffic-profile"
APPLIED_AT = "tradewise.io/traffic-profile-applied-at"
WRITES = ("POST", "PUT", "PATCH", "DELETE")


@pytest.fixture
def cluster(emulator: Emulator, kubeconfig: Path, monkeypatch: pytest.MonkeyPatch) -> Emulator:
    """The emulator holding prod's rendered Deployments and HPAs, settled at the HPA floors."""
    from tradewise_ops.core.render import render_environment

    monkeypatch.setenv("TRADEWISE_CONFIG", str(ROOT / "tradewise.yaml"))
    monkeypatch.delenv("TRADEWISE_ENV", raising=False)
    monkeypatch.delenv("TRADEWISE_NAMESPACE", raising=False)
    config = load_config(ROOT / "tradewise.yaml", environ={})
    for obj in render_environment(config, "prod", tag="v1.0"):
        if obj["kind"] in ("Deployment", "HorizontalPodAutoscaler") and obj["metadata"]["name"] in (
            API,
            WORKER,
            PRE,
            API_HPA,
            WORKER_HPA,
        ):
            emulator.put(obj)
    # the HPA controller brings each Deployment to its floor (the rendered ones carry no replicas)
    emulator.controllers.set_hpa(NS, API_HPA, 3)
    emulator.controllers.set_hpa(NS, WORKER_HPA, 2)
    for name in (API, WORKER, PRE):
        emulator.controllers.deployment_progress(NS, name)
    emulator.reset_requests()
    return emulator


def run(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def replicas(emu: Emulator, name: str) -> int:
    obj = emu.get("Deployment", NS, name)
    assert obj is not None
    return int(obj["spec"]["replicas"])


def bounds(emu: Emulator, name: str) -> tuple[int, int]:
    hpa = emu.get("HorizontalPodAutoscaler", NS, name)
    assert hpa is not None
    return hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]


def annotations(emu: Emulator, kind: str, name: str) -> dict[str, str]:
    obj = emu.get(kind, NS, name)
    assert obj is not None
    return dict(obj["metadata"].get("annotations") or {})


def hpa_reacts_without_load(emu: Emulator, hpa_name: str) -> int:
    """Play the HPA controller with no load: it wants as few pods as it may, within [min, max].

    A target scaled to 0 is left alone (Kubernetes disables autoscaling for it).
    """
    hpa = emu.get("HorizontalPodAutoscaler", NS, hpa_name)
    assert hpa is not None
    target = hpa["spec"]["scaleTargetRef"]["name"]
    current = replicas(emu, target)
    if current == 0:
        return 0
    low, high = hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]
    desired = max(low, min(high, 1))
    emu.controllers.set_hpa(NS, hpa_name, desired)
    return replicas(emu, target)


def hpa_reacts_under_load(emu: Emulator, hpa_name: str, wanted: int) -> int:
    """Play the HPA controller under load: it wants ``wanted`` pods, clamped to [min, max]."""
    hpa = emu.get("HorizontalPodAutoscaler", NS, hpa_name)
    assert hpa is not None
    low, high = hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]
    emu.controllers.set_hpa(NS, hpa_name, max(low, min(high, wanted)))
    return replicas(emu, hpa["spec"]["scaleTargetRef"]["name"])


def writes(emu: Emulator) -> list[str]:
    return [f"{r.method} {r.path}" for r in emu.requests if r.method in WRITES]


# -- scale api / workers: the HPA-floor rule ---------------------------------------------------
def test_a_bare_replica_change_is_undone_by_the_hpa(cluster: Emulator, kubeconfig: Path) -> None:
    """The control experiment: the reacting HPA in these tests does undo a bare change."""
    from kubernetes import client, config

    api_client = config.new_client_from_config(config_file=str(kubeconfig), context="prod")
    client.AppsV1Api(api_client).patch_namespaced_deployment_scale(
        API, NS, {"spec": {"replicas": 8}}
    )
    assert replicas(cluster, API) == 8
    assert hpa_reacts_without_load(cluster, API_HPA) == 3


def test_scale_api_moves_the_hpa_floor_so_the_choice_survives(cluster: Emulator) -> None:
    result = run("scale", "api", "8", "--env", "prod", "--yes")
    assert result.exit_code == 0, result.stderr
    assert replicas(cluster, API) == 8
    assert bounds(cluster, API_HPA) == (8, 20)
    assert "floor set to 8" in result.stderr
    # through the scale subresource, and the HPA before the Deployment
    paths = writes(cluster)
    assert any(p.startswith("PATCH") and p.endswith(f"/deployments/{API}/scale") for p in paths)
    hpa_write = next(i for i, p in enumerate(paths) if API_HPA in p)
    scale_write = next(i for i, p in enumerate(paths) if p.endswith("/scale"))
    assert hpa_write < scale_write
    assert not any(p.startswith("PUT") for p in paths)
    # the HPA reacts (no load: towards its floor) and the user's 8 survives
    assert hpa_reacts_without_load(cluster, API_HPA) == 8
    # under load it may still add pods, up to its ceiling
    assert hpa_reacts_under_load(cluster, API_HPA, 30) == 20
    assert annotations(cluster, "Deployment", API)[PROFILE] == "manual"
    assert annotations(cluster, "HorizontalPodAutoscaler", API_HPA)[PROFILE] == "manual"
    # the workers were not touched
    assert replicas(cluster, WORKER) == 2 and bounds(cluster, WORKER_HPA) == (2, 10)


def test_scale_workers_above_the_ceiling_raises_it_with_a_warning(cluster: Emulator) -> None:
    result = run("scale", "workers", "14", "--env", "prod", "--yes")
    assert result.exit_code == 0, result.stderr
    assert "warning:" in result.stderr and "ceiling of 10" in result.stderr
    assert bounds(cluster, WORKER_HPA) == (14, 14)
    assert replicas(cluster, WORKER) == 14
    assert hpa_reacts_without_load(cluster, WORKER_HPA) == 14
    assert hpa_reacts_under_load(cluster, WORKER_HPA, 40) == 14


def test_scale_workers_to_zero_leaves_the_hpa_alone(cluster: Emulator) -> None:
    result = run("scale", "workers", "0", "--env", "prod", "--yes", "-o", "json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["applied"] is True and doc["steps"][0]["replicas"] == 0
    assert replicas(cluster, WORKER) == 0
    assert bounds(cluster, WORKER_HPA) == (2, 10)
    assert hpa_reacts_without_load(cluster, WORKER_HPA) == 0


def test_scale_json_output_is_one_document(cluster: Emulator) -> None:
    result = run("-o", "json", "scale", "api", "5", "--env", "prod", "--yes")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["action"] == "scale api 5"
    assert doc["environment"] == "prod"
    assert doc["profile"] == "manual"
    assert doc["steps"] == [
        {
            "component": "api",
            "target": API,
            "replicas_before": 3,
            "replicas": 5,
            "hpa": API_HPA,
            "hpa_before": {"min": 3, "max": 20},
            "hpa_after": {"min": 5, "max": 20},
        }
    ]


def test_dry_run_prints_the_plan_and_sends_no_write(cluster: Emulator) -> None:
    result = run("scale", "api", "12", "--dry-run", "--env", "prod")
    assert result.exit_code == 0, result.stderr
    assert "dry run" in result.stdout
    assert "3 -> 12" in result.stdout
    assert writes(cluster) == []
    assert replicas(cluster, API) == 3 and bounds(cluster, API_HPA) == (3, 20)


def test_prod_asks_for_confirmation(cluster: Emulator) -> None:
    result = run("scale", "api", "4", "--env", "prod")
    assert result.exit_code == 2
    assert "needs confirmation" in result.stderr and "--yes" in result.stderr
    assert writes(cluster) == []
    assert replicas(cluster, API) == 3


def test_staging_needs_no_confirmation(cluster: Emulator) -> None:
    # staging's own HPA bounds are 2-6 / 1-4, but the live ones are what count
    result = run("scale", "api", "4", "--env", "staging")
    assert result.exit_code == 0, result.stderr
    assert replicas(cluster, API) == 4 and bounds(cluster, API_HPA) == (4, 20)


# -- bad input: one sentence, exit 2, nothing sent ----------------------------------------------
@pytest.mark.parametrize(
    "args,message",
    [
        (["scale", "api", "-1"], "api replicas must be 0 or more, not -1"),
        (["scale", "workers", "2.5"], "workers replicas must be a whole number like 5, not '2.5'"),
        (["scale", "api", "ten"], "api replicas must be a whole number like 5, not 'ten'"),
        (["scale", "api", "51"], "api replicas 51 is above the cap of 50 replicas"),
        (
            ["scale", "traffic", "extreme"],
            "unknown traffic profile 'extreme': use one of low, medium, high, peak",
        ),
        (["scale", "emergency-down", "--api", "x"], "--api must be a whole number like 5"),
        (
            ["scale", "emergency-down", "--maintenance", "--env", "local"],
            "--maintenance needs a Kubernetes environment; local is of kind local",
        ),
        (["scale", "status", "--env", "nowhere"], "unknown environment 'nowhere'"),
        (["scale", "api", "3", "--env", "nowhere"], "unknown environment 'nowhere'"),
    ],
)
def test_bad_input_is_one_sentence_exit_2_and_nothing_sent(
    cluster: Emulator, args: list[str], message: str
) -> None:
    env = [] if "--env" in args else ["--env", "prod"]
    result = run(*args, *env, "--yes")
    assert result.exit_code == 2, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[0].startswith("error: ")
    assert message in lines[0]
    assert result.stdout == ""
    assert cluster.requests == []


# -- traffic profiles ---------------------------------------------------------------------------
def test_traffic_profile_applies_to_both_and_is_recorded(cluster: Emulator) -> None:
    result = run("scale", "traffic", "high", "--env", "prod", "--yes")
    assert result.exit_code == 0, result.stderr
    assert (replicas(cluster, API), replicas(cluster, WORKER)) == (10, 4)
    assert bounds(cluster, API_HPA) == (10, 20)
    assert bounds(cluster, WORKER_HPA) == (4, 10)
    for kind, name in (
        ("Deployment", API),
        ("Deployment", WORKER),
        ("HorizontalPodAutoscaler", API_HPA),
        ("HorizontalPodAutoscaler", WORKER_HPA),
    ):
        ann = annotations(cluster, kind, name)
        assert ann[PROFILE] == "high"
        assert ann[APPLIED_AT].endswith("Z")
    assert hpa_reacts_without_load(cluster, API_HPA) == 10
    assert hpa_reacts_without_load(cluster, WORKER_HPA) == 4
    assert replicas(cluster, PRE) == 1  # precompute is not part of a profile

    status = run("scale", "status", "--env", "prod", "-o", "json")
    assert status.exit_code == 0, status.stderr
    doc = json.loads(status.stdout)
    assert doc["profile"]["name"] == "high"
    assert doc["profile"]["by_component"] == {"api": "high", "worker": "high"}


def test_traffic_dry_run_sends_no_write(cluster: Emulator) -> None:
    result = run("scale", "traffic", "peak", "--dry-run", "--env", "prod", "-o", "json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["dry_run"] is True and doc["applied"] is False
    assert [(s["component"], s["replicas"]) for s in doc["steps"]] == [("api", 15), ("worker", 6)]
    assert writes(cluster) == []


def node(name: str, cpu: str, memory: str, taint: bool = False) -> dict[str, Any]:
    """A Node as the API serves it, with the allocatable CPU and memory the test sets."""
    taints = [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name},
        "spec": {"taints": taints} if taint else {},
        "status": {
            "capacity": {"cpu": cpu, "memory": memory, "pods": "110"},
            "allocatable": {"cpu": cpu, "memory": memory, "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def test_traffic_dry_run_checks_the_requests_against_the_nodes(cluster: Emulator) -> None:
    for obj in (node("n1", "4", "16Gi"), node("n2", "4", "16Gi"), node("cp", "8", "32Gi", True)):
        cluster.put(obj)
    result = run("scale", "traffic", "peak", "--dry-run", "--env", "prod", "-o", "json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    check = doc["allocatable"]
    assert check["fits"] is False and check["pending"] == {"api": 4}
    assert (check["cpu_requested"], check["cpu_allocatable"], check["nodes"]) == ("9.85", "8", 2)
    sentence = (
        "peak needs 9.85 CPU and 10.4 GiB of requests; the 2 schedulable node(s) have 8 CPU and "
        "32.0 GiB allocatable: 4 API pods would stay Pending"
    )
    assert check["sentence"] == sentence and sentence in result.stderr
    assert writes(cluster) == []
    # Node is a known kind: one list, no discovery request
    assert [r.path for r in cluster.requests_matching("GET", "^/api/v1/nodes")] == ["/api/v1/nodes"]
    assert cluster.requests_matching("GET", r"^/api/v1$") == []

    fits = run("scale", "traffic", "low", "--dry-run", "--env", "prod")
    assert fits.exit_code == 0, fits.stderr
    assert "low needs 2.1 CPU" in fits.stderr and "every pod fits" in fits.stderr


def test_traffic_dry_run_without_rights_on_nodes_warns_and_skips_the_check(
    cluster: Emulator,
) -> None:
    cluster.put(node("n1", "1", "1Gi"))
    cluster.deny("list", "nodes")
    result = run("scale", "traffic", "peak", "--dry-run", "--env", "prod", "-o", "json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert "allocatable" not in doc
    assert doc["allocatable_skipped"].startswith("the nodes cannot be read")
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "nodes cannot be read" in warnings[0]
    assert [(s["component"], s["replicas"]) for s in doc["steps"]] == [("api", 15), ("worker", 6)]


def test_a_traffic_change_that_is_applied_does_not_list_nodes(cluster: Emulator) -> None:
    cluster.deny("list", "nodes")  # as the scaling CronJobs' Role: no list at all
    result = run("scale", "traffic", "high", "--env", "prod", "--yes")
    assert result.exit_code == 0, result.stderr
    assert "nodes" not in result.stderr
    assert cluster.requests_matching("GET", r"^/api/v1/nodes") == []


def test_manual_scale_after_a_profile_shows_mixed(cluster: Emulator) -> None:
    assert run("scale", "traffic", "medium", "--env", "prod", "--yes").exit_code == 0
    assert run("scale", "api", "7", "--env", "prod", "--yes").exit_code == 0
    doc = json.loads(run("scale", "status", "--env", "prod", "-o", "json").stdout)
    assert doc["profile"]["name"] == "mixed"
    assert doc["profile"]["by_component"] == {"api": "manual", "worker": "medium"}


# -- emergency-down and its undo ----------------------------------------------------------------
def test_emergency_down_and_a_profile_undoes_it(cluster: Emulator) -> None:
    assert run("scale", "traffic", "peak", "--env", "prod", "--yes").exit_code == 0
    result = run("scale", "emergency-down", "--env", "prod", "--yes")
    assert result.exit_code == 0, result.stderr
    assert (replicas(cluster, API), replicas(cluster, WORKER), replicas(cluster, PRE)) == (3, 2, 0)
    assert bounds(cluster, API_HPA) == (3, 3) and bounds(cluster, WORKER_HPA) == (2, 2)
    assert annotations(cluster, "Deployment", PRE)[PROFILE] == "emergency-down"
    # pinned: the HPA cannot scale back into the overload
    assert hpa_reacts_under_load(cluster, API_HPA, 20) == 3
    assert "scale traffic" in result.stderr  # says how to undo it

    undo = run("scale", "traffic", "medium", "--env", "prod", "--yes")
    assert undo.exit_code == 0, undo.stderr
    assert (replicas(cluster, API), replicas(cluster, WORKER), replicas(cluster, PRE)) == (5, 2, 1)
    assert bounds(cluster, API_HPA) == (5, 20) and bounds(cluster, WORKER_HPA) == (2, 10)
    assert annotations(cluster, "Deployment", PRE)[PROFILE] == "medium"
    assert hpa_reacts_under_load(cluster, API_HPA, 12) == 12


def test_emergency_down_overrides_dry_run_and_maintenance_plan(cluster: Emulator) -> None:
    result = run(
        "scale", "emergency-down", "--api", "1", "--workers", "1", "--maintenance",
        "--dry-run", "--env", "prod", "-o", "json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert [(s["component"], s["replicas"]) for s in doc["steps"]] == [
        ("api", 1),
        ("worker", 1),
        ("precompute", 0),
    ]
    assert doc["maintenance"] is True
    assert writes(cluster) == []


def test_emergency_down_with_maintenance_switches_the_ingress_first(cluster: Emulator) -> None:
    from tradewise_ops.core.render import render_environment

    config = load_config(ROOT / "tradewise.yaml", environ={})
    (page,) = [
        o
        for o in render_environment(config, "prod", tag="v1.0")
        if o["metadata"]["name"] == MAINTENANCE and o["kind"] == "Deployment"
    ]
    cluster.put(page)
    cluster.reset_requests()
    result = run("scale", "emergency-down", "--maintenance", "--env", "prod", "--yes")
    assert result.exit_code == 0, result.stderr
    ingress = cluster.get("Ingress", NS, "tradewise-ingress")
    assert ingress is not None
    assert ingress["metadata"]["annotations"]["tradewise.io/maintenance"] == "on"
    backends = json.dumps(ingress["spec"])
    assert "tradewise-maintenance-service" in backends
    assert "tradewise-api-service" not in backends
    paths = writes(cluster)
    first_ingress = next(i for i, p in enumerate(paths) if "/ingresses/" in p)
    first_scale = next(i for i, p in enumerate(paths) if p.endswith("/scale"))
    assert first_ingress < first_scale
    assert "tradewise maintenance off prod" in result.stderr
    assert replicas(cluster, PRE) == 0


def test_emergency_down_maintenance_without_the_page_changes_nothing(cluster: Emulator) -> None:
    result = run("scale", "emergency-down", "--maintenance", "--env", "prod", "--yes")
    assert result.exit_code == 1
    assert "the maintenance page is not deployed in prod" in result.stderr
    assert writes(cluster) == []
    assert replicas(cluster, PRE) == 1


# -- status -------------------------------------------------------------------------------------
def test_status_shows_deployments_hpas_metrics_and_events(cluster: Emulator) -> None:
    hpa = cluster.get("HorizontalPodAutoscaler", NS, API_HPA)
    assert hpa is not None
    hpa["status"] = {
        "currentReplicas": 3,
        "desiredReplicas": 3,
        "lastScaleTime": "2026-01-01T00:00:00Z",
        "currentMetrics": [
            {"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 41}}}
        ],
    }
    cluster.store.replace(
        cluster.resource("HorizontalPodAutoscaler"), NS, API_HPA, hpa, status_only=True
    )
    cluster.controllers.event(
        NS, "HorizontalPodAutoscaler", API_HPA, "SuccessfulRescale",
        "New size: 3; reason: All metrics below target", type="Normal",
    )  # fmt: skip
    cluster.controllers.event(NS, "Pod", "some-pod", "Pulled", "not about scaling", type="Normal")

    result = run("scale", "status", "--env", "prod", "-o", "json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    deps = {d["name"]: d for d in doc["deployments"]}
    assert {API, WORKER, PRE} <= set(deps)
    assert (deps[API]["desired"], deps[API]["ready"], deps[API]["available"]) == (3, 3, 3)
    hpas = {h["name"]: h for h in doc["hpas"]}
    assert (hpas[API_HPA]["min"], hpas[API_HPA]["max"], hpas[API_HPA]["current"]) == (3, 20, 3)
    cpu = next(m for m in hpas[API_HPA]["metrics"] if m["name"] == "cpu")
    assert (cpu["current"], cpu["target"]) == ("41%", "70%")
    assert hpas[API_HPA]["last_scale_time"] == "2026-01-01T00:00:00Z"
    assert [e["reason"] for e in doc["events"]] == ["SuccessfulRescale"]
    assert doc["profile"]["name"] is None

    table = run("scale", "status", "--env", "prod")
    assert table.exit_code == 0, table.stderr
    for text in (API, API_HPA, "cpu 41%/70%", "SuccessfulRescale", "none recorded"):
        assert text in table.stdout


def test_status_uses_only_reads(cluster: Emulator) -> None:
    assert run("scale", "status", "--env", "prod").exit_code == 0
    assert writes(cluster) == []
    assert cluster.requests, "status read nothing from the cluster"


# -- failures -----------------------------------------------------------------------------------
def test_scaling_what_is_not_deployed_says_deploy_first(
    emulator: Emulator, kubeconfig: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRADEWISE_CONFIG", str(ROOT / "tradewise.yaml"))
    result = run("scale", "api", "4", "--env", "staging")
    assert result.exit_code == 1
    assert "tradewise-api-deployment does not exist in namespace tradewise-ai" in result.stderr
    assert writes(emulator) == []


def test_unreachable_cluster_exits_3(
    emulator: Emulator, kubeconfig: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRADEWISE_CONFIG", str(ROOT / "tradewise.yaml"))
    emulator.stop()
    result = run("scale", "status", "--env", "staging")
    assert result.exit_code == 3, (result.stdout, result.stderr)
    assert result.stderr.startswith("error: ")


def test_the_emulators_own_hpa_controller_keeps_the_choice(
    cluster: Emulator, kubeconfig: Path
) -> None:
    """The emulator's background HPA controller (clamps to [min, max]) reacts to every change."""
    from kubernetes import client, config

    cluster.controllers.auto(delay=0.02)
    result = run("scale", "workers", "14", "--env", "prod", "--yes")
    assert result.exit_code == 0, result.stderr

    def settled(n: int) -> Any:
        def check() -> bool:
            hpa = cluster.get("HorizontalPodAutoscaler", NS, WORKER_HPA) or {}
            return (hpa.get("status") or {}).get("desiredReplicas") == n and replicas(
                cluster, WORKER
            ) == n

        return check

    cluster.wait_for(settled(14), timeout=10, what="the HPA to settle at 14")
    # the controller does react: a bare change above the ceiling is brought back to it
    apps = client.AppsV1Api(config.new_client_from_config(str(kubeconfig), context="prod"))
    apps.patch_namespaced_deployment_scale(WORKER, NS, {"spec": {"replicas": 30}})
    cluster.wait_for(settled(14), timeout=10, what="the HPA to clamp 30 back to 14")


def test_status_warns_when_something_reset_the_profiles_floor(cluster: Emulator) -> None:
    assert run("scale", "traffic", "high", "--env", "prod", "--yes").exit_code == 0
    # another writer (an apply of the rendered HPA, a kubectl edit) puts the floor back to 3
    hpa = cluster.get("HorizontalPodAutoscaler", NS, API_HPA)
    assert hpa is not None
    hpa["spec"]["minReplicas"] = 3
    cluster.put(hpa)
    result = run("scale", "status", "--env", "prod")
    assert result.exit_code == 0, result.stderr
    assert "warning: tradewise-api-hpa has a floor of 3, not the 10 of profile high" in (
        result.stdout
    )
    doc = json.loads(run("scale", "status", "--env", "prod", "-o", "json").stdout)
    assert len(doc["warnings"]) == 1
