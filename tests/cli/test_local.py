"""``tradewise local ...`` through the CLI, on a real local stack (processes on free ports)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from tests.helpers import free_port, port_open, require_binary
from tradewise_ops.cli.main import app

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """The checkout's config with the local environment on free ports and a temp state dir."""
    raw = yaml.safe_load((ROOT / "tradewise.yaml").read_text())
    raw["environments"]["local"]["local"] = {
        "api_port": free_port(),
        "redis_port": free_port(),
        "api_processes": 1,
        "worker_processes": 1,
        "state_dir": str(tmp_path / "state"),
    }
    path = tmp_path / "tradewise.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def run(config: Path, *args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, ["--config", str(config), *args])


def test_local_up_ps_scale_logs_down(config: Path) -> None:
    require_binary("redis-server", "apt-get install redis-server")
    api_port = yaml.safe_load(config.read_text())["environments"]["local"]["local"]["api_port"]
    try:
        up = run(config, "local", "up", "-o", "json")
        assert up.exit_code == 0, up.stderr
        data = json.loads(up.stdout)
        assert data["url"] == f"http://127.0.0.1:{api_port}"
        assert data["started"] == ["redis", "api", "worker-1", "precompute"]
        assert "waiting for" in up.stderr and "the local stack is up" in up.stderr

        again = run(config, "local", "up")
        assert again.exit_code == 0
        assert "already up" in again.stderr

        ps = run(config, "local", "ps")
        assert ps.exit_code == 0
        for name in ("redis", "api", "worker-1", "precompute"):
            assert name in ps.stdout
        assert str(api_port) in ps.stdout and "running" in ps.stdout

        scaled = run(config, "local", "scale", "workers", "2", "-o", "json")
        assert scaled.exit_code == 0, scaled.stderr
        assert json.loads(scaled.stdout)["counts"]["worker"] == 2
        # global options work after the command too
        ps_json = run(config, "local", "ps", "--output", "json")
        names = [p["name"] for p in json.loads(ps_json.stdout)["processes"]]
        assert "worker-2" in names

        bad = run(config, "local", "scale", "redis", "2")
        assert bad.exit_code == 2 and "cannot scale 'redis'" in bad.stderr

        logs = run(config, "local", "logs", "api", "-n", "20")
        assert logs.exit_code == 0 and "Booting worker" in logs.stdout
    finally:
        down = run(config, "local", "down")
    assert down.exit_code == 0
    assert "stopped" in down.stderr
    assert not port_open("127.0.0.1", api_port)
    after = run(config, "local", "ps")
    assert "not running" in after.stderr


def test_port_in_use_exits_2_naming_the_port(config: Path) -> None:
    require_binary("redis-server", "apt-get install redis-server")
    api_port = yaml.safe_load(config.read_text())["environments"]["local"]["local"]["api_port"]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", api_port))
        sock.listen()
        result = run(config, "local", "up")
    assert result.exit_code == 2
    assert f"port {api_port} (api) is already in use" in result.stderr


def test_scale_when_down_says_so(config: Path) -> None:
    result = run(config, "local", "scale", "api", "2")
    assert result.exit_code == 2
    assert "not up" in result.stderr


def test_a_cluster_environment_is_refused(config: Path) -> None:
    result = run(config, "local", "ps", "--env", "staging")
    assert result.exit_code == 2
    assert "kind kubernetes" in result.stderr


def test_compose_environment_without_an_engine_exits_3(
    config: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    require_binary("docker-compose", "apt-get install docker-compose")
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    result = run(config, "local", "ps", "--env", "compose")
    assert result.exit_code == 3, result.stderr
    assert "DOCKER_HOST" in result.stderr


def test_local_up_with_the_sqlite_broker_needs_no_redis_server(
    config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRADEWISE_LOCAL_BROKER", "sqlite")
    api_port = yaml.safe_load(config.read_text())["environments"]["local"]["local"]["api_port"]
    try:
        up = run(config, "local", "up", "-o", "json")
        assert up.exit_code == 0, up.stderr
        assert json.loads(up.stdout)["started"] == ["api", "worker-1", "precompute"]
        assert "using the SQLite broker, analyses uncached" in up.stderr
        ps = run(config, "local", "ps", "-o", "json")
        assert ps.exit_code == 0
        data = json.loads(ps.stdout)
        assert data["broker"] == "sqlite"
        assert sorted(p["name"] for p in data["processes"]) == ["api", "precompute", "worker-1"]
        table = run(config, "local", "ps")
        assert "no redis: Celery uses the SQLite broker" in table.stderr
    finally:
        down = run(config, "local", "down")
    assert down.exit_code == 0, down.stderr
    assert "stopped api, precompute, worker-1" in down.stderr
    assert not port_open("127.0.0.1", api_port)


def test_a_bad_local_broker_variable_exits_2_naming_it(
    config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRADEWISE_LOCAL_BROKER", "kafka")
    result = run(config, "local", "up")
    assert result.exit_code == 2
    assert "TRADEWISE_LOCAL_BROKER (environment) is 'kafka'" in result.stderr
