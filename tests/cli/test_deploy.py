"""``tradewise deploy`` / ``rollback`` / ``history`` against the emulator over real HTTP.

The emulator's auto controller plays the Deployment/StatefulSet controllers and the kubelet:
every workload becomes ready shortly after each change, unless its image contains a key of
``fail_images`` (then its new pod fails with that reason and a Warning Event).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner, Result

from tests.helpers import free_port
from tests.k8s_emulator import Emulator
from tradewise_ops.cli.main import app

pytest_plugins = ["tests.k8s_emulator.fixtures"]

ROOT = Path(__file__).resolve().parents[2]
CONFIG = str(ROOT / "tradewise.yaml")
NS = "tradewise-ai"
API = "tradewise-api-deployment"
WORKER = "tradewise-worker-deployment"
WRITES = ("POST", "PUT", "PATCH", "DELETE")


def run(*args: str, config: str = CONFIG) -> Result:
    return CliRunner().invoke(app, ["--config", config, *args])


@pytest.fixture
def cluster(emulator: Emulator, kubeconfig: Path) -> Emulator:
    emulator.controllers.auto(delay=0.01)
    return emulator


def image_of(emu: Emulator, name: str) -> str:
    obj = emu.get("Deployment", NS, name)
    assert obj is not None, name
    return str(obj["spec"]["template"]["spec"]["containers"][0]["image"])


def releases(emu: Emulator) -> dict[int, str]:
    """revision -> status, from the release records in the cluster."""
    out = {}
    for secret in emu.list("Secret", NS, "owner=tradewise"):
        labels = secret["metadata"]["labels"]
        out[int(labels["tradewise.io/revision"])] = labels["tradewise.io/status"]
    return out


def real_writes(emu: Emulator) -> list[str]:
    """Writes that change the environment (the release lock's Lease is not one of them)."""
    return [
        f"{r.method} {r.path}"
        for r in emu.requests
        if r.method in WRITES and r.query.get("dryRun") != "All" and "/leases" not in r.path
    ]


def test_first_deploy_applies_records_and_waits(cluster: Emulator) -> None:
    result = run("deploy", "staging", "--tag", "v1.0", "--timeout", "20s")
    assert result.exit_code == 0, result.stderr
    assert image_of(cluster, API).endswith("tradewise-ai:v1.0")
    assert image_of(cluster, WORKER).endswith("tradewise-ai-worker:v1.0")
    assert releases(cluster) == {1: "deployed"}
    for name in (API, WORKER, "tradewise-precompute-deployment"):
        status = cluster.get("Deployment", NS, name)["status"]  # type: ignore[index]
        assert status["readyReplicas"] == status["replicas"] >= 1
    assert "revision 1 is deployed and healthy" in result.stderr
    assert f"Deployment/{API}: 0/" in result.stderr  # live progress while waiting
    assert f"Deployment/{API}" in result.stdout and "ready" in result.stdout
    # server-side apply with our field manager, in dependency order
    patches = [r for r in cluster.requests if r.method == "PATCH" and "fieldManager" in r.query]
    assert {r.query["fieldManager"] for r in patches} == {"tradewise"}
    order = [r.path.split("/")[-2] for r in patches if r.content_type.endswith("yaml")]
    assert order.index("statefulsets") < order.index("deployments")
    assert order.index("configmaps") < order.index("deployments")
    assert order.index("deployments") < order.index("horizontalpodautoscalers")


def test_upgrade_supersedes_and_json_is_one_document(cluster: Emulator) -> None:
    assert run("deploy", "staging", "--tag", "v1.0").exit_code == 0
    generation = cluster.get("Deployment", NS, API)["metadata"]["generation"]  # type: ignore[index]
    result = run("deploy", "staging", "--tag", "v1.1", "-o", "json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert (doc["revision"], doc["status"], doc["tag"]) == (2, "deployed", "v1.1")
    assert all(w["done"] for w in doc["workloads"]) and len(doc["workloads"]) == 6
    assert image_of(cluster, API).endswith(":v1.1")
    assert cluster.get("Deployment", NS, API)["metadata"]["generation"] > generation  # type: ignore[index]
    assert releases(cluster) == {1: "superseded", 2: "deployed"}
    # the request budget: at most 2 per object plus the watches (4)
    assert doc["requests"] <= 2 * doc["applied"] + 4


def test_failed_rollout_fails_fast_naming_pod_and_reason(cluster: Emulator) -> None:
    assert run("deploy", "staging", "--tag", "v1.0").exit_code == 0
    cluster.controllers.fail_images["broken"] = "ImagePullBackOff"
    start = time.monotonic()
    result = run("deploy", "staging", "--tag", "broken", "--timeout", "60s")
    assert result.exit_code == 1
    assert time.monotonic() - start < 15  # failed fast, not at the timeout
    assert "ImagePullBackOff" in result.stderr
    assert f"pod {API}-" in result.stderr or f"pod {WORKER}-" in result.stderr
    assert releases(cluster) == {1: "deployed", 2: "failed"}
    assert image_of(cluster, API).endswith(":broken")  # no --atomic: left as it is


@pytest.mark.parametrize("reason", ["ErrImagePull", "CrashLoopBackOff", "FailedScheduling"])
def test_other_failures_are_named(cluster: Emulator, reason: str) -> None:
    cluster.controllers.fail_images[":bad"] = reason
    result = run("deploy", "staging", "--tag", "bad", "--timeout", "60s", "-o", "json")
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    failures = [w for w in doc["workloads"] if w["failure"]]
    assert failures and failures[0]["failure"] == reason and failures[0]["pod"]
    assert reason in result.stderr


def test_atomic_rolls_back_to_the_previous_release(cluster: Emulator) -> None:
    assert run("deploy", "staging", "--tag", "v1.0").exit_code == 0
    cluster.controllers.fail_images["broken"] = "ImagePullBackOff"
    result = run("deploy", "staging", "--tag", "broken", "--atomic", "--timeout", "30s")
    assert result.exit_code == 1
    assert "rolling back to revision 1" in result.stderr
    assert "rolled back as revision 3 (v1.0) and is healthy" in result.stderr
    assert image_of(cluster, API).endswith(":v1.0")
    assert releases(cluster) == {1: "superseded", 2: "failed", 3: "deployed"}
    history = run("history", "staging", "-o", "json")
    rows = json.loads(history.stdout)
    assert rows[2]["change_cause"] == "rollback to revision 1"


def test_rollback_to_a_chosen_revision_and_history(cluster: Emulator) -> None:
    for tag in ("v1", "v2", "v3"):
        assert run("deploy", "staging", "--tag", tag).exit_code == 0
    result = run("rollback", "staging", "--to-revision", "1")
    assert result.exit_code == 0, result.stderr
    assert image_of(cluster, API).endswith(":v1")
    assert releases(cluster) == {1: "superseded", 2: "superseded", 3: "rolled-back", 4: "deployed"}
    again = run("rollback", "staging")  # the previous healthy one: revision 3 (v3)
    assert again.exit_code == 0, again.stderr
    assert image_of(cluster, API).endswith(":v3")
    history = run("history", "staging")
    assert history.exit_code == 0
    assert "rollback to revision 1" in history.stdout and "rolled-back" in history.stdout
    listed = json.loads(run("history", "staging", "-o", "json").stdout)
    assert [r["revision"] for r in listed] == [1, 2, 3, 4, 5]
    assert {r["user"] for r in listed} <= {"tester", __import__("os").environ.get("USER")}
    missing = run("rollback", "staging", "--to-revision", "42")
    assert missing.exit_code == 1 and "no revision 42" in missing.stderr


def test_prune_removes_what_is_no_longer_rendered(cluster: Emulator, tmp_path: Path) -> None:
    assert run("deploy", "staging", "--tag", "v1").exit_code == 0
    assert cluster.get("CronJob", NS, "tradewise-scale-market-open") is not None
    foreign = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "not-ours", "namespace": NS},
        "data": {"a": "1"},
    }
    cluster.put(foreign)
    raw = yaml.safe_load(Path(CONFIG).read_text())
    raw["schedules"] = []
    smaller = tmp_path / "tradewise.yaml"
    smaller.write_text(yaml.safe_dump(raw))
    result = run("deploy", "staging", "--tag", "v1", "-o", "json", config=str(smaller))
    assert result.exit_code == 0, result.stderr
    pruned = set(json.loads(result.stdout)["pruned"])
    # the CronJobs, and the scaler's RBAC that only they used
    assert {
        "CronJob/tradewise-scale-after-close",
        "CronJob/tradewise-scale-market-open",
        "Role/tradewise-scaler",
    } <= pruned
    assert not any(p.startswith(("Deployment/", "Namespace/")) for p in pruned)
    assert cluster.get("CronJob", NS, "tradewise-scale-market-open") is None
    assert cluster.get("ConfigMap", NS, "not-ours") is not None
    assert cluster.get("Namespace", None, NS) is not None


