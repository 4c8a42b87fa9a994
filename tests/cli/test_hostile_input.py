"""Hostile input through the real ``tradewise`` entry point: bad files, huge numbers, passwords.

Each case runs the console script (a subprocess) so the exit code and both streams are exactly
what a user sees: exit 2 with one sentence, never "a bug in tradewise" and a stack, and never a
password.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.helpers import free_port
from tradewise_ops.resources import data_path

BIN = Path(sys.executable).parent
SECRET = "s3cr3t-Pw"


def tradewise(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEWISE_")}
    env["XDG_CACHE_HOME"] = str(cwd / "cache")
    return subprocess.run(
        [str(BIN / "tradewise"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env=env,
    )


def config_file(tmp_path: Path, replace: tuple[str, str] | None = None, raw: bytes = b"") -> Path:
    path = tmp_path / "tradewise.yaml"
    if raw:
        path.write_bytes(raw)
        return path
    text = data_path("tradewise.yaml").read_text(encoding="utf-8")
    if replace is not None:
        assert replace[0] in text
        text = text.replace(replace[0], replace[1], 1)
    path.write_text(text, encoding="utf-8")
    return path


def refused(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert result.stdout == ""
    assert "Traceback" not in output and "a bug in tradewise" not in output
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


def test_a_config_that_is_not_utf8(tmp_path: Path) -> None:
    text = data_path("tradewise.yaml").read_bytes()
    path = config_file(tmp_path, raw=text.replace(b"# Predictive", "# Prédictive".encode("cp1252")))
    result = tradewise("--config", str(path), "lint", "prod", cwd=tmp_path)
    refused(result, f"config file {path} is not UTF-8 text: byte 0xe9 at line")


def test_a_duplicate_key(tmp_path: Path) -> None:
    path = config_file(tmp_path, ("  max_replicas: 50 ", "  max_replicas: 50\n  max_replicas: 5 "))
    line = path.read_text(encoding="utf-8").splitlines().index("  max_replicas: 50") + 1
    result = tradewise("--config", str(path), "render", "prod", "--tag", "v1", cwd=tmp_path)
    refused(result, f"duplicate key 'max_replicas' at line {line} and again at line {line + 1}")


@pytest.mark.parametrize(
    ("replace", "message"),
    [
        (("max_replicas: 50", "max_replicas: 2147483648"),
         "defaults.max_replicas is 2147483648; expected a whole number <= 2147483647"),
        (("max: 20,", "max: 80,"),
         "defaults.components.api.autoscaling.max is 80; expected at most max_replicas (50)"),
        (("peak: {api: 15,", "peak: {api: 4294967296,"),
         "profiles.peak.api is 4294967296; expected a whole number <= 2147483647"),
        (("max_replicas: 50", "max_replicas: " + "9" * 5000), "holds a value YAML cannot read"),
    ],
)  # fmt: skip
def test_replica_counts_kubernetes_would_refuse(
    tmp_path: Path, replace: tuple[str, str], message: str
) -> None:
    path = config_file(tmp_path, replace)
    result = tradewise("--config", str(path), "lint", "prod", cwd=tmp_path)
    refused(result, message)
    assert len(result.stderr) < 1000


@pytest.mark.parametrize(
    ("replicas", "message"),
    [
        ("9" * 5000, "api replicas 999999999999... (5000 digits) is above the cap of 50"),
        ("2147483648", "api replicas 2147483648 is above the cap of 50"),
        ("-" + "9" * 5000, "api replicas must be 0 or more"),
    ],
)
def test_scale_api_with_a_huge_count(tmp_path: Path, replicas: str, message: str) -> None:
    path = config_file(tmp_path)
    result = tradewise(
        "--config", str(path), "scale", "api", replicas, "--env", "prod", "--dry-run", cwd=tmp_path
    )
    refused(result, message)
    assert len(result.stderr) < 1000


def test_a_secret_name_holding_a_database_url(tmp_path: Path) -> None:
    url = f"postgresql://tradewise:{SECRET}@postgres:5432/tradewise"
    path = config_file(tmp_path, ("secret_name: tradewise-secrets", f"secret_name: {url!r}"))
    for command in (["render", "prod", "--tag", "v1"], ["lint", "prod"]):
        result = tradewise("--config", str(path), *command, cwd=tmp_path)
        refused(
            result,
            f"{path}: defaults.secret_name is a value that looks like a credential (not shown)",
            "expected the name of an existing Secret: a DNS-1123 subdomain",
        )
        assert SECRET not in result.stdout + result.stderr


class _Target:
    """An HTTP server on loopback that answers 200 and records the Authorization headers."""

    def __init__(self) -> None:
        seen: list[str] = []
        self.seen = seen

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server API
                seen.append(self.headers.get("Authorization", ""))
                body = b'{"status":"ok"}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def target() -> Iterator[_Target]:
    server = _Target()
    yield server
    server.close()


def test_a_load_test_host_with_a_password(tmp_path: Path, target: _Target) -> None:
    host = f"http://ops:{SECRET}@127.0.0.1:{target.port}"
    result = tradewise(
        "load-test", "2s", "2", "/api/health", "--host", host, "-o", "json", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert SECRET not in result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["target"] == f"http://ops:***@127.0.0.1:{target.port}"
    assert f"ops:***@127.0.0.1:{target.port}" in result.stderr
    # the password went where it belongs: basic auth, the pre-flight check's and Locust's
    basic = "Basic " + base64.b64encode(f"ops:{SECRET}".encode()).decode()
    assert len(target.seen) > 2 and set(target.seen) == {basic}

    closed = f"http://ops:{SECRET}@127.0.0.1:{free_port()}"
    unreachable = tradewise("load-test", "2s", "1", "/api/health", "--host", closed, cwd=tmp_path)
    assert unreachable.returncode == 3, unreachable.stderr
    assert "does not answer" in unreachable.stderr
    assert SECRET not in unreachable.stdout + unreachable.stderr
