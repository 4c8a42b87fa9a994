"""``deploy --strategy canary``: each step judged by a real Prometheus from real traffic.

Debian's ``prometheus`` runs on loopback with ``scrape_interval: 1s`` and scrapes three instances
of the bundled app under gunicorn, each reporting its ``version`` on ``flask_request_*``
(``TRADEWISE_VERSION``): ``v1`` stands in for the stable version, ``v2`` for a healthy canary,
``v3`` for a canary whose analyses fail (its market-data provider does not answer: 503). A
thread sends them real requests (health and analyses) the whole time, as the Ingress would. The
Kubernetes side (slots, canary Ingress and its weights, the switch) is the emulator; the weight
itself moves no traffic here, the analysis reads what each version served.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner, Result

from tests.helpers import free_port, require_binary, wait_until
from tests.k8s_emulator import Emulator
from tests.loadtest_app import ApiServer
from tradewise_ops.cli.main import app

pytest_plugins = ["tests.k8s_emulator.fixtures"]

ROOT = Path(__file__).resolve().parents[2]
NS = "tradewise-ai"
API = "tradewise-api-deployment"
SERVICE, HPA = "tradewise-api-service", "tradewise-api-hpa"
CANARY_SERVICE, CANARY_INGRESS = "tradewise-api-canary", "tradewise-ingress-canary"
WEIGHT = "nginx.ingress.kubernetes.io/canary-weight"
PROMETHEUS = "/usr/bin/prometheus"


class Prometheus:
    """``prometheus`` on 127.0.0.1:PORT scraping ``targets`` (version -> host:port) every second."""

    def __init__(self, workdir: Path, targets: dict[str, str]) -> None:
        binary = require_binary(PROMETHEUS, "apt-get install prometheus")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [
                {
                    "job_name": "tradewise-api",
                    "static_configs": [
                        {"targets": [target], "labels": {"namespace": NS, "role": version}}
                        for version, target in targets.items()
                    ],
                }
            ],
        }
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
        self.log = open(workdir / "prometheus.log", "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                binary,
                f"--config.file={workdir / 'prometheus.yml'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                f"--storage.tsdb.path={workdir / 'data'}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        wait_until(self._ready, timeout=30, interval=0.2, what="prometheus /-/ready")

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError("prometheus exited")
        try:
            with urllib.request.urlopen(self.url + "/-/ready", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def value(self, query: str) -> float | None:
        from tradewise_ops.adapters.prometheus import PrometheusClient

        return PrometheusClient(self.url).value(query)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


class Traffic:
    """A thread sending health checks and analyses to each server in turn until stopped (at
    most ``limit`` seconds), about 20 requests a second in all."""

    def __init__(self, urls: list[str], limit: float = 600.0) -> None:
        self.urls = urls
        self.stopping = threading.Event()
        self.deadline = time.monotonic() + limit
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        paths = ("/api/health", "/api/stock-analysis?symbol=AAPL")
        n = 0
        while not self.stopping.is_set() and time.monotonic() < self.deadline:
            for url in self.urls:
                try:
                    with urllib.request.urlopen(url + paths[n % 2], timeout=5) as response:
                        response.read()
                except OSError:
                    pass  # a 503 of the failing canary is what it serves
            n += 1
            self.stopping.wait(0.1)

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    require_binary(PROMETHEUS, "apt-get install prometheus")
    root = tmp_path_factory.mktemp("canary")
    closed = f"http://127.0.0.1:{free_port()}"
    servers: dict[str, ApiServer] = {}
    prometheus = traffic = None
    try:
        for version, extra in (
            ("v1", {}),
            ("v2", {}),
            ("v3", {"MARKET_DATA_PROVIDER": "http", "MARKET_DATA_URL": closed}),
        ):
            servers[version] = ApiServer(
                root / version,
                extra_env={"REDIS_URL": "none", "TRADEWISE_VERSION": version, **extra},
            )
        prometheus = Prometheus(
            root, {v: s.url.removeprefix("http://") for v, s in servers.items()}
        )
        traffic = Traffic([s.url for s in servers.values()])
        # a few scrapes with traffic in them before any test judges a window
        wait_until(
            lambda: (prometheus.value(
                f'sum(rate(flask_request_total{{namespace="{NS}",version="v3"}}[15s]))'
            ) or 0) > 0,
            timeout=60, interval=0.5, what="Prometheus sees v3's requests",
        )  # fmt: skip
        yield {"servers": servers, "prometheus": prometheus, "root": root}
    finally:
        if traffic is not None:
            traffic.stop()
        if prometheus is not None:
            prometheus.stop()
        for server in servers.values():
            server.stop()


def write_config(path: Path, prometheus_url: str | None, **canary: Any) -> str:
    raw = yaml.safe_load((ROOT / "tradewise.yaml").read_text(encoding="utf-8"))
    raw["defaults"]["release"] = {
        "verify": {"duration": "3s", "users": 4},
        "canary": {"steps": [50, 100], "hold": "3s", "window": "15s", **canary},
    }
    if prometheus_url is not None:
        raw["defaults"]["monitoring"] = {"prometheus_url": prometheus_url}
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return str(path)


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


class WeightWatcher:
    """Reads the canary Ingress from the emulator's store every 20 ms while a deploy runs: the
    weights it carried, in order (each once)."""

    def __init__(self, emu: Emulator) -> None:
        self.emu = emu
        self.seen: list[str] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopping.wait(0.02):
            ingress = self.emu.get("Ingress", NS, CANARY_INGRESS)
            if ingress is None:
                continue
            weight = (ingress["metadata"].get("annotations") or {}).get(WEIGHT)
            if weight is not None and (not self.seen or self.seen[-1] != weight):
                self.seen.append(weight)

    def stop(self) -> list[str]:
        self.stopping.set()
        self.thread.join(timeout=5)
        return self.seen


def records(emu: Emulator) -> dict[int, Any]:
    from tradewise_ops.core.release import from_secret

    return {
        r.revision: r for r in (from_secret(s) for s in emu.list("Secret", NS, "owner=tradewise"))
    }


def start_rolling(config: str) -> None:
    first = run(config, "deploy", "staging", "--tag", "v1")
    assert first.exit_code == 0, first.stderr


def test_a_healthy_canary_walks_every_step_then_takes_the_service(
    cluster: Emulator, world: dict[str, Any], tmp_path: Path
) -> None:
    config = write_config(tmp_path / "c.yaml", world["prometheus"].url)
    start_rolling(config)
    dry = run(config, "deploy", "staging", "--tag", "v2", "--strategy", "canary", "--dry-run")
    assert dry.exit_code == 0, dry.stderr
    for text in ("canary-open", "step 1/2: weight 50%", "step 2/2: weight 100%", "canary-close"):
        assert text in dry.stdout, text
    cluster.reset_requests()
    watcher = WeightWatcher(cluster)
    result = run(config, "deploy", "staging", "--tag", "v2", "--strategy", "canary", "-o", "json")
    seen = watcher.stop()
    assert result.exit_code == 0, result.stderr
    err = result.stderr
    assert "canary step 1/2: weight 50%" in err and "canary step 2/2: weight 100%" in err
    assert "left: v2 p95" in err  # live numbers while a step holds
    doc = json.loads(result.stdout)
    steps = doc["canary_steps"]
    assert [(s["step"], s["weight"], s["passed"]) for s in steps] == [(1, 50, True), (2, 100, True)]
    for s in steps:  # real numbers from Prometheus, for both versions
        assert s["canary"]["rps"] > 0 and s["stable"]["rps"] > 0
        assert s["canary"]["error_rate"] == 0 and s["canary"]["p95_ms"] < 500
    # the canary Ingress carried weight 0 (created: maybe too briefly to see), 50, 100; then it
    # and its Service went
    assert [w for w in seen if w != "0"] == ["50", "100"] and seen[-1] == "100"
    assert cluster.get("Ingress", NS, CANARY_INGRESS) is None
    assert cluster.get("Service", NS, CANARY_SERVICE) is None
    assert service_slot(cluster) == "blue"
    hpa = cluster.get("HorizontalPodAutoscaler", NS, HPA)
    assert hpa is not None and hpa["spec"]["scaleTargetRef"]["name"] == f"{API}-blue"
    stored = records(cluster)[2]
    assert stored.status == "deployed" and stored.strategy == "canary"
    assert stored.verification["passed"] is True and len(stored.verification["steps"]) == 2
    assert stored.verification["url"] == world["prometheus"].url
    history = run(config, "history", "staging")
    assert "pass p95" in history.stdout


def test_an_erroring_canary_aborts_at_the_first_step(
    cluster: Emulator, world: dict[str, Any], tmp_path: Path
) -> None:
    config = write_config(tmp_path / "c.yaml", world["prometheus"].url)
    start_rolling(config)
    cluster.reset_requests()
    watcher = WeightWatcher(cluster)
    result = run(config, "deploy", "staging", "--tag", "v3", "--strategy", "canary", "-o", "json")
    seen = watcher.stop()
    assert result.exit_code == 1, result.stderr
    assert [w for w in seen if w != "0"] == ["50"]  # never past the first step
    assert "canary step 1/2 (50%)" in result.stderr and "breached: errors" in result.stderr
    assert "step 2/2" not in result.stderr
    doc = json.loads(result.stdout)
    assert doc["status"] == "failed"
    (step,) = doc["canary_steps"]
    assert step["passed"] is False and step["canary"]["error_rate"] > 0.01
    assert step["stable"]["error_rate"] == 0
    # weight 0, then the canary deleted; the stable Service never moved
    assert cluster.get("Ingress", NS, CANARY_INGRESS) is None
    assert cluster.get("Service", NS, CANARY_SERVICE) is None
    assert cluster.get("Deployment", NS, f"{API}-blue") is None
    assert service_slot(cluster) is None  # still the rolling API
    touched = [r for r in cluster.requests if r.method != "GET" and r.path.endswith((SERVICE, HPA))]
    assert touched == []
    ingress_patches = [
        r for r in cluster.requests
        if r.method == "PATCH" and r.path.endswith(f"/ingresses/{CANARY_INGRESS}")
        and r.content_type.startswith("application/merge-patch")
    ]  # fmt: skip
    assert len(ingress_patches) == 2  # weight 50, then weight 0 before the delete
    deleted = next(
        r for r in cluster.requests
        if r.method == "DELETE" and r.path.endswith(f"/ingresses/{CANARY_INGRESS}")
    )  # fmt: skip
    assert ingress_patches[-1].at <= deleted.at
    stored = records(cluster)[2]
    assert stored.status == "failed"
    assert stored.verification["passed"] is False
    assert stored.verification["step"]["weight"] == 50
    assert stored.verification["error_rate"] > 0.01


def test_sigterm_during_a_step_sets_weight_0_and_deletes_the_canary(
    cluster: Emulator, world: dict[str, Any], tmp_path: Path, kubeconfig: Path
) -> None:
    config = write_config(tmp_path / "c.yaml", world["prometheus"].url, hold="60s")
    start_rolling(config)
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "NO_COLOR": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tradewise_ops", "--config", config, "deploy", "staging",
         "--tag", "v2", "--strategy", "canary"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT,
    )  # fmt: skip
    cluster.wait_for(
        lambda: any(
            r.method == "PATCH" and r.path.endswith(f"/ingresses/{CANARY_INGRESS}")
            for r in cluster.requests
        ),
        timeout=60,
        what="the first weight",
    )
    time.sleep(1)
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err  # SIGTERM: the clean stop of Ctrl-C, exit 143
    assert "the canary got weight 0 and was deleted" in err
    assert cluster.get("Ingress", NS, CANARY_INGRESS) is None
    assert cluster.get("Deployment", NS, f"{API}-blue") is None
    assert service_slot(cluster) is None
    assert records(cluster)[2].status == "failed"


def test_without_prometheus_each_step_runs_the_verification_load(
    cluster: Emulator, world: dict[str, Any], tmp_path: Path
) -> None:
    config = write_config(tmp_path / "c.yaml", None)
    start_rolling(config)
    url = world["servers"]["v2"].url
    result = run(config, "deploy", "staging", "--tag", "v2", "--strategy", "canary",
                 "--verify-url", url, "-o", "json")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "judged by the verification load" in result.stderr
    steps = json.loads(result.stdout)["canary_steps"]
    assert [(s["weight"], s["passed"], s["source"]) for s in steps] == [
        (50, True, "load"),
        (100, True, "load"),
    ]
    assert all(s["canary"]["rps"] > 0 for s in steps)
    assert service_slot(cluster) == "blue"


@pytest.mark.parametrize(
    ("args", "prometheus", "says"),
    [
        (("--canary-steps", "10,50"), True, "must end at 100"),
        (("--canary-steps", "50,25,100"), True, "must go up"),
        (("--canary-hold", "0"), True, "not a positive duration"),
        (("--no-verify",), False, "--no-verify leaves a canary without Prometheus"),
        (("--tag", "v1"), True, "needs a tag other than the running one's"),
    ],
)
def test_bad_canary_input_exits_2_and_applies_nothing(
    cluster: Emulator, tmp_path: Path, args: tuple[str, ...], prometheus: bool, says: str
) -> None:
    config = write_config(tmp_path / "c.yaml", "http://127.0.0.1:9" if prometheus else None)
    start_rolling(config)
    cluster.reset_requests()
    tag = () if "--tag" in args else ("--tag", "v2")
    result = run(config, "deploy", "staging", *tag, "--strategy", "canary", *args)
    assert result.exit_code == 2, result.stderr
    assert says in result.stderr
    assert len([line for line in result.stderr.splitlines() if line.strip()]) == 1
    assert [r for r in cluster.requests if r.method != "GET"] == []


def test_bad_canary_steps_in_the_config_exit_2(tmp_path: Path) -> None:
    for steps, says in (([10, 50], "must end at 100"), ([50, 10, 100], "must go up")):
        config = write_config(tmp_path / "c.yaml", None, steps=steps)
        result = run(config, "deploy", "staging", "--strategy", "canary", "--dry-run")
        assert result.exit_code == 2 and says in result.stderr, result.stderr
    config = write_config(tmp_path / "c.yaml", None, hold=0)
    result = run(config, "deploy", "staging", "--strategy", "canary", "--dry-run")
    assert result.exit_code == 2 and "hold" in result.stderr


def test_an_unreachable_prometheus_exits_3_before_any_change(
    cluster: Emulator, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "c.yaml", f"http://127.0.0.1:{free_port()}")
    start_rolling(config)
    cluster.reset_requests()
    result = run(config, "deploy", "staging", "--tag", "v2", "--strategy", "canary")
    assert result.exit_code == 3, result.stderr
    assert "Prometheus at" in result.stderr and "does not answer" in result.stderr
    assert [r for r in cluster.requests if r.method != "GET"] == []


def test_a_query_prometheus_refuses_exits_2_before_any_change(
    cluster: Emulator, world: dict[str, Any], tmp_path: Path
) -> None:
    config = write_config(
        tmp_path / "c.yaml",
        world["prometheus"].url,
        queries={"rps": 'sum(rate(x{version="$version"}'},
    )
    start_rolling(config)
    cluster.reset_requests()
    result = run(config, "deploy", "staging", "--tag", "v2", "--strategy", "canary")
    assert result.exit_code == 2, result.stderr
    assert "Prometheus refused the query" in result.stderr
    assert [r for r in cluster.requests if r.method != "GET"] == []


def test_the_prometheus_client_reads_numbers_and_names_what_is_wrong(
    world: dict[str, Any],
) -> None:
    from tradewise_ops.adapters.prometheus import PrometheusClient
    from tradewise_ops.errors import BadInputError, UnreachableError

    client = PrometheusClient(world["prometheus"].url)
    assert client.value("vector(3) + vector(4)") == 7
    assert client.value('flask_request_total{version="nope"}') is None  # no data
    assert client.value("vector(0) / vector(0)") is None  # NaN: no data
    total = client.value(f'sum(flask_request_total{{namespace="{NS}",version="v1"}})')
    assert total is not None and total > 0
    with pytest.raises(BadInputError, match="refused the query"):
        client.value("sum(")
    with pytest.raises(UnreachableError, match="answered 404"):  # the app is no Prometheus
        PrometheusClient(world["servers"]["v1"].url).value("vector(1)")
    with pytest.raises(UnreachableError, match="does not answer"):
        PrometheusClient(f"http://127.0.0.1:{free_port()}", timeout=2).value("vector(1)")