def test_409_and_500_are_retried(cluster: Emulator) -> None:
    cluster.fail_next("PATCH", f"/deployments/{API}$", 500, count=2)
    cluster.fail_next("PATCH", "/configmaps/tradewise-config$", 409, count=1)
    cluster.fail_next("GET", "/secrets$", 503, count=1)
    result = run("deploy", "staging", "--tag", "v1")
    assert result.exit_code == 0, result.stderr
    assert len(cluster.requests_matching("PATCH", f"/deployments/{API}$")) == 3
    assert len(cluster.requests_matching("PATCH", "/configmaps/tradewise-config$")) == 2
    assert image_of(cluster, API).endswith(":v1")


def test_a_watch_dropped_mid_wait_resumes(emulator: Emulator, kubeconfig: Path) -> None:
    emulator.drop_watch("/deployments$", after_events=2)
    emulator.controllers.auto(delay=0.2)  # slow enough that the drop comes before ready
    result = run("deploy", "staging", "--tag", "v1", "--timeout", "30s")
    assert result.exit_code == 0, result.stderr
    watches = [r for r in emulator.requests_matching("GET", "/deployments$") if r.watch]
    assert len(watches) >= 2
    assert all(r.query.get("resourceVersion") for r in watches)
    assert int(watches[1].query["resourceVersion"]) > int(watches[0].query["resourceVersion"])


