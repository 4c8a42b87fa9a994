"""Contract tests of the emulator: the official client and kubectl against it, over real HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import require_binary
from tests.k8s_emulator import Emulator

pytest_plugins = ["tests.k8s_emulator.fixtures"]

NS = "tradewise-ai"


def _deployment(name: str = "web", image: str = "nginx:1", replicas: int | None = None) -> dict:
    spec: dict[str, Any] = {
        "selector": {"matchLabels": {"app": name}},
        "template": {
            "metadata": {"labels": {"app": name}},
            "spec": {"containers": [{"name": "main", "image": image}]},
        },
    }
    if replicas is not None:
        spec["replicas"] = replicas
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS, "labels": {"app": name, "tier": "web"}},
        "spec": spec,
    }


@pytest.fixture
def api(kubeconfig: Path) -> Any:
    from kubernetes import config

    return config.new_client_from_config(str(kubeconfig))


def test_discovery_lists_served_groups_and_leaves_out_missing_ones(
    bare_emulator: Emulator, bare_kubeconfig: Path
) -> None:
    from kubernetes import client, config

    api = config.new_client_from_config(str(bare_kubeconfig))
    groups = {g.name for g in client.ApisApi(api).get_api_versions().groups}
    assert {"apps", "autoscaling", "networking.k8s.io"} <= groups
    assert "monitoring.coreos.com" not in groups
    bare_emulator.serve_prometheus_operator()
    groups = {g.name for g in client.ApisApi(api).get_api_versions().groups}
    assert "monitoring.coreos.com" in groups
    resources = client.AppsV1Api(api).get_api_resources().resources
    names = {r.name for r in resources}
    assert {"deployments", "deployments/scale", "statefulsets"} <= names


def test_create_get_list_with_selector_and_kind(api: Any) -> None:
    from kubernetes import client

    apps = client.AppsV1Api(api)
    created = apps.create_namespaced_deployment(NS, _deployment("web"))
    assert created.metadata.generation == 1
    assert created.spec.replicas == 1  # defaulted like the API server
    apps.create_namespaced_deployment(NS, _deployment("other"))
    assert [d.metadata.name for d in apps.list_namespaced_deployment(NS).items] == [
        "other",
        "web",
    ]
    selected = apps.list_namespaced_deployment(NS, label_selector="app=web,tier in (web,x)")
    assert [d.metadata.name for d in selected.items] == ["web"]
    assert apps.list_namespaced_deployment(NS, label_selector="app!=web").items[
        0
    ].metadata.name == ("other")
    from kubernetes.dynamic import DynamicClient

    raw = (
        DynamicClient(api).resources.get(api_version="apps/v1", kind="Deployment").get(namespace=NS)
    )
    assert raw.kind == "DeploymentList" and raw.apiVersion == "apps/v1"
    with pytest.raises(client.ApiException) as err:
        apps.create_namespaced_deployment(NS, _deployment("web"))
    assert err.value.status == 409
    with pytest.raises(client.ApiException) as err:
        apps.read_namespaced_deployment("nope", NS)
    assert err.value.status == 404


def test_namespace_must_exist_and_can_be_created(api: Any) -> None:
    from kubernetes import client

    core = client.CoreV1Api(api)
    with pytest.raises(client.ApiException) as err:
        core.create_namespaced_config_map("missing", {"metadata": {"name": "c"}})
    assert err.value.status == 404
    core.create_namespace({"metadata": {"name": "missing"}})
    cm = core.create_namespaced_config_map(
        "missing", {"metadata": {"name": "c"}, "data": {"a": "1"}}
    )
    assert cm.data == {"a": "1"}


def test_stale_resource_version_gets_409_and_generation_bumps_on_spec_change(api: Any) -> None:
    from kubernetes import client

    apps = client.AppsV1Api(api)
    first = apps.create_namespaced_deployment(NS, _deployment())
    fresh = apps.patch_namespaced_deployment("web", NS, {"spec": {"replicas": 3}})
    assert fresh.metadata.generation == 2
    assert int(fresh.metadata.resource_version) > int(first.metadata.resource_version)
    meta_only = apps.patch_namespaced_deployment("web", NS, {"metadata": {"labels": {"x": "y"}}})
    assert meta_only.metadata.generation == 2
    stale = first.to_dict()
    stale_body = api.sanitize_for_serialization(first)
    stale_body["spec"]["replicas"] = 5
    with pytest.raises(client.ApiException) as err:
        apps.replace_namespaced_deployment("web", NS, stale_body)
    assert err.value.status == 409 and stale["metadata"]["name"] == "web"
    current = api.sanitize_for_serialization(apps.read_namespaced_deployment("web", NS))
    current["spec"]["replicas"] = 5
    replaced = apps.replace_namespaced_deployment("web", NS, current)
    assert replaced.spec.replicas == 5 and replaced.metadata.generation == 3


def test_server_side_apply_owns_fields_and_dry_run_changes_nothing(api: Any) -> None:
    from kubernetes.dynamic import DynamicClient

    dyn = DynamicClient(api)
    deployments = dyn.resources.get(api_version="apps/v1", kind="Deployment")
    body = _deployment(replicas=2)
    body["metadata"]["labels"]["extra"] = "1"
    out = deployments.server_side_apply(
        body=body, name="web", namespace=NS, field_manager="tradewise", force_conflicts=True
    )
    assert out.spec.replicas == 2 and out.metadata.labels["extra"] == "1"
    # a field we stop sending disappears; a field another client set stays
    deployments.patch(
        body={"metadata": {"annotations": {"someone": "else"}}},
        name="web",
        namespace=NS,
        content_type="application/merge-patch+json",
    )
    del body["metadata"]["labels"]["extra"]
    body["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:2"
    out = deployments.server_side_apply(
        body=body, name="web", namespace=NS, field_manager="tradewise", force_conflicts=True
    )
    assert "extra" not in out.metadata.labels
    assert out.metadata.annotations["someone"] == "else"
    assert out.metadata.generation == 2
    dry = deployments.server_side_apply(
        body=_deployment(image="nginx:3", replicas=2),
        name="web",
        namespace=NS,
        field_manager="tradewise",
        force_conflicts=True,
        dry_run="All",
    )
    assert dry.spec.template.spec.containers[0].image == "nginx:3"
    live = deployments.get(name="web", namespace=NS)
    assert live.spec.template.spec.containers[0].image == "nginx:2"


def test_scale_subresource(api: Any, emulator: Emulator) -> None:
    from kubernetes import client

    apps = client.AppsV1Api(api)
    apps.create_namespaced_deployment(NS, _deployment())
    scale = apps.patch_namespaced_deployment_scale("web", NS, {"spec": {"replicas": 4}})
    assert scale.spec.replicas == 4
    assert apps.read_namespaced_deployment_scale("web", NS).spec.replicas == 4
    assert emulator.get("Deployment", NS, "web")["spec"]["replicas"] == 4
    stale = api.sanitize_for_serialization(scale)
    apps.patch_namespaced_deployment_scale("web", NS, {"spec": {"replicas": 5}})
    stale["spec"]["replicas"] = 1
    with pytest.raises(client.ApiException) as err:
        apps.replace_namespaced_deployment_scale("web", NS, stale)
    assert err.value.status == 409


def test_watch_from_resource_version_times_out_and_410_when_too_old(
    api: Any, emulator: Emulator
) -> None:
    from kubernetes import client, watch

    apps = client.AppsV1Api(api)
    listed = apps.list_namespaced_deployment(NS)
    rv = listed.metadata.resource_version

    def later() -> None:
        time.sleep(0.2)
        apps.create_namespaced_deployment(NS, _deployment("late"))
        apps.patch_namespaced_deployment("late", NS, {"spec": {"replicas": 2}})

    threading.Thread(target=later).start()
    seen = []
    start = time.monotonic()
    for event in watch.Watch().stream(
        apps.list_namespaced_deployment, NS, resource_version=rv, timeout_seconds=1
    ):
        seen.append((event["type"], event["object"].metadata.name))
    assert seen == [("ADDED", "late"), ("MODIFIED", "late")]
    assert 0.9 < time.monotonic() - start < 3  # timeoutSeconds is honoured
    emulator.store.compact()
    with pytest.raises(client.ApiException) as err:
        for _ in watch.Watch().stream(
            apps.list_namespaced_deployment, NS, resource_version=rv, timeout_seconds=1
        ):
            pass
    assert err.value.status == 410


def test_faults_are_injected_then_cleared(api: Any, emulator: Emulator) -> None:
    from kubernetes import client

    apps = client.AppsV1Api(api)
    emulator.fail_next("GET", "/deployments/web$", 500, count=1)
    apps.create_namespaced_deployment(NS, _deployment())
    with pytest.raises(client.ApiException) as err:
        apps.read_namespaced_deployment("web", NS, _request_timeout=2)
    assert err.value.status == 500
    assert apps.read_namespaced_deployment("web", NS).metadata.name == "web"
    emulator.deny("patch", "deployments")
    with pytest.raises(client.ApiException) as err:
        apps.patch_namespaced_deployment("web", NS, {"spec": {"replicas": 2}})
    assert err.value.status == 403
    assert 'cannot patch resource "deployments"' in json.loads(err.value.body)["message"]


def test_dropped_watch_ends_stream_early(api: Any, emulator: Emulator) -> None:
    from kubernetes import client, watch

    apps = client.AppsV1Api(api)
    apps.create_namespaced_deployment(NS, _deployment("a"))
    apps.create_namespaced_deployment(NS, _deployment("b"))
    emulator.drop_watch("/deployments$", after_events=1)
    start = time.monotonic()
    events = []
    with pytest.raises(Exception):  # noqa: B017 - urllib3 raises ProtocolError on the cut
        for event in watch.Watch().stream(apps.list_namespaced_deployment, NS, timeout_seconds=5):
            events.append(event["object"].metadata.name)
    assert events == ["a"] and time.monotonic() - start < 3


def test_controllers_play_rollout_and_failures(api: Any, emulator: Emulator) -> None:
    from kubernetes import client

    apps = client.AppsV1Api(api)
    core = client.CoreV1Api(api)
    apps.create_namespaced_deployment(NS, _deployment(replicas=2))
    emulator.controllers.deployment_progress(NS, "web")
    status = apps.read_namespaced_deployment("web", NS).status
    assert (status.observed_generation, status.ready_replicas, status.available_replicas) == (
        1,
        2,
        2,
    )
    assert len(core.list_namespaced_pod(NS, label_selector="app=web").items) == 2
    apps.patch_namespaced_deployment(
        "web",
        NS,
        {"spec": {"template": {"spec": {"containers": [{"name": "main", "image": "x"}]}}}},
    )
    pods = emulator.controllers.fail_pods(NS, "web", "ImagePullBackOff")
    pod = core.read_namespaced_pod(pods[0], NS)
    assert pod.status.container_statuses[0].state.waiting.reason == "ImagePullBackOff"
    events = core.list_namespaced_event(NS, field_selector=f"involvedObject.name={pods[0]}")
    assert events.items and events.items[0].type == "Warning"


def test_auto_mode_makes_workloads_ready_and_fails_marked_images(
    api: Any, emulator: Emulator
) -> None:
    from kubernetes import client

    apps = client.AppsV1Api(api)
    emulator.controllers.fail_images["broken"] = "ErrImagePull"
    emulator.controllers.auto(delay=0.01)
    apps.create_namespaced_deployment(NS, _deployment("good", replicas=2))
    apps.create_namespaced_deployment(NS, _deployment("bad", image="registry/x:broken"))

    def ready(name: str) -> bool:
        obj = emulator.get("Deployment", NS, name) or {}
        return (obj.get("status") or {}).get("readyReplicas") == 2

    emulator.wait_for(lambda: ready("good"), what="good ready")
    emulator.wait_for(
        lambda: any(
            (p["status"].get("containerStatuses") or [{}])[0]
            .get("state", {})
            .get("waiting", {})
            .get("reason")
            == "ErrImagePull"
            for p in emulator.list("Pod", NS, "app=bad")
        ),
        what="bad pods failing",
    )


# -- kubectl ---------------------------------------------------------------------------------
def _kubectl(kubeconfig: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    binary = require_binary("kubectl", "kubectl on PATH, shipped with this machine image")
    return subprocess.run(
        [binary, "--kubeconfig", str(kubeconfig), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "HOME": str(kubeconfig.parent)},
    )


def test_kubectl_apply_get_scale_watch(kubeconfig: Path, emulator: Emulator) -> None:
    body = json.dumps(_deployment())
    applied = _kubectl(
        kubeconfig, "apply", "--server-side", "--validate=false", "-f", "-", stdin=body
    )
    assert applied.returncode == 0, applied.stderr
    assert "serverside-applied" in applied.stdout
    got = _kubectl(kubeconfig, "get", "deployment", "web", "-n", NS, "-o", "json")
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout)["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1"
    scaled = _kubectl(kubeconfig, "scale", "deployment/web", "-n", NS, "--replicas=3")
    assert scaled.returncode == 0, scaled.stderr
    assert emulator.get("Deployment", NS, "web")["spec"]["replicas"] == 3
    listed = _kubectl(kubeconfig, "get", "deployments", "-n", NS, "-l", "app=web", "-o", "name")
    assert listed.stdout.split() == ["deployment.apps/web"]
    watched = _kubectl(
        kubeconfig,
        "get",
        "deployments",
        "-n",
        NS,
        "--watch-only",
        "-o",
        "name",
        "--request-timeout=2s",
    )
    assert watched.returncode in (0, 1)  # ends when the watch times out; no events yet
    assert watched.stdout.strip() == ""


def test_kubectl_replace_with_a_stale_version_gets_409(
    kubeconfig: Path, emulator: Emulator
) -> None:
    first = emulator.put(_deployment())
    emulator.put({**_deployment(), "spec": {**_deployment()["spec"], "replicas": 2}})
    stale = json.dumps({**first, "spec": {**first["spec"], "replicas": 7}})
    replaced = _kubectl(kubeconfig, "replace", "--validate=false", "-f", "-", stdin=stale)
    assert replaced.returncode != 0
    assert "the object has been modified" in replaced.stderr
    assert emulator.get("Deployment", NS, "web")["spec"]["replicas"] == 2  # type: ignore[index]


# -- issue 16: the metrics API (metrics-server) and the VPA's CRD, served on demand ------------
def test_metrics_api_serves_pod_metrics_as_metrics_server_does() -> None:
    """Discovery names ``pods`` of ``metrics.k8s.io/v1beta1`` with kind PodMetrics; a list
    answers PodMetrics with timestamp, window and per-container usage, filtered by labels."""
    import json as _json
    import urllib.request as _rq

    from tests.k8s_emulator import Emulator as _Emulator

    with _Emulator(namespaces=("tradewise-ai",)) as emu:
        base = emu.url
        emu.serve_metrics_api()
        emu.serve_vpa()
        emu.put_pod_metrics(
            "tradewise-ai", "api-0", {"app.kubernetes.io/name": "tradewise"},
            {"tradewise-api": ("250m", "300Mi")},
        )  # fmt: skip
        emu.put_pod_metrics("tradewise-ai", "other-0", {"app": "other"}, {"x": ("1", "1Gi")})

        def get(path: str) -> dict:
            with _rq.urlopen(base + path, timeout=5) as response:  # noqa: S310
                return _json.loads(response.read())

        group = get("/apis/metrics.k8s.io/v1beta1")
        (pods,) = [r for r in group["resources"] if r["name"] == "pods"]
        assert pods["kind"] == "PodMetrics" and pods["namespaced"] is True
        vpa = get("/apis/autoscaling.k8s.io/v1")
        assert [r["kind"] for r in vpa["resources"] if "/" not in r["name"]] == [
            "VerticalPodAutoscaler"
        ]
        listed = get(
            "/apis/metrics.k8s.io/v1beta1/namespaces/tradewise-ai/pods"
            "?labelSelector=app.kubernetes.io%2Fname%3Dtradewise"
        )
        (item,) = listed["items"]
        assert item["metadata"]["name"] == "api-0"
        assert item["window"] == "15s" and item["timestamp"]
        assert item["containers"] == [
            {"name": "tradewise-api", "usage": {"cpu": "250m", "memory": "300Mi"}}
        ]
        # the core pods are another resource: the PodMetrics did not create Pods
        assert get("/api/v1/namespaces/tradewise-ai/pods")["items"] == []


def test_leases_create_conflict_replace_and_delete_with_preconditions(
    api: Any, kubeconfig: Path
) -> None:
    """coordination.k8s.io/v1 Leases as leader election uses them: create (409 when held),
    replace carrying the resourceVersion (409 when stale), delete with preconditions."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    leases = client.CoordinationV1Api(api)
    assert "coordination.k8s.io" in {g.name for g in client.ApisApi(api).get_api_versions().groups}
    body = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "lock", "namespace": NS},
        "spec": {
            "holderIdentity": "a@host:1",
            "leaseDurationSeconds": 30,
            "acquireTime": "2026-01-01T00:00:00.000000Z",
            "renewTime": "2026-01-01T00:00:00.000000Z",
        },
    }
    first = leases.create_namespaced_lease(NS, body)
    assert first.spec.holder_identity == "a@host:1" and first.spec.lease_duration_seconds == 30
    with pytest.raises(ApiException) as held:
        leases.create_namespaced_lease(NS, body)
    assert held.value.status == 409
    renewed = leases.read_namespaced_lease("lock", NS)
    renewed.spec.renew_time = renewed.spec.acquire_time.replace(second=10)
    second = leases.replace_namespaced_lease("lock", NS, renewed)
    assert int(second.metadata.resource_version) > int(first.metadata.resource_version)
    stale = {
        **body,
        "metadata": {**body["metadata"], "resourceVersion": first.metadata.resource_version},
    }
    with pytest.raises(ApiException) as lost:
        leases.replace_namespaced_lease("lock", NS, stale)
    assert lost.value.status == 409
    wrong = client.V1DeleteOptions(
        preconditions=client.V1Preconditions(resource_version=first.metadata.resource_version)
    )
    with pytest.raises(ApiException) as refused:
        leases.delete_namespaced_lease("lock", NS, body=wrong)
    assert refused.value.status == 409 and "Precondition failed" in refused.value.body
    listed = _kubectl(kubeconfig, "get", "leases", "-n", NS, "-o", "name")
    assert listed.stdout.split() == ["lease.coordination.k8s.io/lock"]
    right = client.V1DeleteOptions(
        preconditions=client.V1Preconditions(resource_version=second.metadata.resource_version)
    )
    leases.delete_namespaced_lease("lock", NS, body=right)
    assert leases.list_namespaced_lease(NS).items == []
