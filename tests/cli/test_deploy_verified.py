"""Blue-green releases decided by evidence: real verification load against the real app.

The Kubernetes side is the emulator (real HTTP, a kubeconfig; its auto controller makes pods
ready). The new slot's preview is stood in for by the bundled app under gunicorn on loopback,
passed as ``--verify-url``: a good one, one slowed with ``TRADEWISE_INJECT_LATENCY_MS`` (its p95
misses the 500 ms SLO) and one whose readiness fails (Redis unreachable). The verification is
real: smoke requests, then Locust in its child process for ``release.verify.duration``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner, Result

from tests.helpers import free_port
from tests.k8s_emulator import Emulator
from tests.loadtest_app import ApiServer
from tradewise_ops.adapters.kube import KubeGateway
from tradewise_ops.cli.main import app

pytest_plugins = ["tests.k8s_emulator.fixtures"]

ROOT = Path(__file__).resolve().parents[2]
NS = "tradewise-ai"
API = "tradewise-api-deployment"
BLUE, GREEN = f"{API}-blue", f"{API}-green"
SERVICE, HPA = "tradewise-api-service", "tradewise-api-hpa"
PREVIEW, PREVIEW_INGRESS = "tradewise-api-preview", "tradewise-ingress-preview"
UNTIL, KEPT_REVISION = "tradewise.io/previous-until", "tradewise.io/previous-revision"
VERIFY_SECONDS = 3


def write_config(path: Path, keep: str = "15m") -> Path:
    raw = yaml.safe_load((ROOT / "tradewise.yaml").read_text(encoding="utf-8"))
    raw["defaults"]["release"] = {
        "keep_previous": keep,
        "verify": {"duration": f"{VERIFY_SECONDS}s", "users": 4},
    }
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def apps(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ApiServer]]:
    root = tmp_path_factory.mktemp("apps")
    servers: dict[str, ApiServer] = {}
    try:
        servers["good"] = ApiServer(root / "good", extra_env={"REDIS_URL": "none"})
        servers["slow"] = ApiServer(
            root / "slow",
            extra_env={"REDIS_URL": "none", "TRADEWISE_INJECT_LATENCY_MS": "700"},
        )
        # Redis configured but nothing listens: /api/health/ready answers 503
        servers["unready"] = ApiServer(root / "unready")
        yield servers
    finally:
        for server in servers.values():
            server.stop()


@pytest.fixture
def config(tmp_path: Path) -> str:
    return str(write_config(tmp_path / "tradewise.yaml"))


@pytest.fixture
def cluster(emulator: Emulator, kubeconfig: Path) -> Emulator:
    emulator.controllers.auto(delay=0.01)
    return emulator


def run(config: str, *args: str) -> Result:
    return CliRunner().invoke(app, ["--config", config, *args])


def service_slot(emu: Emulator) -> str | None:
    svc = emu.get("Service", NS, SERVICE)
    assert svc is not None
    return svc["spec"]["selector"].get("tradewise.io/slot")


def hpa_target(emu: Emulator) -> str:
    hpa = emu.get("HorizontalPodAutoscaler", NS, HPA)
    assert hpa is not None
    return str(hpa["spec"]["scaleTargetRef"]["name"])


def records(emu: Emulator) -> dict[int, dict[str, Any]]:
    from tradewise_ops.core.release import from_secret

    out = {}
    for secret in emu.list("Secret", NS, "owner=tradewise"):
        release = from_secret(secret)
        out[release.revision] = {"status": release.status, "verification": release.verification}
    return out


def annotations(emu: Emulator, name: str) -> dict[str, str]:
    obj = emu.get("Deployment", NS, name)
    assert obj is not None, name
    return dict(obj["metadata"].get("annotations") or {})


def one_whole_slot(emu: Emulator) -> str:
    """The Service selects one slot, whose Deployment exists with ready pods; that slot."""
    slot = service_slot(emu)
    assert slot in ("blue", "green")
    dep = emu.get("Deployment", NS, f"{API}-{slot}")
    assert dep is not None and (dep.get("status") or {}).get("readyReplicas", 0) >= 1
    assert hpa_target(emu) == f"{API}-{slot}"
    return str(slot)


def start_on_blue(config: str) -> None:
    first = run(config, "deploy", "staging", "--tag", "v1", "--strategy", "blue-green",
                "--no-verify")  # fmt: skip
    assert first.exit_code == 0, first.stderr


# -- promotion ---------------------------------------------------------------------------------
def test_a_verified_release_switches_and_records_its_numbers(
    cluster: Emulator, config: str, apps: dict[str, ApiServer]
) -> None:
    start_on_blue(config)
    url = apps["good"].url
    dry = run(config, "deploy", "staging", "--tag", "v2", "--verify-url", url, "--dry-run")
    assert dry.exit_code == 0, dry.stderr
    assert "verify" in dry.stdout and url in dry.stdout and "preview" in dry.stdout
    assert f"smoke (health, readiness, analysis), then 4 users for {VERIFY_SECONDS}s" in dry.stderr
    before = apps["good"].requests_counted("stock_analysis")
    cluster.reset_requests()
    result = run(config, "deploy", "staging", "--tag", "v2", "--verify-url", url, "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert "smoke checks passed: health 200, readiness 200, analysis 200" in result.stderr
    assert "verification passed" in result.stderr
    doc = json.loads(result.stdout)
    verification = doc["verification"]
    assert verification["passed"] is True and verification["url"] == url
    assert verification["p95_ms"] < 500 and verification["error_rate"] < 0.01
    assert verification["rps"] > 0 and verification["slo"] == {"p95_ms": 500.0, "error_rate": 0.01}
    # the load really went to the app, and only after the smoke checks
    assert apps["good"].requests_counted("stock_analysis") - before >= 10
    assert (one_whole_slot(cluster), image_of(cluster, GREEN)) == ("green", "v2")
    # the preview existed (Service for the new slot, Ingress host) and is gone
    writes = [(r.method, r.path.rsplit("/", 1)[-1]) for r in cluster.requests]
    assert ("PATCH", PREVIEW) in writes and ("DELETE", PREVIEW) in writes
    assert ("PATCH", PREVIEW_INGRESS) in writes and ("DELETE", PREVIEW_INGRESS) in writes
    assert writes.index(("DELETE", PREVIEW)) > writes.index(("PATCH", SERVICE))
    assert cluster.get("Service", NS, PREVIEW) is None
    assert cluster.get("Ingress", NS, PREVIEW_INGRESS) is None
    # the old slot stays, scaled as it was, with its window and revision
    kept = annotations(cluster, BLUE)
    assert kept[KEPT_REVISION] == "1" and kept[UNTIL].endswith("Z")
    # the record keeps the verification, with the load summary compare reads
    stored = records(cluster)[2]
    assert stored["status"] == "deployed" and stored["verification"]["passed"] is True
    assert stored["verification"]["load"]["total"]["requests"] == verification_requests(stored)
    history = json.loads(run(config, "history", "staging", "-o", "json").stdout)
    assert history[1]["verification"]["passed"] is True
    assert history[1]["verification"]["p95_ms"] == verification["p95_ms"]
    assert "load" not in history[1]["verification"]
    assert history[0]["verification"]["skipped"] is True  # --no-verify says so
    table = run(config, "history", "staging")
    assert "VERIFIED" in table.stdout and "pass p95" in table.stdout and "skipped" in table.stdout
    same = run(config, "compare", "staging@2", "staging@2")
    assert same.exit_code == 0, same.stderr
    skipped = run(config, "compare", "staging@1", "staging@2")
    assert skipped.exit_code == 2 and "verification skipped: --no-verify" in skipped.stderr


def verification_requests(stored: dict[str, Any]) -> int:
    return int(stored["verification"]["requests"])


def image_of(emu: Emulator, name: str) -> str:
    obj = emu.get("Deployment", NS, name)
    assert obj is not None, name
    return str(obj["spec"]["template"]["spec"]["containers"][0]["image"]).rsplit(":", 1)[-1]


def test_the_dry_run_lists_exactly_the_steps_a_verified_release_takes(
    cluster: Emulator, config: str, apps: dict[str, ApiServer]
) -> None:
    from tests.cli.test_deploy_steps import executed_steps, printed_steps

    start_on_blue(config)
    args = ("deploy", "staging", "--tag", "v2", "--verify-url", apps["good"].url)
    printed = printed_steps(run(config, *args, "--dry-run").stdout)
    real = run(config, *args, "--verbose")
    assert real.exit_code == 0, real.stderr
    executed = executed_steps(real.stderr)
    assert executed == printed
    ops = [op for _n, op, _t in executed]
    order = ["retire", "wait", "preview", "verify", "switch", "close-preview", "keep", "finish"]
    assert [op for op in ops if op in order] == order[1:]  # nothing to retire yet
    again = run(config, "deploy", "staging", "--tag", "v3", "--verify-url", apps["good"].url,
                "--dry-run")  # fmt: skip
    ops = [op for _n, op, _t in printed_steps(again.stdout)]
    assert ops[2] == "retire"  # blue, kept since the switch, goes before the new slot starts


# -- a failed verification -----------------------------------------------------------------------
def test_a_release_that_misses_the_slo_is_not_switched_and_says_why(
    cluster: Emulator, config: str, apps: dict[str, ApiServer]
) -> None:
    start_on_blue(config)
    cluster.reset_requests()
    result = run(config, "deploy", "staging", "--tag", "v2", "--verify-url", apps["slow"].url,
                 "-o", "json")  # fmt: skip
    assert result.exit_code == 1, result.stderr
    assert "verification FAILED" in result.stderr and "(SLO < 500 ms)" in result.stderr
    assert "traffic stays on slot blue" in result.stderr
    assert "the new slot green" in result.stderr and "was deleted" in result.stderr
    doc = json.loads(result.stdout)
    assert doc["status"] == "failed"
    verification = doc["verification"]
    assert verification["passed"] is False and verification["p95_ms"] >= 500
    assert verification["rps"] > 0
    # nothing switched: the Service and the HPA were never written, the new slot is gone
    touched = [r for r in cluster.requests if r.method != "GET" and r.path.endswith((SERVICE, HPA))]
    assert touched == []
    assert one_whole_slot(cluster) == "blue"
    assert cluster.get("Deployment", NS, GREEN) is None
    assert cluster.get("Service", NS, PREVIEW) is None
    assert cluster.get("Ingress", NS, PREVIEW_INGRESS) is None
    stored = records(cluster)
    assert stored[1]["status"] == "deployed" and stored[2]["status"] == "failed"
    assert stored[2]["verification"]["passed"] is False
    assert stored[2]["verification"]["p95_ms"] == verification["p95_ms"]
    history = run(config, "history", "staging")
    assert "FAIL p95" in history.stdout


def test_a_failed_smoke_check_stops_before_any_load(
    cluster: Emulator, config: str, apps: dict[str, ApiServer]
) -> None:
    start_on_blue(config)
    start = time.monotonic()
    result = run(config, "deploy", "staging", "--tag", "v2", "--verify-url", apps["unready"].url)
    assert result.exit_code == 1, result.stderr
    assert "smoke check readiness: /api/health/ready answered 503" in result.stderr
    assert time.monotonic() - start < VERIFY_SECONDS + 20
    assert one_whole_slot(cluster) == "blue" and cluster.get("Deployment", NS, GREEN) is None
    assert records(cluster)[2]["verification"]["smoke"][1]["status"] == 503


def test_an_unreachable_verify_url_exits_3_and_switches_nothing(
    cluster: Emulator, config: str
) -> None:
    start_on_blue(config)
    url = f"http://127.0.0.1:{free_port()}"
    result = run(config, "deploy", "staging", "--tag", "v2", "--verify-url", url)
    assert result.exit_code == 3, result.stderr
    assert "does not answer" in result.stderr and "traffic stays on slot blue" in result.stderr
    assert one_whole_slot(cluster) == "blue" and cluster.get("Deployment", NS, GREEN) is None
    assert records(cluster)[2]["status"] == "failed"


# -- instant rollback, expiry, finalize ------------------------------------------------------------
def test_rollback_within_the_window_only_switches_back(
    cluster: Emulator, config: str, apps: dict[str, ApiServer]
) -> None:
    start_on_blue(config)
    promoted = run(config, "deploy", "staging", "--tag", "v2", "--verify-url", apps["good"].url)
    assert promoted.exit_code == 0, promoted.stderr
    assert one_whole_slot(cluster) == "green"
    blue_before = cluster.get("Deployment", NS, BLUE)
    assert blue_before is not None
    no_wait = run(config, "rollback", "staging", "--no-wait")
    assert no_wait.exit_code == 2 and "blue-green" in no_wait.stderr
    cluster.reset_requests()
    start = time.monotonic()
    back = run(config, "rollback", "staging", "-o", "json")
    assert back.exit_code == 0, back.stderr
    assert time.monotonic() - start < 10
    assert "instant rollback" in back.stderr and "no new pods" in back.stderr
    assert one_whole_slot(cluster) == "blue"
    # no Deployment was applied (no new pod): the Service, the HPA and annotations only
    deployment_writes = [
        r for r in cluster.requests
        if r.method in ("PATCH", "POST", "PUT") and "/deployments" in r.path
        and not r.content_type.startswith("application/merge-patch")
    ]  # fmt: skip
    assert deployment_writes == []
    blue_after = cluster.get("Deployment", NS, BLUE)
    assert blue_after is not None
    assert blue_after["spec"] == blue_before["spec"]  # scaled as it was, same pods
    assert UNTIL not in annotations(cluster, BLUE)  # serving again, no longer a kept slot
    kept = annotations(cluster, GREEN)  # the slot left is kept in turn
    assert kept[KEPT_REVISION] == "2"
    stored = records(cluster)
    assert [stored[r]["status"] for r in (1, 2, 3)] == ["superseded", "rolled-back", "deployed"]
    doc = json.loads(back.stdout)
    assert doc["revision"] == 3 and doc["tag"] == "v1" and doc["slot"] == "blue"
    # and back again, instantly: the slot left was kept
    forward = run(config, "rollback", "staging")
    assert forward.exit_code == 0, forward.stderr
    assert "instant rollback" in forward.stderr and one_whole_slot(cluster) == "green"


def test_after_the_window_rollback_works_as_before_and_finalize_deletes(
    cluster: Emulator, tmp_path: Path, apps: dict[str, ApiServer]
) -> None:
    config = str(write_config(tmp_path / "short.yaml", keep="3s"))
    start_on_blue(config)
    promoted = run(config, "deploy", "staging", "--tag", "v2", "--verify-url", apps["good"].url)
    assert promoted.exit_code == 0, promoted.stderr
    early = run(config, "release", "finalize", "staging")
    assert early.exit_code == 0 and "is kept until" in early.stdout
    assert cluster.get("Deployment", NS, BLUE) is not None
    time.sleep(3.5)
    late = run(config, "release", "finalize", "staging", "-o", "json")
    assert late.exit_code == 0, late.stderr
    assert json.loads(late.stdout)["deleted"] == [
        {"slot": "blue", "revision": 1, "until": json.loads(late.stdout)["deleted"][0]["until"]}
    ]
    assert cluster.get("Deployment", NS, BLUE) is None and one_whole_slot(cluster) == "green"
    # a rollback now restores the whole release, as before (new pods in slot blue)
    back = run(config, "rollback", "staging")
    assert back.exit_code == 0, back.stderr
    assert "instant rollback" not in back.stderr and "rolling back" in back.stderr
    assert one_whole_slot(cluster) == "blue" and image_of(cluster, BLUE) == "v1"


def test_the_next_deploy_removes_an_expired_previous_slot(
    cluster: Emulator, tmp_path: Path, apps: dict[str, ApiServer]
) -> None:
    config = str(write_config(tmp_path / "short.yaml", keep="2s"))
    start_on_blue(config)
    promoted = run(config, "deploy", "staging", "--tag", "v2", "--verify-url", apps["good"].url)
    assert promoted.exit_code == 0, promoted.stderr
    time.sleep(2.5)
    rolling = run(config, "deploy", "staging", "--tag", "v3", "--strategy", "rolling", "--verbose")
    assert rolling.exit_code == 0, rolling.stderr
    assert f"retire Deployment/{BLUE}" in rolling.stderr
    assert cluster.get("Deployment", NS, BLUE) is None
    assert cluster.get("Deployment", NS, GREEN) is None  # the blue-green API, pruned late
    assert service_slot(cluster) is None and hpa_target(cluster) == API


# -- bad input -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--strategy", "purple"), "is not one of"),
        (("--strategy", "blue-green", "--verify-url", "ftp://x"), "not an http:// or https://"),
        (("--strategy", "blue-green", "--verify-url", "http://x", "--no-verify"), "contradict"),
        (("--strategy", "rolling", "--no-verify"), "goes with --strategy blue-green"),
    ],
)
def test_bad_input_exits_2_and_applies_nothing(
    cluster: Emulator, config: str, args: tuple[str, ...], says: str
) -> None:
    cluster.reset_requests()
    result = run(config, "deploy", "staging", "--tag", "v1", *args)
    assert result.exit_code == 2, result.stderr
    assert says in result.stderr
    assert len([line for line in result.stderr.splitlines() if line.strip()]) == 1
    assert [r for r in cluster.requests if r.method != "GET"] == []


# -- interruptions ---------------------------------------------------------------------------------
def _tradewise(config: str, kubeconfig: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "NO_COLOR": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "tradewise_ops", "--config", config, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )


def _read_until(proc: subprocess.Popen[str], text: str, timeout: float = 60) -> str:
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


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_signal_during_the_verification_load_leaves_traffic_on_the_old_slot(
    cluster: Emulator, config: str, kubeconfig: Path, apps: dict[str, ApiServer], signum: int
) -> None:
    start_on_blue(config)
    proc = _tradewise(config, str(kubeconfig), "deploy", "staging", "--tag", "v2",
                      "--verify-url", apps["good"].url)  # fmt: skip
    _read_until(proc, " req/s ")  # the first interval of the load came in
    proc.send_signal(signum)
    _out, err = proc.communicate(timeout=60)
    # Ctrl-C exits 130, SIGTERM 143 (the same clean stop)
    assert proc.returncode == (130 if signum == signal.SIGINT else 143), err
    assert "interrupted" in err and "traffic stays on slot blue" in err
    assert "Traceback" not in err
    assert one_whole_slot(cluster) == "blue"
    assert cluster.get("Deployment", NS, GREEN) is None
    assert cluster.get("Service", NS, PREVIEW) is None
    assert records(cluster)[2]["status"] == "failed"


class InterruptingGateway(KubeGateway):
    """The project's own gateway, with Ctrl-C arriving right after one chosen write returned
    (the server did it, the deploy did not see the answer yet)."""

    after: tuple[str, str] | None = None  # (kind, name) of the write

    def apply(self, obj: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        answer = super().apply(obj, **kwargs)
        if self.after == (obj.get("kind"), obj["metadata"]["name"]):
            self.after = None
            raise KeyboardInterrupt
        return answer


def _release_options(config: str, url: str) -> Any:
    from tradewise_ops.core.config import load_config
    from tradewise_ops.core.release_steps import ReleaseOptions
    from tradewise_ops.core.verify import verify_plan

    cfg = load_config(config)
    env = cfg.environment("staging")
    verify = verify_plan(env.release.verify, cfg.slo, namespace=NS, verify_url=url)
    return ReleaseOptions(
        verify, keep_seconds=900, domain=env.domain, preview_host=env.release.preview_host
    )


# each phase of a verified release: interrupted as it starts (or, "mid-switch", between the
# Service's and the HPA's write), and which slot then serves
PHASES = [
    ("apply", "blue"),
    ("wait", "blue"),
    ("preview", "blue"),
    ("verify", "blue"),
    ("switch", "blue"),
    ("mid-switch", "blue"),
    ("close-preview", "green"),
    ("keep", "green"),
    ("finish", "green"),
]


@pytest.mark.parametrize(("phase", "serving"), PHASES, ids=[p for p, _s in PHASES])
def test_an_interruption_at_any_phase_leaves_traffic_on_one_whole_slot(
    cluster: Emulator, config: str, apps: dict[str, ApiServer], phase: str, serving: str
) -> None:
    from tradewise_ops.adapters.deployer import Deployer
    from tradewise_ops.adapters.verifier import ReleaseVerifier
    from tradewise_ops.core.config import load_config
    from tradewise_ops.core.render import render_environment
    from tradewise_ops.errors import AbortedError

    start_on_blue(config)
    gw = InterruptingGateway.from_kubeconfig(context="staging", namespace=NS, backoff=0.01)

    def interrupt(_number: int, step: Any) -> None:
        if phase == "apply" and step.op == "apply" and step.target == f"Deployment/{GREEN}":
            raise KeyboardInterrupt
        if phase == "mid-switch" and step.op == "switch":
            gw.after = ("Service", SERVICE)
        elif step.op == phase and phase != "apply":
            raise KeyboardInterrupt

    deployer = Deployer(
        gw,
        "staging",
        on_execute=interrupt,
        verifier=ReleaseVerifier(gw, "staging", NS),
    )
    rendered = render_environment(load_config(config), "staging", tag="v2")
    plan = deployer.plan(
        rendered,
        "v2",
        strategy="blue-green",
        release=_release_options(config, apps["good"].url),
    )
    with pytest.raises(AbortedError) as err:
        deployer.apply(plan, "test", timeout=30)
    assert err.value.exit_code == 130
    assert one_whole_slot(cluster) == serving
    assert cluster.get("Service", NS, PREVIEW) is None
    assert cluster.get("Ingress", NS, PREVIEW_INGRESS) is None
    stored = records(cluster)
    if serving == "blue":
        assert cluster.get("Deployment", NS, GREEN) is None
        assert stored[2]["status"] == "failed"
        assert "traffic stays on slot blue" in err.value.message
    else:  # switched: the serving slot is never deleted, the release counts as deployed
        assert cluster.get("Deployment", NS, BLUE) is not None
        assert stored[2]["status"] == "deployed" and stored[1]["status"] == "superseded"
        assert stored[2]["verification"]["passed"] is True
        assert "recorded as deployed" in err.value.message


def test_a_failure_after_the_switch_never_deletes_the_serving_slot(
    cluster: Emulator, config: str, apps: dict[str, ApiServer]
) -> None:
    start_on_blue(config)
    # marking the release deployed fails (RBAC refuses patching Secrets) after traffic moved
    cluster.deny("patch", "secrets")
    result = run(config, "deploy", "staging", "--tag", "v2", "--verify-url", apps["good"].url)
    assert result.exit_code == 1, result.stderr
    assert one_whole_slot(cluster) == "green"  # the new slot serves and stays
    assert cluster.get("Deployment", NS, GREEN) is not None
    assert "traffic is on the new slot green" in result.stderr


# -- in the cluster ------------------------------------------------------------------------------
def play_locust_jobs(emu: Emulator, target: str) -> threading.Thread:
    """The Job controller and the Locust pods, played: when the verification's master Job
    appears, its spec (from the run's ConfigMap) is loaded for real against ``target`` (the
    cluster's Service address does not resolve here), and the master pod terminates with that
    run's summary as its message, as the in-cluster generator leaves it."""
    from tradewise_ops.adapters.loadtest import LoadRunner
    from tradewise_ops.core.loadplan import LoadSpec, TaskSpec
    from tradewise_ops.core.loadreport import compact_summary, endpoint_totals

    def run() -> None:
        deadline = time.monotonic() + 120
        jobs: list[dict[str, Any]] = []
        while time.monotonic() < deadline and not jobs:
            jobs = [j for j in emu.list("Job", NS) if j["metadata"]["name"].endswith("-master")]
            time.sleep(0.05)
        if not jobs:
            return
        job = jobs[0]
        base = job["metadata"]["name"].removesuffix("-master")
        spec_map = emu.get("ConfigMap", NS, f"{base}-spec")
        assert spec_map is not None
        wire = json.loads(spec_map["data"]["spec.json"])
        spec = LoadSpec(
            host=target,
            tasks=tuple(TaskSpec(t["name"], tuple(t["paths"]), t["weight"]) for t in wire["tasks"]),
            duration_seconds=wire["duration"],
            users=wire["users"],
            spawn_rate=wire["spawn_rate"],
        )
        result = LoadRunner().run(spec)
        message = compact_summary(
            endpoint_totals(result.intervals),
            ran_seconds=result.intervals[-1].end,
            stopped_by=result.stopped_by,
        )
        labels = job["spec"]["template"]["metadata"]["labels"]
        emu.put(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": f"{base}-master-x1", "namespace": NS, "labels": labels},
                "spec": job["spec"]["template"]["spec"],
                "status": {
                    "phase": "Succeeded",
                    "containerStatuses": [
                        {"name": "locust-master",
                         "state": {"terminated": {"exitCode": 0, "message": json.dumps(message)}}}
                    ],
                },
            }
        )  # fmt: skip
        done = emu.get("Job", NS, job["metadata"]["name"]) or job
        done["status"] = {"succeeded": 1}
        emu.put(done)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_without_a_domain_the_verification_runs_as_jobs_in_the_cluster(
    cluster: Emulator, tmp_path: Path, apps: dict[str, ApiServer]
) -> None:
    config = write_config(tmp_path / "nodomain.yaml")
    raw = yaml.safe_load(config.read_text(encoding="utf-8"))
    raw["environments"]["staging"]["domain"] = None
    raw["environments"]["staging"]["tls_secret"] = None
    config.write_text(yaml.safe_dump(raw), encoding="utf-8")
    start_on_blue(str(config))
    dry = json.loads(run(str(config), "deploy", "staging", "--tag", "v2", "--dry-run", "-o",
                         "json").stdout)  # fmt: skip
    assert (dry["verification"]["mode"], dry["verification"]["url"]) == (
        "cluster",
        f"http://{PREVIEW}.{NS}.svc",
    )
    verify = next(s for s in dry["steps"] if s["op"] == "verify")
    assert verify["target"] == f"Jobs in {NS} -> http://{PREVIEW}.{NS}.svc"
    thread = play_locust_jobs(cluster, apps["good"].url)
    result = run(str(config), "deploy", "staging", "--tag", "v2", "-o", "json")
    thread.join(timeout=30)
    assert result.exit_code == 0, result.stderr
    verification = json.loads(result.stdout)["verification"]
    assert verification["passed"] is True and verification["job"].endswith("-master")
    assert verification["url"] == f"http://{PREVIEW}.{NS}.svc"
    assert verification["rps"] > 0 and verification["p95_ms"] < 500
    assert one_whole_slot(cluster) == "green"
    stored = records(cluster)[2]["verification"]
    # the smoke paths were among the Jobs' tasks, each answered without a failure
    assert [s["ok"] for s in stored["smoke"]] == [True, True, True]
    assert "/api/health/ready" in stored["load"]["endpoints"]
    run_base = verification["job"].removesuffix("-master")
    assert cluster.get("ConfigMap", NS, f"{run_base}-spec") is None  # cleaned up, Jobs stay
    assert cluster.get("Job", NS, verification["job"]) is not None
