"""``tradewise doctor`` against the emulator (the test plays the pods', HPAs' and endpoints'
states) with the real application behind the API Service's proxy, and on the local stack.

The application runs as ``tradewise-api`` (gunicorn) on a free loopback port; the emulator's
service proxy forwards ``/api/v1/namespaces/NS/services/tradewise-api-service:http/proxy/...``
to it, as a real API server forwards to one of the Service's endpoints.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner, Result

from tests.helpers import free_port, wait_until
from tests.k8s_emulator import Emulator
from tradewise_ops.cli.main import app

pytest_plugins = ["tests.k8s_emulator.fixtures"]

ROOT = Path(__file__).resolve().parents[2]
CONFIG = str(ROOT / "tradewise.yaml")
NS = "tradewise-ai"
API = "tradewise-api-deployment"
WORKER = "tradewise-worker-deployment"
PRECOMPUTE = "tradewise-precompute-deployment"


def run(*args: str, config: str = CONFIG) -> Result:
    return CliRunner().invoke(app, ["--config", config, *args])


# -- the real application on loopback ---------------------------------------------------------
@contextlib.contextmanager
def api_server(**settings: str) -> Iterator[str]:
    """``tradewise-api`` (gunicorn, 4 sync workers) on a free port with ``settings``."""
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="tw-doctor-app-"))
    env = {
        **os.environ,
        "BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": "4",
        "PROMETHEUS_MULTIPROC_DIR": str(workdir / "prom"),
        "DATABASE_URL": f"sqlite:///{workdir / 'tradewise.db'}",
        "TRADEWISE_REDIS_RETRY_SECONDS": "0",
        **settings,
    }
    binary = str(Path(sys.executable).parent / "tradewise-api")
    log = open(workdir / "api.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([binary], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _status(url + "/api/health") == 200, timeout=30, what="the API")
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        shutil.rmtree(workdir, ignore_errors=True)


def _status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return None


def hammer(url: str, path: str, count: int) -> list[int | None]:
    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(lambda _: _status(url + path), range(count)))


# -- the cluster ---------------------------------------------------------------------------------
def pod_names(emu: Emulator, owner: str) -> list[str]:
    return sorted(
        p["metadata"]["name"]
        for p in emu.list("Pod", NS)
        if p["metadata"]["labels"].get("tradewise.emulator/owner") == owner
    )


def set_status(emu: Emulator, pod: str, **container: Any) -> None:
    """Change the first container status of ``pod`` (as the kubelet reports it)."""
    obj = emu.get("Pod", NS, pod)
    assert obj is not None
    obj["status"]["containerStatuses"][0].update(container)
    emu.store.replace(emu.resource("Pod"), NS, pod, obj, status_only=True)


def ago(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - seconds))


@pytest.fixture
def deployed(emulator: Emulator, kubeconfig: Path) -> Emulator:
    emulator.controllers.auto(delay=0.01)
    result = run("deploy", "staging", "--tag", "v1", "--timeout", "20s")
    assert result.exit_code == 0, result.stderr
    return emulator


def healthy_metrics(emu: Emulator) -> None:
    emu.serve_metrics_api()
    for pod in emu.list("Pod", NS):
        emu.set_pod_metrics(NS, pod["metadata"]["name"], cpu="5000000n", memory="10Mi")


def findings(doc: dict[str, Any], check: str) -> list[dict[str, Any]]:
    return [f for f in doc["findings"] if f["check"] == check]


def test_a_healthy_environment_passes_every_check(deployed: Emulator, redis_url: str) -> None:
    deployed.controllers.stop()
    healthy_metrics(deployed)
    for hpa in ("tradewise-api-hpa", "tradewise-worker-hpa"):
        deployed.controllers.hpa_conditions(NS, hpa)
    with api_server(REDIS_URL=redis_url) as url:
        assert set(hammer(url, "/api/stock-analysis?symbol=AAPL", 25)) == {200}
        deployed.proxy_service(NS, "tradewise-api-service", url)
        deployed.reset_requests()
        result = run("doctor", "--env", "staging", "-o", "json")
    assert result.exit_code == 0, result.stdout + result.stderr
    doc = json.loads(result.stdout)
    assert doc["findings"] == [] and doc["healthy"] is True
    assert set(doc["passed"]) == set(doc["checks"])
    assert {"pods.crashloop", "services.endpoints", "hpa.conditions", "app.latency"} <= set(
        doc["passed"]
    )
    # the application was read through the API server's service proxy
    proxied = deployed.requests_matching("GET", "/services/tradewise-api-service:http/proxy/")
    assert proxied and proxied[0].status == 200
    assert len(deployed.requests) <= 15  # a handful of reads
    assert all(r.method == "GET" for r in deployed.requests)  # changes nothing


def test_every_finding_with_evidence_and_fix_worst_first(
    deployed: Emulator, redis_url: str
) -> None:
    import redis

    # a failed release: its pods cannot pull the image
    deployed.controllers.fail_images[":broken"] = "ImagePullBackOff"
    failed = run("deploy", "staging", "--tag", "broken", "--timeout", "20s")
    assert failed.exit_code == 1
    deployed.controllers.stop()
    healthy_metrics(deployed)
    # two API pods of the last good release (the pod names do not say which release a pod is of;
    # its image does)
    good = {
        p["metadata"]["name"]
        for p in deployed.list("Pod", NS)
        if not any(c["image"].endswith(":broken") for c in p["spec"]["containers"])
    }
    api_a, api_b = [p for p in pod_names(deployed, API) if p in good][:2]
    # a crash loop, with the log that says why
    set_status(
        deployed,
        api_a,
        ready=False,
        restartCount=5,
        state={"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s"}},
        lastState={"terminated": {"reason": "Error", "exitCode": 3, "finishedAt": ago(30)}},
    )
    deployed.write_log(NS, api_a, ["Booting worker", "KeyError: 'DATABASE_URL'"])
    # memory and CPU near their limits (API: 2Gi, 1000m)
    deployed.set_pod_metrics(NS, api_b, cpu="980m", memory="1950Mi")
    # an OOM kill, a pod restarting too often, a Pending pod the scheduler cannot place
    set_status(
        deployed,
        "postgres-0",
        restartCount=1,
        lastState={"terminated": {"reason": "OOMKilled", "exitCode": 137, "finishedAt": ago(60)}},
    )
    set_status(
        deployed,
        "redis-0",
        restartCount=6,
        lastState={"terminated": {"reason": "Error", "exitCode": 1, "finishedAt": ago(120)}},
    )
    deployed.write_log(NS, "redis-0", "Fatal error loading the DB: Permission denied")
    (pending,) = deployed.controllers.fail_pods(NS, PRECOMPUTE, "FailedScheduling")
    # a Service whose endpoints are all not ready
    deployed.put(
        {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {"name": "postgres-service", "namespace": NS},
            "subsets": [
                {
                    "notReadyAddresses": [
                        {"ip": "127.0.0.2", "targetRef": {"kind": "Pod", "name": "postgres-0"}}
                    ],
                    "ports": [{"port": 5432}],
                }
            ],
        }
    )
    # an HPA that cannot read its metrics, one stuck at its ceiling
    deployed.controllers.hpa_conditions(NS, "tradewise-api-hpa", active=False)
    deployed.controllers.hpa_conditions(NS, "tradewise-worker-hpa", limited=True)
    # the application: database and Redis down, slow, failing, queue backed up
    broker = redis.Redis.from_url(redis_url)
    broker.rpush("celery", *[f"task-{i}" for i in range(60)])
    dead = free_port()
    with api_server(
        DATABASE_URL=f"postgresql://tw@127.0.0.1:{dead}/tw",
        REDIS_URL=f"redis://127.0.0.1:{dead}/0",
        CELERY_BROKER_URL=redis_url,
        CELERY_RESULT_BACKEND="none",
        TRADEWISE_INJECT_LATENCY_MS="600",
        MARKET_DATA_PROVIDER="http",
        MARKET_DATA_URL=f"http://127.0.0.1:{dead}",
        MARKET_DATA_TIMEOUT="0.5",
    ) as url:
        answers = hammer(url, "/api/stock-analysis?symbol=AAPL", 24)
        assert all(a is not None and a >= 500 for a in answers), answers
        deployed.proxy_service(NS, "tradewise-api-service", url)
        result = run("doctor", "--env", "staging", "--context", "emulator", "-o", "json")
        table = run("doctor", "--env", "staging")
    broker.close()
    assert result.exit_code == 1, result.stderr
    doc = json.loads(result.stdout)
    severities = [f["severity"] for f in doc["findings"]]
    rank = {"critical": 0, "warning": 1, "info": 2}
    assert severities == sorted(severities, key=rank.__getitem__)  # worst first
    assert doc["critical"] >= 8 and not doc["healthy"]
    for f in doc["findings"]:
        assert f["evidence"] and f["fix"], f

    def one(check: str, subject: str) -> dict[str, Any]:
        matches = [f for f in findings(doc, check) if f["subject"] == subject]
        assert len(matches) == 1, (check, subject, findings(doc, check))
        return matches[0]

    (context,) = findings(doc, "cluster.context")
    assert "the config names staging" in context["evidence"][0]
    release = one("release.deployed", "release v2")
    assert release["severity"] == "critical" and "failed" in release["message"]
    crash = one("pods.crashloop", f"Pod/{api_a}")
    assert crash["evidence"][1].startswith("last run ended: Error (exit code 3) ")
    assert "  | KeyError: 'DATABASE_URL'" in crash["evidence"]
    assert "tradewise logs api" in crash["fix"]
    assert not findings(doc, "pods.restarts") or all(
        f["subject"] != f"Pod/{api_a}" for f in findings(doc, "pods.restarts")
    )  # a crash loop is one finding, not two
    images = findings(doc, "pods.image")
    assert {f["subject"].split("-")[1] for f in images} >= {"api", "worker"}
    assert any(
        "image registry.example.com/tradewise/tradewise-ai:broken" in e
        for e in images[0]["evidence"] + images[-1]["evidence"]
    )
    scheduling = one("pods.pending", f"Pod/{pending}")
    assert "0/3 nodes are available: 3 Insufficient cpu." in scheduling["evidence"][0]
    oom = one("pods.oomkilled", "Pod/postgres-0")
    assert (
        "OOMKilled (exit code 137)" in oom["evidence"][0]
        and "memory limit 1Gi" in oom["evidence"][1]
    )
    assert "`kubectl delete pod postgres-0`" in oom["fix"]  # not a tradewise restart target
    restarts = one("pods.restarts", "Pod/redis-0")
    assert restarts["severity"] == "critical" and "6 restarts" in restarts["evidence"][0]
    assert "  | Fatal error loading the DB: Permission denied" in restarts["evidence"]
    endpoints = one("services.endpoints", "Service/postgres-service")
    assert (
        endpoints["evidence"][0] == "Endpoints/postgres-service: 0 ready, 1 not ready (postgres-0)"
    )
    active = one("hpa.conditions", "HorizontalPodAutoscaler/tradewise-api-hpa")
    assert "ScalingActive=False FailedGetResourceMetric" in active["evidence"][0]
    ceiling = one("hpa.ceiling", "HorizontalPodAutoscaler/tradewise-worker-hpa")
    assert "current 4, desired 4, maxReplicas 4" in ceiling["evidence"][0]
    usage = [f for f in findings(doc, "metrics.usage") if f["subject"] == f"Pod/{api_b}"]
    assert {f["evidence"][0] for f in usage} == {
        "memory 1950Mi of 2Gi (metrics API)",
        "cpu 980m of 1000m (metrics API)",
    }
    assert all(
        "`tradewise restart api` for a leak" in f["fix"] for f in usage if "memory" in f["message"]
    )
    database = one("app.readiness", "dependency database")
    assert database["severity"] == "critical"
    assert one("app.readiness", "dependency redis")["severity"] == "warning"
    cache = one("app.cache", "the analysis cache")
    assert "hit rate 0%" in cache["message"]
    queue = one("app.queue", "the task queue")
    assert "60 tasks wait" in queue["message"]
    latency = one("app.latency", "the API")
    assert latency["severity"] == "critical" and "above the SLO (500 ms)" in latency["message"]
    errors = one("app.errors", "the API")
    assert errors["severity"] == "critical" and "5xx" in errors["evidence"][0]
    # the human form: worst first, evidence and fix under each
    assert table.exit_code == 1
    lines = table.stdout.splitlines()
    assert lines[0].startswith("CRITICAL")
    assert any(line.strip().startswith("fix: ") for line in lines)
    assert "critical findings in staging" in table.stderr


def test_no_metrics_api_and_an_unreachable_application(deployed: Emulator) -> None:
    deployed.controllers.stop()
    result = run("doctor", "--env", "staging", "-o", "json")
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    (metrics,) = findings(doc, "metrics.api")
    assert metrics["severity"] == "critical" and "2 HPAs cannot read" in metrics["message"]
    (hpa,) = [f for f in findings(doc, "hpa.conditions") if "api-hpa" in f["subject"]]
    assert "no status conditions" in hpa["message"]
    (reach,) = findings(doc, "app.reachable")
    assert 'no endpoints available for service "tradewise-api-service"' in reach["evidence"][0]


def test_nothing_deployed_and_a_missing_namespace(emulator: Emulator, kubeconfig: Path) -> None:
    empty = json.loads(run("doctor", "--env", "staging", "-o", "json").stdout)
    (release,) = findings(empty, "release.deployed")
    assert release["severity"] == "warning" and "no release recorded" in release["message"]
    missing = run("doctor", "--env", "staging", "--namespace", "elsewhere", "-o", "json")
    assert missing.exit_code == 1
    (ns,) = json.loads(missing.stdout)["findings"]
    assert ns["subject"] == "Namespace/elsewhere" and "does not exist" in ns["message"]


def test_an_unreachable_cluster_exits_3_with_the_finding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = Emulator().start()
    path = emu.write_kubeconfig(tmp_path / "kubeconfig", contexts=("staging",))
    emu.stop()  # nothing listens there now
    monkeypatch.setenv("KUBECONFIG", str(path))
    result = run("doctor", "--env", "staging", "-o", "json")
    assert result.exit_code == 3, result.stderr
    (finding,) = json.loads(result.stdout)["findings"]
    assert finding["check"] == "cluster.reachable" and finding["severity"] == "critical"


# -- the local stack -----------------------------------------------------------------------------
@pytest.fixture
def local_config(tmp_path: Path) -> Path:
    raw = yaml.safe_load((ROOT / "tradewise.yaml").read_text())
    raw["environments"]["local"]["local"] = {
        "api_port": free_port(),
        "redis_port": free_port(),
        "api_processes": 1,
        "worker_processes": 1,
        "state_dir": str(tmp_path / "state"),
        "broker": "redis",
    }
    path = tmp_path / "tradewise.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_local_stack_down_and_a_damaged_database(local_config: Path, tmp_path: Path) -> None:
    down = run("doctor", "--env", "local", "-o", "json", config=str(local_config))
    assert down.exit_code == 1
    doc = json.loads(down.stdout)
    assert [f["check"] for f in doc["findings"]] == ["local.processes"]
    db = tmp_path / "state" / "tradewise.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    db.write_bytes(b"this is not a database" * 100)
    damaged = json.loads(
        run("doctor", "--env", "local", "-o", "json", config=str(local_config)).stdout
    )
    (finding,) = findings(damaged, "local.database")
    assert finding["severity"] == "critical" and "quick_check" in finding["evidence"][0]


def test_local_stack_healthy_then_redis_killed(local_config: Path) -> None:
    from tests.helpers import require_binary

    require_binary("redis-server", "apt-get install redis-server")
    try:
        up = run("local", "up", "-o", "json", config=str(local_config))
        assert up.exit_code == 0, up.stderr
        url = json.loads(up.stdout)["url"]
        assert set(hammer(url, "/api/stock-analysis?symbol=MSFT", 21)) == {200}
        healthy = run("doctor", "--env", "local", "-o", "json", config=str(local_config))
        assert healthy.exit_code == 0, healthy.stdout
        doc = json.loads(healthy.stdout)
        assert doc["findings"] == [] and "local.redis" in doc["passed"]

        ps = json.loads(run("local", "ps", "-o", "json", config=str(local_config)).stdout)
        (redis_pid,) = [p["pid"] for p in ps["processes"] if p["name"] == "redis"]
        os.kill(redis_pid, signal.SIGKILL)

        def redis_state() -> str:
            doc = json.loads(run("local", "ps", "-o", "json", config=str(local_config)).stdout)
            return str(next(p["state"] for p in doc["processes"] if p["name"] == "redis"))

        wait_until(lambda: redis_state() == "exited", timeout=10, what="redis seen as exited")
        sick = run("doctor", "--env", "local", "-o", "json", config=str(local_config))
        assert sick.exit_code == 1
        doc = json.loads(sick.stdout)
        (proc,) = findings(doc, "local.processes")
        assert proc["subject"] == "process redis" and "exited with code -9" in proc["message"]
        (port,) = findings(doc, "local.ports")
        assert "(redis)" in port["message"]
        (ping,) = findings(doc, "local.redis")
        assert ping["evidence"][0].startswith("PING: no answer")
        (ready,) = findings(doc, "app.readiness")
        assert ready["subject"] == "dependency redis"
        assert "GET /api/health/ready: 503" in ready["evidence"]
    finally:
        run("local", "down", config=str(local_config))
