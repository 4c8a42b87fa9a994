"""``tradewise logs`` against the emulator (pod logs written by the test) and the local stack."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

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


def run(*args: str, config: str = CONFIG) -> Result:
    return CliRunner().invoke(app, ["--config", config, *args])


@pytest.fixture
def cluster(emulator: Emulator, kubeconfig: Path) -> Emulator:
    emulator.controllers.auto(delay=0.01)
    result = run("deploy", "staging", "--tag", "v1", "--timeout", "20s")
    assert result.exit_code == 0, result.stderr
    return emulator


def pods(emu: Emulator, component: str) -> list[str]:
    selector = f"app.kubernetes.io/component={component}"
    return sorted(p["metadata"]["name"] for p in emu.list("Pod", NS, selector))


def test_logs_of_every_pod_prefixed_with_its_name(cluster: Emulator) -> None:
    api = pods(cluster, "api")
    assert len(api) == 2  # staging runs two API replicas
    old = time.time() - 3600
    for name in api:
        cluster.write_log(NS, name, [f"{name} booted"], at=old)
        cluster.write_log(NS, name, [f"{name} GET /api/health 200", f"{name} GET /x 404"])
    (worker,) = pods(cluster, "worker")
    cluster.write_log(NS, worker, "celery ready")

    result = run("logs", "api", "--env", "staging")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 6
    for name in api:
        prefix = f"[pod/{name}/tradewise-api] "
        assert f"{prefix}{name} booted" in lines and f"{prefix}{name} GET /x 404" in lines
    assert "celery ready" not in result.stdout  # only the API's pods

    tail = run("logs", "api", "--env", "staging", "--tail", "1")
    assert tail.stdout.splitlines() == [f"[pod/{n}/tradewise-api] {n} GET /x 404" for n in api]
    since = run("logs", "api", "--env", "staging", "--since", "10m", "-o", "json")
    assert since.exit_code == 0, since.stderr
    doc = json.loads(since.stdout)
    assert {d["pod"] for d in doc} == set(api) and len(doc) == 4
    assert not any("booted" in d["line"] for d in doc)
    everything = run("logs", "--env", "staging", "--tail", "-1")
    assert "celery ready" in everything.stdout and "booted" in everything.stdout


def test_a_pod_without_a_log_yet_is_named_not_fatal(cluster: Emulator) -> None:
    cluster.controllers.fail_pods(NS, "tradewise-worker-deployment", "ImagePullBackOff")
    result = run("logs", "worker", "--env", "staging")
    assert result.exit_code == 0, result.stderr
    assert "no log yet (container waiting: ImagePullBackOff)" in result.stderr


def test_bad_input(cluster: Emulator) -> None:
    assert run("logs", "nginx", "--env", "staging").exit_code == 2
    follow_json = run("logs", "api", "-f", "--env", "staging", "-o", "json")
    assert follow_json.exit_code == 2 and "one JSON/YAML document" in follow_json.stderr
    assert run("logs", "api", "--env", "staging", "--since", "soon").exit_code == 2


def _new_api_pod(emu: Emulator, name: str) -> None:
    template = emu.get("Deployment", NS, "tradewise-api-deployment")
    assert template is not None
    labels = template["spec"]["template"]["metadata"]["labels"]
    emu.put(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": NS, "labels": labels},
            "spec": template["spec"]["template"]["spec"],
            "status": {
                "phase": "Pending",
                "containerStatuses": [
                    {
                        "name": "tradewise-api",
                        "ready": False,
                        "restartCount": 0,
                        "state": {"waiting": {"reason": "ContainerCreating"}},
                    }
                ],
            },
        }
    )


class Lines:
    """The stdout lines of a child process, read in a thread."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self.proc = proc
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in line for line in self.lines):
                return
            time.sleep(0.05)
        raise AssertionError(f"{text!r} not in {self.lines}")


def test_follow_picks_up_new_lines_and_new_pods_and_ends_on_sigterm(
    cluster: Emulator, kubeconfig: Path
) -> None:
    api = pods(cluster, "api")
    for name in api:
        cluster.write_log(NS, name, f"{name} first")
    env: dict[str, Any] = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tradewise_ops", "--config", CONFIG, "logs", "api", "-f"]
        + ["--env", "staging"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        out = Lines(proc)
        for name in api:
            out.wait_for(f"[pod/{name}/tradewise-api] {name} first")
        cluster.write_log(NS, api[0], "while following")
        out.wait_for(f"[pod/{api[0]}/tradewise-api] while following")
        # a pod that appears (a scale-up): its log is followed once its container runs
        _new_api_pod(cluster, "tradewise-api-deployment-new-0")
        time.sleep(0.5)
        pod = cluster.get("Pod", NS, "tradewise-api-deployment-new-0")
        assert pod is not None
        pod["status"]["phase"] = "Running"
        pod["status"]["containerStatuses"][0]["state"] = {"running": {"startedAt": "now"}}
        cluster.store.replace(
            cluster.resource("Pod"), NS, pod["metadata"]["name"], pod, status_only=True
        )
        cluster.write_log(NS, "tradewise-api-deployment-new-0", ["booting", "listening"])
        out.wait_for("[pod/tradewise-api-deployment-new-0/tradewise-api] listening")
        assert proc.poll() is None  # still following
        began = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=10)
        stopped_in = time.monotonic() - began
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stderr = proc.stderr.read() if proc.stderr else ""
    assert code == 0, stderr
    assert stopped_in < 5
    assert "new pod tradewise-api-deployment-new-0" in stderr
    assert "waiting (ContainerCreating)" in stderr
    booting = out.lines.index("[pod/tradewise-api-deployment-new-0/tradewise-api] booting")
    assert booting >= 0  # a new pod is read from its first line
    # every pod's log request was a follow, and the streams are closed when it ends
    follows = [r for r in cluster.requests_matching("GET", "/log$") if r.query.get("follow")]
    assert len(follows) == 3


def test_local_logs_are_the_stacks(tmp_path: Path) -> None:
    raw = yaml.safe_load((ROOT / "tradewise.yaml").read_text())
    state_dir = tmp_path / "state"
    raw["environments"]["local"]["local"] = {
        "api_port": free_port(),
        "redis_port": free_port(),
        "state_dir": str(state_dir),
    }
    config = tmp_path / "tradewise.yaml"
    config.write_text(yaml.safe_dump(raw))
    logs = state_dir / "logs"
    logs.mkdir(parents=True)
    (logs / "api.log").write_text("".join(f"api line {i}\n" for i in range(5)))
    (logs / "worker-1.log").write_text("worker line\n")
    result = run("logs", "api", "--env", "local", "--tail", "2", config=str(config))
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == ["api line 3", "api line 4"]
    both = run("logs", "--env", "local", config=str(config))
    assert "api | api line 0" in both.stdout and "worker-1 | worker line" in both.stdout
    since = run("logs", "api", "--env", "local", "--since", "5m", config=str(config))
    assert since.exit_code == 2 and "--tail" in since.stderr