def test_unreachable_cluster_exits_3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "staging", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "staging",
            }
        )
    )
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    result = run("deploy", "staging", "--tag", "v1")
    assert result.exit_code == 3
    assert f"127.0.0.1:{port}" in result.stderr and "context staging" in result.stderr
    assert "Traceback" not in result.stderr


def test_rbac_403_names_verb_and_resource(cluster: Emulator) -> None:
    cluster.deny("patch", "deployments")
    result = run("deploy", "staging", "--tag", "v1")
    assert result.exit_code == 1
    assert "RBAC refused to patch deployments.apps" in result.stderr
    assert "applied" in result.stderr and "recorded as failed" in result.stderr
    assert releases(cluster) == {1: "failed"}


def test_dry_run_changes_nothing(cluster: Emulator) -> None:
    cluster.reset_requests()
    result = run("deploy", "staging", "--tag", "v1", "--dry-run", "-o", "json")
    assert result.exit_code == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["dry_run"] is True and plan["counts"]["create"] >= 30
    assert real_writes(cluster) == []
    assert run("deploy", "staging", "--tag", "v1").exit_code == 0
    cluster.reset_requests()
    secrets_before = releases(cluster)
    result = run("deploy", "staging", "--tag", "v2", "--dry-run", "-o", "json")
    assert result.exit_code == 0, result.stderr
    actions = {(o["kind"], o["name"]): o["action"] for o in json.loads(result.stdout)["objects"]}
    assert actions[("Deployment", API)] == "update"
    assert actions[("Service", "tradewise-api-service")] == "unchanged"
    assert real_writes(cluster) == []
    assert releases(cluster) == secrets_before
    assert image_of(cluster, API).endswith(":v1")
    table = run("deploy", "staging", "--tag", "v2", "--dry-run")
    assert "update" in table.stdout and "nothing was changed" in table.stderr


