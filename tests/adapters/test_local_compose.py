"""The compose stack: the file as docker-compose reads it, and ComposeStack's commands and errors.

No image can be pulled here (postgres, redis, nginx), so a full ``docker-compose up`` is not run:
these tests check what docker-compose makes of the file and how ComposeStack drives it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from tests.helpers import require_binary
from tradewise_ops.adapters.local import ComposeStack, stack_for
from tradewise_ops.adapters.local.compose import interpolate
from tradewise_ops.core.config import LocalSettings, load_config
from tradewise_ops.errors import BadInputError, UnreachableError

ROOT = Path(__file__).resolve().parents[2]
FILE = ROOT / "compose" / "docker-compose.yml"


def compose_env(
    api_port: int = 18000, redis_port: int = 16379, url: str = "http://127.0.0.1:18080"
):
    env = load_config(ROOT / "tradewise.yaml").environment("compose")
    local = LocalSettings(api_port=api_port, redis_port=redis_port, api_processes=3)
    return dataclasses.replace(env, local=local, url=url)


@pytest.fixture
def stack() -> ComposeStack:
    require_binary("docker-compose", "apt-get install docker-compose")
    return ComposeStack(compose_env(), file=FILE)


def test_config_validates_and_fills_in_the_environment(stack: ComposeStack) -> None:
    config = yaml.safe_load(stack.config())
    services = config["services"]
    assert set(services) == {"postgres", "redis", "api", "worker", "precompute", "nginx"}
    # no bridge network anywhere: every service on the host's network
    assert {s["network_mode"] for s in services.values()} == {"host"}
    assert "networks" not in config
    assert services["postgres"]["image"] == "postgres:15"
    assert "pgdata:/var/lib/postgresql/data:rw" in services["postgres"]["volumes"]
    assert "pgdata" in config["volumes"]
    assert services["redis"]["image"] == "redis:7"
    api = services["api"]
    assert api["image"] == "tradewise-ai:latest"
    assert api["environment"]["BIND"] == "127.0.0.1:18000"
    assert api["environment"]["WEB_CONCURRENCY"] == "3"
    assert api["environment"]["REDIS_URL"] == "redis://127.0.0.1:16379/0"
    assert services["worker"]["image"] == "tradewise-ai-worker:latest"
    assert services["precompute"]["command"] == ["tradewise-precompute"]
    for name in ("api", "worker", "precompute"):
        svc = services[name]
        assert svc["read_only"] is True and svc["user"] == "1000:1000"
        assert "/tmp" in svc["tmpfs"]
        assert svc["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert svc["depends_on"]["redis"]["condition"] == "service_healthy"
    assert services["nginx"]["depends_on"]["api"]["condition"] == "service_healthy"
    assert services["nginx"]["environment"]["TW_NGINX_PORT"] == "18080"
    for svc in services.values():
        assert svc["healthcheck"]["test"][0] == "CMD"


def test_the_nginx_template_proxies_to_the_api_port() -> None:
    template = (ROOT / "compose" / "nginx" / "default.conf.template").read_text()
    assert "server 127.0.0.1:${TW_API_PORT}" in template
    assert "listen 127.0.0.1:${TW_NGINX_PORT};" in template
    assert "proxy_pass http://tradewise_api;" in template


def test_commands_and_variables(stack: ComposeStack) -> None:
    cmd = stack.command("up", "--detach")
    assert cmd[1:] == ["--file", str(FILE), "--project-name", "tradewise", "up", "--detach"]
    assert cmd[0].endswith("docker-compose")
    assert stack.variables() == {
        "TW_NGINX_PORT": "18080",
        "TW_API_PORT": "18000",
        "TW_REDIS_PORT": "16379",
        "TW_POSTGRES_PORT": "5432",
        "TW_API_IMAGE": "tradewise-ai:latest",
        "TW_WORKER_IMAGE": "tradewise-ai-worker:latest",
        "TW_API_WORKERS": "3",
    }
    assert stack.url == "http://127.0.0.1:18080"
    assert isinstance(stack_for(compose_env()), ComposeStack)


def test_no_engine_is_unreachable_naming_docker_host(
    stack: ComposeStack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/nothing.sock")
    with pytest.raises(UnreachableError, match="DOCKER_HOST"):
        stack.status()
    with pytest.raises(UnreachableError, match="DOCKER_HOST"):
        stack.up(timeout=5)


def test_scale_bounds_are_checked_before_anything_runs(stack: ComposeStack) -> None:
    with pytest.raises(BadInputError, match="outside 0..50"):
        stack.scale("workers", 51)
    with pytest.raises(BadInputError, match="cannot scale 'nginx'"):
        stack.scale("nginx", 2)
    with pytest.raises(BadInputError, match="no compose service 'db'"):
        list(stack.logs("db"))


def test_missing_docker_compose_is_a_clear_sentence(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    stack = ComposeStack(compose_env(), file=FILE)
    with pytest.raises(BadInputError, match="docker-compose is not installed"):
        stack.status()


def test_interpolate_as_docker_compose_does() -> None:
    values = {"A": "a", "EMPTY": ""}
    assert interpolate("$$A ${A} $A", values) == "$A a a"
    assert interpolate("${EMPTY:-d}|${EMPTY-d}|${NONE-d}|${NONE:-d}", values) == "d||d|d"
    assert interpolate("${NONE}${EMPTY}x", values) == "x"
    with pytest.raises(BadInputError, match="NONE is not set \\(here\\): say it"):
        interpolate("${NONE:?say it}", values, where="here")


def test_the_database_url_is_the_one_docker_compose_gives_the_services(
    stack: ComposeStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("TW_POSTGRES_PORT", "TW_POSTGRES_USER", "TW_POSTGRES_PASSWORD", "TW_POSTGRES_DB"):
        monkeypatch.delenv(name, raising=False)
    assert stack.database_url() == (
        "postgresql+psycopg://tradewise:tradewise@127.0.0.1:5432/tradewise"
    )
    assert stack.postgres_major() == 15  # postgres:15
    monkeypatch.setenv("TW_POSTGRES_PORT", "15432")
    monkeypatch.setenv("TW_POSTGRES_USER", "ops")
    monkeypatch.setenv("TW_POSTGRES_PASSWORD", "pw")
    monkeypatch.setenv("TW_POSTGRES_DB", "trades")
    url = "postgresql+psycopg://ops:pw@127.0.0.1:15432/trades"
    assert stack.database_url() == url
    services = yaml.safe_load(stack.config())["services"]
    for name in ("api", "worker", "precompute"):
        assert services[name]["environment"]["DATABASE_URL"] == url
    postgres = services["postgres"]
    assert postgres["environment"]["POSTGRES_USER"] == "ops"
    assert postgres["environment"]["POSTGRES_DB"] == "trades"
    assert postgres["environment"]["POSTGRES_PASSWORD"] == "pw"
    assert postgres["healthcheck"]["test"][-2:] == ["-U", "ops"]
