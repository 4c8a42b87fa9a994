"""A compose stack really running on a private dockerd, for the ``--env compose`` tests.

No image can be pulled here, so the stack is the checkout's compose file with each service's
image and command replaced by the test base image idling (its ``environment`` kept, so the
services' ``DATABASE_URL`` is the real file's); the database is the session's PostgreSQL on
loopback, reached through that URL (host networking, as the real stack). The ``postgres``
service's container gets this machine's ``pg_dump``/``pg_restore`` (PostgreSQL 15, the real
image's major) and the libraries they link, mounted read-only, so ``--pg-tools compose`` runs
them inside it through ``docker-compose exec -T`` as it would in the ``postgres:15`` image.

Import ``stack`` (and ``docker_engine``, ``base_image``) into a test module to use it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner, Result

from tests.app_data import store_analyses
from tests.conftest import PG_BIN
from tests.docker_engine import (  # noqa: F401 - fixtures
    DockerEngine,
    base_image,
    docker_engine,
)
from tests.helpers import require_binary
from tradewise_ops.cli.main import app

ROOT = Path(__file__).resolve().parents[1]
PROJECT = "tradewise"
IDLE = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"]
GLIBC = ("libc.so", "libm.so", "libresolv.so", "libpthread.so", "libdl.so", "librt.so", "ld-")


def pg_tools_dir(target: Path) -> Path:
    """``bin/pg_dump``, ``bin/pg_restore`` and the non-glibc libraries they link (``lib/``)."""
    (target / "bin").mkdir(parents=True)
    (target / "lib").mkdir()
    for tool in ("pg_dump", "pg_restore"):
        shutil.copy2(PG_BIN / tool, target / "bin" / tool)
        linked = subprocess.run(
            ["ldd", str(PG_BIN / tool)], capture_output=True, text=True, check=True
        ).stdout
        for line in linked.splitlines():
            parts = line.split("=>")
            if len(parts) != 2 or not parts[1].strip().startswith("/"):
                continue
            lib = Path(parts[1].split()[0])
            if not lib.name.startswith(GLIBC):
                shutil.copy2(lib, target / "lib" / lib.name)
    return target


def stand_in_compose_file(base: str, pg_dir: Path, dest: Path) -> Path:
    """The checkout's compose file, each service the base image idling, environments kept."""
    real = yaml.safe_load((ROOT / "compose" / "docker-compose.yml").read_text())
    services: dict[str, Any] = {}
    for name, svc in real["services"].items():
        services[name] = {
            "image": base,
            "network_mode": "host",
            "command": IDLE,
            "environment": dict(svc.get("environment") or {}),
        }
    services["postgres"]["environment"].update(
        PATH="/opt/pg/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        LD_LIBRARY_PATH="/opt/pg/lib",
    )
    services["postgres"]["volumes"] = [f"{pg_dir}:/opt/pg:ro"]
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(yaml.safe_dump({"version": "2.4", "services": services}))
    return dest


@pytest.fixture
def stack(
    tmp_path: Path,
    docker_engine: DockerEngine,  # noqa: F811
    base_image: str,  # noqa: F811
    postgres_server: Any,
    postgres_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[dict[str, Any]]:
    """The stand-in stack's file in ``tmp_path/compose`` (the CLI runs there), its variables,
    a config whose compose environment keeps its state in ``tmp_path/state`` (``configure``
    rewrites its url and local keys), ``compose(*args)`` runs docker-compose on it."""
    compose = require_binary("docker-compose", "apt-get install docker-compose")
    require_binary("ldd")
    store_analyses(postgres_url)
    file = stand_in_compose_file(
        base_image, pg_tools_dir(tmp_path / "pg"), tmp_path / "compose" / "docker-compose.yml"
    )
    raw = yaml.safe_load((ROOT / "tradewise.yaml").read_text())
    config = tmp_path / "tradewise.yaml"

    def configure(url: str | None = None, **local: Any) -> None:
        """The compose environment's ``url`` and ``local`` keys (state_dir kept) in the config."""
        env = raw["environments"]["compose"]
        env["local"] = {"state_dir": str(tmp_path / "state"), **local}
        if url is not None:
            env["url"] = url
        config.write_text(yaml.safe_dump(raw))

    configure()
    env = {
        "DOCKER_HOST": docker_engine.host,
        "TW_POSTGRES_PORT": str(postgres_server.port),
        "TW_POSTGRES_USER": "postgres",
        "TW_POSTGRES_DB": postgres_url.rsplit("/", 1)[1],
        "TW_POSTGRES_PASSWORD": "s3cret-pw",
    }
    monkeypatch.chdir(tmp_path)

    def compose_cmd(*args: str) -> str:
        done = subprocess.run(
            [compose, "--file", str(file), "--project-name", PROJECT, *args],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    try:
        yield {
            "config": config,
            "env": env,
            "url": postgres_url,
            "compose": compose_cmd,
            "configure": configure,
            "file": file,
        }
    finally:
        subprocess.run(
            [compose, "--file", str(file), "--project-name", PROJECT, "down", "--timeout", "1"],
            env={**os.environ, **env},
            capture_output=True,
            timeout=300,
        )


def run(stack: dict[str, Any], *args: str) -> Result:
    return CliRunner().invoke(app, ["--config", str(stack["config"]), *args], env=stack["env"])