def test_unserved_kinds_are_skipped_or_fail_strict_before_any_change(
    bare_emulator: Emulator, bare_kubeconfig: Path
) -> None:
    bare_emulator.controllers.auto(delay=0.01)
    strict = run("deploy", "staging", "--tag", "v1", "--strict")
    assert strict.exit_code == 1
    assert "ServiceMonitor" in strict.stderr and "nothing was applied" in strict.stderr
    assert real_writes(bare_emulator) == []
    result = run("deploy", "staging", "--tag", "v1", "-o", "json")
    assert result.exit_code == 0, result.stderr
    skipped = {s["kind"] for s in json.loads(result.stdout)["skipped"]}
    # the VPAs (issue 16) are optional too: this emulator serves no autoscaling.k8s.io
    assert skipped == {"ServiceMonitor", "PrometheusRule", "VerticalPodAutoscaler"}
    assert "skipping ServiceMonitor/tradewise-api" in result.stderr


def test_prod_asks_for_confirmation_and_a_pinned_tag(cluster: Emulator) -> None:
    refused = run("deploy", "prod", "--tag", "v1")
    assert refused.exit_code == 2 and "--yes" in refused.stderr
    assert real_writes(cluster) == []
    unpinned = run("deploy", "prod", "--yes")
    assert unpinned.exit_code == 2 and "pinned" in unpinned.stderr
    ok = run("deploy", "production", "--tag", "v1", "--yes")
    assert ok.exit_code == 0, ok.stderr


def test_hpa_chosen_replicas_are_kept_and_awaited(cluster: Emulator) -> None:
    assert run("deploy", "staging", "--tag", "v1").exit_code == 0
    cluster.controllers.set_hpa(NS, "tradewise-api-hpa", 5)
    result = run("deploy", "staging", "--tag", "v2", "-o", "json")
    assert result.exit_code == 0, result.stderr
    api = next(w for w in json.loads(result.stdout)["workloads"] if w["name"] == API)
    assert api["desired"] == api["ready"] == api["available"] == 5
    assert cluster.get("Deployment", NS, API)["spec"]["replicas"] == 5  # type: ignore[index]


def test_timeout_when_nothing_becomes_ready(emulator: Emulator, kubeconfig: Path) -> None:
    start = time.monotonic()
    result = run("deploy", "staging", "--tag", "v1", "--timeout", "1s")
    assert result.exit_code == 1
    assert "not healthy after 1s" in result.stderr
    assert time.monotonic() - start < 8
    assert releases(emulator) == {1: "failed"}


