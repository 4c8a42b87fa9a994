"""Contract tests of the emulator's pod logs: the official client and kubectl, over real HTTP."""

from __future__ import annotations

import json
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


def _pod(emu: Emulator, name: str, containers: tuple[str, ...] = ("main",), **state: Any) -> None:
    running = state or {"running": {"startedAt": "2025-01-01T00:00:00Z"}}
    emu.put(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": NS, "labels": {"app": "web"}},
            "spec": {"containers": [{"name": c, "image": "x:1"} for c in containers]},
            "status": {
                "phase": "Running",
                "containerStatuses": [
                    {"name": c, "ready": True, "restartCount": 0, "state": running}
                    for c in containers
                ],
            },
        }
    )


@pytest.fixture
def core(kubeconfig: Path) -> Any:
    from kubernetes import client, config

    return client.CoreV1Api(config.new_client_from_config(str(kubeconfig)))


def test_read_with_tail_since_and_timestamps(emulator: Emulator, core: Any) -> None:
    _pod(emulator, "web-1")
    now = time.time()
    emulator.write_log(NS, "web-1", ["old 1", "old 2"], at=now - 600)
    emulator.write_log(NS, "web-1", "new 1\nnew 2\nnew 3")
    assert core.read_namespaced_pod_log("web-1", NS) == "old 1\nold 2\nnew 1\nnew 2\nnew 3\n"
    assert core.read_namespaced_pod_log("web-1", NS, tail_lines=2) == "new 2\nnew 3\n"
    assert core.read_namespaced_pod_log("web-1", NS, since_seconds=60) == "new 1\nnew 2\nnew 3\n"
    # since first, then tail (as the kubelet applies them)
    assert core.read_namespaced_pod_log("web-1", NS, since_seconds=60, tail_lines=1) == "new 3\n"
    stamped = core.read_namespaced_pod_log("web-1", NS, tail_lines=1, timestamps=True)
    stamp, _, text = stamped.rstrip("\n").partition(" ")
    assert text == "new 3" and stamp.endswith("Z") and "T" in stamp
    assert core.read_namespaced_pod_log("web-1", NS, tail_lines=0) == ""


def test_errors_worded_like_the_api_server(emulator: Emulator, core: Any) -> None:
    from kubernetes.client.rest import ApiException

    _pod(emulator, "two", containers=("app", "sidecar"))
    emulator.write_log(NS, "two", "from the sidecar", container="sidecar")
    assert core.read_namespaced_pod_log("two", NS, container="sidecar") == "from the sidecar\n"
    with pytest.raises(ApiException) as missing_container:
        core.read_namespaced_pod_log("two", NS)
    assert missing_container.value.status == 400
    assert "a container name must be specified for pod two, choose one of: [app sidecar]" in (
        missing_container.value.body
    )
    with pytest.raises(ApiException) as wrong:
        core.read_namespaced_pod_log("two", NS, container="nope")
    assert (
        wrong.value.status == 400 and "container nope is not valid for pod two" in wrong.value.body
    )
    with pytest.raises(ApiException) as gone:
        core.read_namespaced_pod_log("nobody", NS)
    assert gone.value.status == 404
    _pod(emulator, "pulling", waiting={"reason": "ImagePullBackOff"})
    with pytest.raises(ApiException) as waiting:
        core.read_namespaced_pod_log("pulling", NS)
    assert waiting.value.status == 400
    assert json.loads(waiting.value.body)["message"] == (
        'container "main" in pod "pulling" is waiting to start: ImagePullBackOff'
    )
    # a crash-looping container has run: its log is served
    _pod(emulator, "crashing", waiting={"reason": "CrashLoopBackOff"})
    emulator.write_log(NS, "crashing", "Traceback: boom")
    assert core.read_namespaced_pod_log("crashing", NS) == "Traceback: boom\n"


def test_follow_streams_new_lines_until_the_container_stops(emulator: Emulator, core: Any) -> None:
    _pod(emulator, "web-1")
    emulator.write_log(NS, "web-1", ["one", "two"])
    response = core.read_namespaced_pod_log(
        "web-1", NS, follow=True, tail_lines=1, _preload_content=False
    )
    got: list[str] = []
    done = threading.Event()

    def read() -> None:
        buffer = b""
        for chunk in response.stream(amt=None, decode_content=False):
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                got.append(line.decode())
        done.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    emulator.wait_for(lambda: got == ["two"], what="the tail line")
    emulator.write_log(NS, "web-1", "three")
    emulator.wait_for(lambda: got == ["two", "three"], what="a line written while following")
    assert not done.is_set()
    emulator.end_log(NS, "web-1")
    assert done.wait(5), "the stream did not end when the container stopped"
    # and a stream ends when its pod is deleted
    _pod(emulator, "web-2")
    second = core.read_namespaced_pod_log("web-2", NS, follow=True, _preload_content=False)
    ended = threading.Event()
    threading.Thread(target=lambda: (second.read(), ended.set()), daemon=True).start()
    time.sleep(0.3)
    assert not ended.is_set()
    core.delete_namespaced_pod("web-2", NS, _preload_content=False)
    assert ended.wait(5), "the stream did not end when the pod was deleted"


def test_kubectl_logs(kubeconfig: Path, emulator: Emulator) -> None:
    binary = require_binary("kubectl", "kubectl on PATH, shipped with this machine image")
    _pod(emulator, "web-1")
    emulator.write_log(NS, "web-1", ["a", "b", "c"])
    done = subprocess.run(
        [binary, "--kubeconfig", str(kubeconfig), "logs", "web-1", "-n", NS, "--tail=2"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "b\nc\n"
