"""Contract tests of the emulator's metrics API (what metrics-server serves) and service proxy,
with kubectl and the official client over real HTTP."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import require_binary
from tests.k8s_emulator import Emulator

pytest_plugins = ["tests.k8s_emulator.fixtures"]

NS = "tradewise-ai"


def _kubectl(kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    binary = require_binary("kubectl", "kubectl on PATH, shipped with this machine image")
    return subprocess.run(
        [binary, "--kubeconfig", str(kubeconfig), *args],
        capture_output=True,
        text=True,
        timeout=30,
    )


def _pod(emu: Emulator, name: str) -> None:
    emu.put(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"containers": [{"name": "app", "image": "x:1"}]},
            "status": {"phase": "Running"},
        }
    )


def test_metrics_api_is_served_only_when_asked_and_kubectl_top_reads_it(
    emulator: Emulator, kubeconfig: Path
) -> None:
    from kubernetes import client, config

    api = config.new_client_from_config(str(kubeconfig))
    groups = {g.name for g in client.ApisApi(api).get_api_versions().groups}
    assert "metrics.k8s.io" not in groups  # no metrics-server: a real cluster's default
    emulator.serve_metrics_api()
    groups = {g.name for g in client.ApisApi(api).get_api_versions().groups}
    assert "metrics.k8s.io" in groups
    _pod(emulator, "web-1")
    emulator.set_pod_metrics(NS, "web-1", cpu="250000000n", memory="900Mi")
    listed = client.CustomObjectsApi(api).list_namespaced_custom_object(
        "metrics.k8s.io", "v1beta1", NS, "pods"
    )
    (item,) = listed["items"]
    assert item["containers"] == [
        {"name": "app", "usage": {"cpu": "250000000n", "memory": "900Mi"}}
    ]
    top = _kubectl(kubeconfig, "top", "pod", "-n", NS, "--no-headers")
    assert top.returncode == 0, top.stderr
    assert top.stdout.split() == ["web-1", "250m", "900Mi"]


class _App(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        return

    def do_GET(self) -> None:  # noqa: N802
        status = 503 if self.path.startswith("/down") else 200
        body = json.dumps({"path": self.path}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def backend() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _App)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_service_proxy_forwards_to_the_registered_backend(
    emulator: Emulator, kubeconfig: Path, backend: str
) -> None:
    from kubernetes import client, config

    emulator.put(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web", "namespace": NS},
            "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80}]},
        }
    )
    raw = f"/api/v1/namespaces/{NS}/services/web:http/proxy/stats?x=1"
    none_yet = _kubectl(kubeconfig, "get", "--raw", raw)
    assert none_yet.returncode != 0
    assert 'no endpoints available for service "web"' in none_yet.stderr
    emulator.proxy_service(NS, "web", backend)
    got = _kubectl(kubeconfig, "get", "--raw", raw)
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout) == {"path": "/stats?x=1"}
    by_number = _kubectl(
        kubeconfig, "get", "--raw", f"/api/v1/namespaces/{NS}/services/web:80/proxy/"
    )
    assert json.loads(by_number.stdout) == {"path": "/"}
    api = client.CoreV1Api(config.new_client_from_config(str(kubeconfig)))
    answer = api.connect_get_namespaced_service_proxy_with_path("web:http", NS, "a/b")
    assert json.loads(answer.replace("'", '"')) == {"path": "/a/b"}
    # the backend's own status comes through
    down = _kubectl(
        kubeconfig, "get", "--raw", f"/api/v1/namespaces/{NS}/services/web:http/proxy/down"
    )
    assert down.returncode != 0
    wrong_port = _kubectl(
        kubeconfig, "get", "--raw", f"/api/v1/namespaces/{NS}/services/web:9/proxy/"
    )
    assert wrong_port.returncode != 0 and 'no service port "9"' in wrong_port.stderr
    missing = _kubectl(kubeconfig, "get", "--raw", f"/api/v1/namespaces/{NS}/services/nope/proxy/")
    assert missing.returncode != 0 and "not found" in missing.stderr
    statuses = [r.status for r in emulator.requests_matching("GET", "/proxy")]
    assert 200 in statuses and 503 in statuses