def test_no_wait_returns_after_applying(emulator: Emulator, kubeconfig: Path) -> None:
    result = run("deploy", "staging", "--tag", "v1", "--no-wait", "-o", "json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["waited"] is False and doc["status"] == "deployed"


def test_deploy_keeps_the_running_tag_when_none_is_given(cluster: Emulator) -> None:
    assert run("deploy", "staging", "--tag", "v7").exit_code == 0
    result = run("deploy", "staging")
    assert result.exit_code == 0, result.stderr
    assert "keeping the running release's tag v7" in result.stderr
    assert image_of(cluster, API).endswith(":v7")


def test_bad_timeout_is_exit_2(cluster: Emulator) -> None:
    result = run("deploy", "staging", "--timeout", "soon")
    assert result.exit_code == 2 and "--timeout" in result.stderr


def test_build_needs_a_tag(cluster: Emulator) -> None:
    result = run("deploy", "staging", "--build")
    assert result.exit_code == 2 and "--build needs --tag" in result.stderr
    assert real_writes(cluster) == []


def test_deploy_local_dry_run_uses_the_local_stack() -> None:
    result = run("deploy", "local", "--dry-run", "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {"environment": "local", "kind": "local", "dry_run": True}


def test_concurrent_deploy_loses_the_revision_race(cluster: Emulator) -> None:
    import threading

    from tradewise_ops.core import release as rel

    assert run("deploy", "staging", "--tag", "v1").exit_code == 0
    # another deploy records revision 2 between our read of the history and our write
    cluster.reset_requests()
    cluster.delay_next("POST", "/secrets$", 0.5)
    other = rel.to_secret(
        rel.Release(2, "staging", NS, "v9", "2026-01-01T00:00:00Z", "else", "x", rel.PENDING)
    )

    def racer() -> None:
        cluster.wait_for(lambda: bool(cluster.requests_matching("POST", "/secrets$")), 20)
        cluster.put(other)

    threading.Thread(target=racer).start()
    result = run("deploy", "staging", "--tag", "v2")
    assert result.exit_code == 1, result.stderr + str(releases(cluster))
    assert "another deploy or rollback is running" in result.stderr
    assert image_of(cluster, API).endswith(":v1")  # stopped before any workload was applied


def test_unknown_context_is_a_config_error(cluster: Emulator) -> None:
    result = run("deploy", "staging", "--tag", "v1", "--context", "nope")
    assert result.exit_code == 2
    assert "context 'nope'" in result.stderr and "staging" in result.stderr


def test_rbac_refusing_the_watch_fails_the_wait_clearly(
    emulator: Emulator, kubeconfig: Path
) -> None:
    cluster = emulator
    cluster.controllers.auto(delay=3)  # the refusal comes long before the rollout is done
    cluster.deny("watch", "pods")
    result = run("deploy", "staging", "--tag", "v1", "--timeout", "20s")
    assert result.exit_code == 1
    assert "RBAC refused to watch pods" in result.stderr
    assert releases(cluster) == {1: "failed"}


def test_cluster_gone_mid_wait_exits_3(emulator: Emulator, kubeconfig: Path) -> None:
    import threading

    def stop_when_waiting() -> None:
        emulator.wait_for(
            lambda: any(r.watch for r in emulator.requests_matching("GET")), timeout=20
        )
        emulator.stop()

    threading.Thread(target=stop_when_waiting).start()
    result = run("deploy", "staging", "--tag", "v1", "--timeout", "30s")
    assert result.exit_code == 3, result.stderr
    assert "keeps dropping" in result.stderr or "cannot reach" in result.stderr


def test_atomic_first_deploy_has_nothing_to_roll_back_to(cluster: Emulator) -> None:
    cluster.controllers.fail_images["broken"] = "ImagePullBackOff"
    result = run("deploy", "staging", "--tag", "broken", "--atomic")
    assert result.exit_code == 1
    assert "--atomic could not roll back" in result.stderr
    assert releases(cluster) == {1: "failed"}


def test_rollback_in_prod_asks_first(cluster: Emulator) -> None:
    for tag in ("v1", "v2"):
        assert run("deploy", "prod", "--tag", tag, "--yes").exit_code == 0
    refused = run("rollback", "prod")
    assert refused.exit_code == 2 and "--yes" in refused.stderr
    assert image_of(cluster, API).endswith(":v2")
    ok = run("rollback", "prod", "--yes", "-o", "json")
    assert ok.exit_code == 0 and json.loads(ok.stdout)["tag"] == "v1"
    assert image_of(cluster, API).endswith(":v1")


def test_lost_answers_to_writes_are_retried_safely(cluster: Emulator) -> None:
    # the server did the write, the client never heard: the retry must not break the deploy
    cluster.fail_next("POST", "/secrets$", 0, after_processing=True)
    cluster.fail_next("PATCH", f"/deployments/{API}$", 0, after_processing=True)
    result = run("deploy", "staging", "--tag", "v1")
    assert result.exit_code == 0, result.stderr
    assert releases(cluster) == {1: "deployed"}
    assert len(cluster.requests_matching("POST", "/secrets$")) == 2


# -- a traffic profile (tradewise scale) survives deploy and rollback ----------------------------
API_HPA, WORKER_HPA = "tradewise-api-hpa", "tradewise-worker-hpa"
PRE = "tradewise-precompute-deployment"
PROFILE = "tradewise.io/traffic-profile"
APPLIED_AT = "tradewise.io/traffic-profile-applied-at"


def bounds(emu: Emulator, name: str) -> tuple[int, int]:
    hpa = emu.get("HorizontalPodAutoscaler", NS, name)
    assert hpa is not None, name
    return hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]


def annotations(emu: Emulator, kind: str, name: str) -> dict[str, str]:
    obj = emu.get(kind, NS, name)
    assert obj is not None, name
    return dict(obj["metadata"].get("annotations") or {})


def profile_in_status(emu: Emulator) -> str | None:
    doc = json.loads(run("scale", "status", "--env", "staging", "-o", "json").stdout)
    return doc["profile"]["name"] if doc.get("profile") else None


def test_deploy_keeps_a_traffic_profiles_hpa_bounds(cluster: Emulator) -> None:
    assert run("deploy", "staging", "--tag", "v1.0").exit_code == 0
    assert bounds(cluster, API_HPA) == (2, 6)  # the config's
    high = run("scale", "traffic", "high", "--env", "staging", "--yes")
    assert high.exit_code == 0, high.stderr
    assert bounds(cluster, API_HPA) == (10, 10) and bounds(cluster, WORKER_HPA) == (4, 4)

    dry = run("deploy", "staging", "--tag", "v1.1", "--dry-run")
    assert dry.exit_code == 0, dry.stderr
    assert "keeps traffic profile high: min 10, max 10" in dry.stdout + dry.stderr
    doc = json.loads(run("deploy", "staging", "--tag", "v1.1", "--dry-run", "-o", "json").stdout)
    held = {(h["name"], h["kept"]): h["live"] for h in doc["scaling"]}
    assert held[(API_HPA, True)] == {"minReplicas": 10, "maxReplicas": 10}
    assert held[(WORKER_HPA, True)] == {"minReplicas": 4, "maxReplicas": 4}
    hpa_item = next(o for o in doc["objects"] if o["name"] == API_HPA)
    assert hpa_item["action"] == "unchanged"  # the bounds stay: nothing else differs
    assert run("diff", "staging", "--tag", "v1.0").exit_code == 0  # diff predicts the same

    cluster.reset_requests()
    result = run("deploy", "staging", "--tag", "v1.1", "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert "keeps traffic profile high" in result.stderr
    assert bounds(cluster, API_HPA) == (10, 10) and bounds(cluster, WORKER_HPA) == (4, 4)
    assert image_of(cluster, API).endswith(":v1.1")
    for kind, name in (("HorizontalPodAutoscaler", API_HPA), ("Deployment", API)):
        assert annotations(cluster, kind, name)[PROFILE] == "high"
        assert APPLIED_AT in annotations(cluster, kind, name)
    assert profile_in_status(cluster) == "high"
    out = json.loads(result.stdout)
    assert out["requests"] <= 2 * out["applied"] + 4  # the one extra list per kind fits
    # the release record keeps the config's bounds (a later reset or rollback starts from them)
    from tradewise_ops.adapters.kube import KubeGateway
    from tradewise_ops.adapters.release_store import ReleaseStore

    gw = KubeGateway.from_kubeconfig(context="staging", namespace=NS)
    record = ReleaseStore(gw, "staging").list()[-1]
    hpa = next(m for m in record.manifests if m["metadata"]["name"] == API_HPA)
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 6)


def test_reset_scaling_applies_the_config_and_drops_the_profile(cluster: Emulator) -> None:
    assert run("deploy", "staging", "--tag", "v1.0").exit_code == 0
    assert run("scale", "traffic", "high", "--env", "staging", "--yes").exit_code == 0
    dry = run("deploy", "staging", "--reset-scaling", "--dry-run")
    assert dry.exit_code == 0, dry.stderr
    assert "resets traffic profile high: min 10 -> 2, max 10 -> 6" in dry.stdout + dry.stderr
    assert bounds(cluster, API_HPA) == (10, 10)  # a dry run
    result = run("deploy", "staging", "--reset-scaling")
    assert result.exit_code == 0, result.stderr
    assert bounds(cluster, API_HPA) == (2, 6) and bounds(cluster, WORKER_HPA) == (1, 4)
    for kind, name in (
        ("HorizontalPodAutoscaler", API_HPA),
        ("HorizontalPodAutoscaler", WORKER_HPA),
        ("Deployment", API),
        ("Deployment", WORKER),
    ):
        assert PROFILE not in annotations(cluster, kind, name)
        assert APPLIED_AT not in annotations(cluster, kind, name)
    assert profile_in_status(cluster) is None
    # nothing held any more: the next deploy says nothing about scaling
    again = run("deploy", "staging", "-o", "json")
    assert again.exit_code == 0 and json.loads(again.stdout)["scaling"] == []


def test_manual_floor_and_emergency_down_are_kept_too(cluster: Emulator) -> None:
    assert run("deploy", "staging", "--tag", "v1.0").exit_code == 0
    assert run("scale", "api", "5", "--env", "staging", "--yes").exit_code == 0
    assert bounds(cluster, API_HPA) == (5, 6)
    result = run("deploy", "staging", "--tag", "v1.1")
    assert result.exit_code == 0, result.stderr
    assert bounds(cluster, API_HPA) == (5, 6)
    assert "keeps the manual scale" in result.stderr

    down = run("scale", "emergency-down", "--env", "staging", "--yes")
    assert down.exit_code == 0, down.stderr
    assert cluster.get("Deployment", NS, PRE)["spec"]["replicas"] == 0  # type: ignore[index]
    result = run("deploy", "staging", "--tag", "v1.2")
    assert result.exit_code == 0, result.stderr
    assert bounds(cluster, API_HPA) == (2, 2) and bounds(cluster, WORKER_HPA) == (1, 1)
    # precompute stays stopped: the deploy does not undo the emergency
    assert cluster.get("Deployment", NS, PRE)["spec"]["replicas"] == 0  # type: ignore[index]
    assert "keeps emergency-down: replicas 0" in result.stderr


def test_rollback_keeps_the_profile_unless_reset(cluster: Emulator) -> None:
    for tag in ("v1", "v2"):
        assert run("deploy", "staging", "--tag", tag).exit_code == 0
    assert run("scale", "traffic", "medium", "--env", "staging", "--yes").exit_code == 0
    assert bounds(cluster, API_HPA) == (5, 6)
    result = run("rollback", "staging")
    assert result.exit_code == 0, result.stderr
    assert image_of(cluster, API).endswith(":v1")
    assert bounds(cluster, API_HPA) == (5, 6) and bounds(cluster, WORKER_HPA) == (2, 4)
    assert annotations(cluster, "HorizontalPodAutoscaler", API_HPA)[PROFILE] == "medium"
    assert "keeps traffic profile medium: min 5, max 6" in result.stderr
    reset = run("rollback", "staging", "--to-revision", "2", "--reset-scaling")
    assert reset.exit_code == 0, reset.stderr
    assert bounds(cluster, API_HPA) == (2, 6) and bounds(cluster, WORKER_HPA) == (1, 4)
    assert PROFILE not in annotations(cluster, "HorizontalPodAutoscaler", API_HPA)


# -- deploy --strategy blue-green ----------------------------------------------------------------
SERVICE = "tradewise-api-service"
BLUE, GREEN = f"{API}-blue", f"{API}-green"


def service_slot(emu: Emulator) -> str | None:
    svc = emu.get("Service", NS, SERVICE)
    assert svc is not None
    return svc["spec"]["selector"].get("tradewise.io/slot")


def hpa_target(emu: Emulator) -> str:
    hpa = emu.get("HorizontalPodAutoscaler", NS, API_HPA)
    assert hpa is not None
    return str(hpa["spec"]["scaleTargetRef"]["name"])


def test_blue_green_upgrades_switch_slots_and_rollback_switches_back(cluster: Emulator) -> None:
    assert run("deploy", "staging", "--tag", "v1").exit_code == 0
    dry = run("deploy", "staging", "--tag", "v2", "--strategy", "blue-green", "--dry-run")
    assert dry.exit_code == 0, dry.stderr
    assert "blue-green into slot blue" in dry.stdout and BLUE in dry.stdout
    assert cluster.get("Deployment", NS, BLUE) is None  # a dry run

    first = run("deploy", "staging", "--tag", "v2", "--strategy", "blue-green", "--no-verify")
    assert first.exit_code == 0, first.stderr
    assert "serving from slot blue" in first.stderr
    assert (service_slot(cluster), hpa_target(cluster)) == ("blue", BLUE)
    assert image_of(cluster, BLUE).endswith(":v2")
    assert cluster.get("Deployment", NS, API) is None  # the rolling Deployment went after
    assert run("diff", "staging").exit_code == 0  # diff compares with the live slot

    # no --strategy: the running release's; the other slot this time
    second = run("deploy", "staging", "--tag", "v3", "--no-verify", "-o", "json")
    assert second.exit_code == 0, second.stderr
    assert "keeping the running release's strategy blue-green" in second.stderr
    assert (service_slot(cluster), hpa_target(cluster)) == ("green", GREEN)
    assert image_of(cluster, GREEN).endswith(":v3")
    # the old slot stays for release.keep_previous (an instant rollback switches back to it)
    kept = annotations(cluster, "Deployment", BLUE)
    assert kept["tradewise.io/previous-revision"] == "2" and "tradewise.io/previous-until" in kept
    doc = json.loads(second.stdout)
    assert doc["requests"] <= 2 * doc["applied"] + 4
    listed = json.loads(run("history", "staging", "-o", "json").stdout)
    assert [(r["strategy"], r["slot"]) for r in listed] == [
        ("rolling", None),
        ("blue-green", "blue"),
        ("blue-green", "green"),
    ]

    # scaling finds the API in its slot (through the HPA's target)
    scaled = run("scale", "api", "4", "--env", "staging", "--yes")
    assert scaled.exit_code == 0, scaled.stderr
    assert cluster.get("Deployment", NS, GREEN)["spec"]["replicas"] == 4  # type: ignore[index]
    assert bounds(cluster, API_HPA)[0] == 4
    status = json.loads(run("scale", "status", "--env", "staging", "-o", "json").stdout)
    assert status["profile"]["by_component"]["api"] == "manual"

    # to revision 2 (v2, blue-green), the whole release: into slot blue again (the kept one
    # is retired first), with the live API's replicas
    back = run("rollback", "staging", "--no-instant")
    assert back.exit_code == 0, back.stderr
    assert (service_slot(cluster), hpa_target(cluster)) == ("blue", BLUE)
    assert image_of(cluster, BLUE).endswith(":v2") and cluster.get("Deployment", NS, GREEN) is None
    blue = cluster.get("Deployment", NS, BLUE)
    assert blue is not None and blue["spec"]["replicas"] == 4  # the live API's count
    assert blue["metadata"]["annotations"][PROFILE] == "manual"  # the profile moved along
    assert bounds(cluster, API_HPA)[0] == 4

    rolling = run("deploy", "staging", "--tag", "v4", "--strategy", "rolling")
    assert rolling.exit_code == 0, rolling.stderr
    assert service_slot(cluster) is None and hpa_target(cluster) == API
    assert cluster.get("Deployment", NS, BLUE) is None  # deleted once the rolling API was ready


def test_blue_green_failed_slot_leaves_traffic_on_the_old_one(cluster: Emulator) -> None:
    first = run("deploy", "staging", "--tag", "v1", "--strategy", "blue-green", "--no-verify")
    assert first.exit_code == 0, first.stderr
    assert service_slot(cluster) == "blue"
    cluster.reset_requests()
    cluster.controllers.fail_images[":broken"] = "ImagePullBackOff"
    result = run("deploy", "staging", "--tag", "broken", "--timeout", "60s")
    assert result.exit_code == 1
    assert "ImagePullBackOff" in result.stderr
    assert "traffic stays on slot blue" in result.stderr
    assert f"the new slot green ({GREEN}) was deleted" in result.stderr
    assert (service_slot(cluster), hpa_target(cluster)) == ("blue", BLUE)
    assert image_of(cluster, BLUE).endswith(":v1")
    assert cluster.get("Deployment", NS, GREEN) is None
    # the Service and the HPA were never written: the switch did not happen
    touched = [w for w in real_writes(cluster) if SERVICE in w or API_HPA in w]
    assert touched == []
    assert releases(cluster) == {1: "deployed", 2: "failed"}


def test_blue_green_needs_wait_and_a_known_strategy(cluster: Emulator) -> None:
    no_wait = run("deploy", "staging", "--strategy", "blue-green", "--no-wait")
    assert no_wait.exit_code == 2 and "needs --wait" in no_wait.stderr
    bad = run("deploy", "staging", "--strategy", "purple")
    assert bad.exit_code == 2 and "rolling, blue-green" in bad.stderr
    assert real_writes(cluster) == []
