"""KubeGateway against the emulator: real HTTP through a real kubeconfig, faults injected."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import free_port
from tests.k8s_emulator import Emulator
from tradewise_ops.adapters.kube import KubeGateway
from tradewise_ops.errors import (
    BadInputError,
    ConfigError,
    ConflictError,
    ForbiddenError,
    NotFoundError,
    TradewiseError,
    UnreachableError,
)

pytest_plugins = ["tests.k8s_emulator.fixtures"]

NS = "tradewise-ai"


def _deployment(name: str = "web", image: str = "nginx:1") -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS, "labels": {"app": name}},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "main", "image": image}]},
            },
        },
    }


@pytest.fixture
def gw(kubeconfig: Path) -> KubeGateway:
    return KubeGateway.from_kubeconfig(namespace=NS, retries=3, backoff=0.01)


# -- kubeconfig resolution -------------------------------------------------------------------
def test_resolves_kubeconfig_like_kubectl(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = emulator.write_kubeconfig(tmp_path / "a", contexts=("one",), namespace="from-context")
    second = emulator.write_kubeconfig(tmp_path / "b", contexts=("two",))
    monkeypatch.setenv("KUBECONFIG", f"{first}:{second}")
    gw = KubeGateway.from_kubeconfig()
    assert (gw.context, gw.namespace, gw.user) == ("one", "from-context", "tester")
    assert gw.server == emulator.url
    other = KubeGateway.from_kubeconfig(context="two", namespace="explicit")
    assert (other.context, other.namespace) == ("two", "explicit")
    with pytest.raises(ConfigError) as err:
        KubeGateway.from_kubeconfig(context="missing")
    assert "missing" in err.value.message and "one" in err.value.message


def test_no_kubeconfig_and_not_in_cluster_is_unreachable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(UnreachableError):
        KubeGateway.from_kubeconfig()


def test_from_environment_refuses_a_local_environment(kubeconfig: Path) -> None:
    from tradewise_ops.core.config import load_config

    config = load_config(Path(__file__).resolve().parents[2] / "tradewise.yaml")
    with pytest.raises(BadInputError):
        KubeGateway.from_environment(config.environment("local"))
    gw = KubeGateway.from_environment(config.environment("staging"))
    assert (gw.context, gw.namespace) == ("staging", "tradewise-ai")


# -- reads and writes ------------------------------------------------------------------------
def test_apply_get_list_scale_delete(gw: KubeGateway, emulator: Emulator) -> None:
    created = gw.apply(_deployment())
    assert created["metadata"]["generation"] == 1
    gw.apply(_deployment("other"))
    assert [d["metadata"]["name"] for d in gw.list("Deployment", "app=web")] == ["web"]
    assert all(d["kind"] == "Deployment" for d in gw.list("Deployment"))
    assert gw.get("Deployment", "web")["spec"]["template"]["spec"]["containers"][0]["image"] == (
        "nginx:1"
    )
    assert gw.scale("Deployment", "web", 4)["spec"]["replicas"] == 4
    assert gw.read_scale("Deployment", "web")["spec"]["replicas"] == 4
    # the SSA request carried our field manager and force
    patch = emulator.requests_matching("PATCH", "/deployments/web$")[0]
    assert patch.content_type == "application/apply-patch+yaml"
    assert patch.query["fieldManager"] == "tradewise" and patch.query["force"] == "true"
    assert gw.delete("Deployment", "web") is True
    assert gw.delete("Deployment", "web") is False
    assert gw.find("Deployment", "web") is None
    with pytest.raises(NotFoundError):
        gw.get("Deployment", "web")


def test_dry_run_apply_changes_nothing(gw: KubeGateway, emulator: Emulator) -> None:
    gw.apply(_deployment())
    predicted = gw.apply(_deployment(image="nginx:2"), dry_run=True)
    assert predicted["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:2"
    live = emulator.get("Deployment", NS, "web")
    assert live is not None
    assert live["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1"


def test_discovery_finds_unserved_kinds(bare_kubeconfig: Path) -> None:
    gw = KubeGateway.from_kubeconfig(namespace=NS)
    assert gw.served("apps/v1", "Deployment")
    assert not gw.served("monitoring.coreos.com/v1", "ServiceMonitor")
    before = gw.request_count
    assert not gw.served("monitoring.coreos.com/v1", "PrometheusRule")  # cached
    assert gw.request_count == before
    served = gw.discover()
    assert ("apps/v1", "Deployment") in served
    assert ("autoscaling/v2", "HorizontalPodAutoscaler") in served
    assert not any(api == "monitoring.coreos.com/v1" for api, _ in served)


# -- errors, retries -------------------------------------------------------------------------
def test_forbidden_names_verb_and_resource(gw: KubeGateway, emulator: Emulator) -> None:
    gw.apply(_deployment())
    emulator.deny("patch", "deployments")
    with pytest.raises(ForbiddenError) as err:
        gw.scale("Deployment", "web", 2)
    assert "patch" in err.value.message and "deployments.apps/scale" in err.value.message
    assert err.value.exit_code == 1


def test_500s_and_dropped_connections_are_retried(gw: KubeGateway, emulator: Emulator) -> None:
    gw.apply(_deployment())
    emulator.fail_next("GET", "/deployments/web$", 500, count=2)
    emulator.fail_next("PATCH", "/deployments/web$", 0, count=1)  # connection dropped
    assert gw.get("Deployment", "web")["metadata"]["name"] == "web"
    assert gw.apply(_deployment(image="nginx:2"))["metadata"]["generation"] == 2
    assert len(emulator.requests_matching("GET", "/deployments/web$")) == 3


def test_persistent_500_gives_up_with_a_clear_error(gw: KubeGateway, emulator: Emulator) -> None:
    emulator.fail_next("GET", "/deployments/web$", 503, count=10)
    with pytest.raises(TradewiseError) as err:
        gw.get("Deployment", "web")
    assert "503" in err.value.message and "4 times" in err.value.message
    assert len(emulator.requests_matching("GET", "/deployments/web$")) == 4


def test_409_on_update_is_retried_on_a_fresh_read(gw: KubeGateway, emulator: Emulator) -> None:
    gw.apply(_deployment())
    emulator.fail_next("PUT", "/deployments/web$", 409, count=1)
    seen: list[str] = []

    def mutate(obj: dict[str, Any]) -> None:
        seen.append(obj["metadata"]["resourceVersion"])
        obj["metadata"].setdefault("annotations", {})["touched"] = "yes"

    result = gw.update("Deployment", "web", mutate)
    assert result["metadata"]["annotations"]["touched"] == "yes"
    assert len(seen) == 2  # read again after the conflict
    emulator.fail_next("PUT", "/deployments/web$", 409, count=10)
    with pytest.raises(ConflictError):
        gw.update("Deployment", "web", mutate, attempts=3)


def test_real_409_on_a_stale_write(gw: KubeGateway, emulator: Emulator) -> None:
    gw.apply(_deployment())
    emulator.fail_next("PATCH", "/deployments/web$", 409, count=2)
    with pytest.raises(ConflictError):
        gw.apply(_deployment(image="nginx:3"))
    emulator.fail_next("PATCH", "/deployments/web$", 409, count=1)
    assert gw.apply(_deployment(image="nginx:3"))["metadata"]["generation"] == 2


def test_unreachable_cluster_names_server_and_context(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    emu = Emulator()
    emu._server = type("S", (), {"server_address": ("127.0.0.1", port)})()  # type: ignore[assignment]
    path = emu.write_kubeconfig(tmp_path / "kc", contexts=("gone",))
    monkeypatch.setenv("KUBECONFIG", str(path))
    gw = KubeGateway.from_kubeconfig(retries=2, backoff=0.01)
    start = time.monotonic()
    with pytest.raises(UnreachableError) as err:
        gw.list("Deployment")
    assert f"127.0.0.1:{port}" in err.value.message and "context gone" in err.value.message
    assert err.value.exit_code == 3
    assert time.monotonic() - start < 5


# -- watches ---------------------------------------------------------------------------------
def test_watch_resumes_after_a_drop_without_losing_events(
    gw: KubeGateway, emulator: Emulator
) -> None:
    rv = gw.apply(_deployment())["metadata"]["resourceVersion"]
    emulator.drop_watch("/deployments$", after_events=1)

    def writes() -> None:
        for i in range(3):
            time.sleep(0.05)
            gw.scale("Deployment", "web", i + 2)

    threading.Thread(target=writes).start()
    replicas = []
    for event in gw.watch(["Deployment"], since_rv=rv, timeout=3):
        replicas.append(event.obj["spec"]["replicas"])
        if len(replicas) == 3:
            break
    assert replicas == [2, 3, 4]
    watches = emulator.requests_matching("GET", "/deployments$")
    assert [r.query.get("resourceVersion") for r in watches if r.watch][0] == rv
    assert sum(1 for r in watches if r.watch) >= 2  # reconnected


def test_watch_relists_on_410_gone(gw: KubeGateway, emulator: Emulator) -> None:
    rv = gw.apply(_deployment())["metadata"]["resourceVersion"]
    gw.apply(_deployment("second"))
    emulator.store.compact()
    events = []
    for event in gw.watch(["Deployment"], since_rv=rv, timeout=2):
        events.append((event.type, event.name))
        if len(events) == 2:
            break
    assert events == [("SYNC", "second"), ("SYNC", "web")]


def test_watch_ends_at_its_timeout(gw: KubeGateway) -> None:
    start = time.monotonic()
    assert list(gw.watch(["Deployment", "Pod"], since_rv="1", timeout=0.5)) == []
    assert time.monotonic() - start < 2


def test_watch_starts_with_current_objects_without_since(gw: KubeGateway) -> None:
    gw.apply(_deployment())
    stream = gw.watch(["Deployment"], timeout=2)
    first = next(iter(stream))
    assert (first.type, first.name, first.kind) == ("ADDED", "web", "Deployment")


def test_events_filtered_by_involved_object(gw: KubeGateway, emulator: Emulator) -> None:
    emulator.controllers.event(NS, "Pod", "p1", "FailedScheduling", "no nodes")
    emulator.controllers.event(NS, "Pod", "p2", "Pulled", "ok", type="Normal")
    assert [e["reason"] for e in gw.events("p1")] == ["FailedScheduling"]
    assert [e["involvedObject"]["name"] for e in gw.events(warnings_only=True)] == ["p1"]


def test_requests_are_counted(gw: KubeGateway, emulator: Emulator) -> None:
    emulator.reset_requests()
    gw.apply(_deployment())
    gw.get("Deployment", "web")
    assert gw.request_count == len(emulator.requests) == 2
    assert gw.log.entries[0][0] == "PATCH"
