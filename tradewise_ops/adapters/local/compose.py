"""``ComposeStack``: the service under docker-compose (kind ``compose``), from ``compose/``.

Runs the ``docker-compose`` v1 command (the one Debian ships) with the ports and images of the
environment passed as variables: nginx on the port of the environment's ``url`` (8080 by
default), the API on ``local.api_port``, Redis on ``local.redis_port``, PostgreSQL on
``TW_POSTGRES_PORT`` (5432). Every service uses host networking.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from urllib.parse import urlparse

from tradewise_ops.adapters.local.common import (
    ProcessInfo,
    Progress,
    StackResult,
    clear_profile_record,
    port_holder,
    port_in_use,
    record_manual_scale,
    recorded_counts,
    wait_ready,
)
from tradewise_ops.core.config import Environment
from tradewise_ops.errors import AbortedError, BadInputError, GoalMissedError, UnreachableError

PROJECT = "tradewise"
COMPOSE_SERVICES = ("postgres", "redis", "api", "worker", "precompute", "nginx")
_ENGINE_DOWN = (
    "cannot connect to the docker daemon",
    "error while fetching server api version",
    "is the docker daemon running",
    "connection refused",
    "no such file or directory",
)


def compose_file(start: Path | None = None) -> Path:
    """``compose/docker-compose.yml`` of the checkout (cwd first)."""
    from tradewise_ops.resources import repo_root

    for base in (start or Path.cwd(), repo_root()):
        if base is not None and (base / "compose" / "docker-compose.yml").is_file():
            return base / "compose" / "docker-compose.yml"
    raise BadInputError("no compose/docker-compose.yml here: run this in the tradewise checkout")


class ComposeStack:
    """The docker-compose stack of one environment (kind ``compose``)."""

    def __init__(
        self,
        env: Environment,
        progress: Progress | None = None,
        file: Path | None = None,
        tag: str = "latest",
        project: str = PROJECT,
    ) -> None:
        if env.kind != "compose":
            raise BadInputError(f"environment {env.name} is of kind {env.kind}, not compose")
        self.env = env
        self.progress: Progress = progress or (lambda _message: None)
        self._file = file
        self.tag = tag
        self.project = project
        self.api_workers = env.local.api_processes

    @property
    def file(self) -> Path:
        """The compose file."""
        if self._file is None:
            self._file = compose_file()
        return self._file

    @property
    def state_dir(self) -> Path:
        """Where tradewise keeps what it set on this stack (``local.state_dir``)."""
        return Path(self.env.local.state_dir).expanduser().resolve()

    def wanted(self) -> dict[str, int]:
        """The API's gunicorn workers and the worker containers the stack should run: the last
        recorded scale, else the config's counts."""
        local = self.env.local
        wanted = {"api": local.api_processes, "worker": local.worker_processes}
        recorded = recorded_counts(self.state_dir)
        return {c: recorded.get(c, n) for c, n in wanted.items()}

    @property
    def nginx_port(self) -> int:
        """The port nginx serves on: the port of the environment's ``url`` (default 8080)."""
        parsed = urlparse(self.env.url or "http://127.0.0.1:8080")
        return parsed.port or 8080

    @property
    def url(self) -> str:
        """Where the API answers (through nginx)."""
        return f"http://127.0.0.1:{self.nginx_port}"

    @property
    def broker(self) -> str:
        """The Celery broker kind: always ``redis`` (the compose file runs Redis 7)."""
        return "redis"

    def variables(self) -> dict[str, str]:
        """The variables the compose file reads: ports, images, API workers."""
        return {
            "TW_NGINX_PORT": str(self.nginx_port),
            "TW_API_PORT": str(self.env.local.api_port),
            "TW_REDIS_PORT": str(self.env.local.redis_port),
            "TW_POSTGRES_PORT": os.environ.get("TW_POSTGRES_PORT", "5432"),
            "TW_API_IMAGE": f"{self.env.api_image}:{self.tag}",
            "TW_WORKER_IMAGE": f"{self.env.worker_image}:{self.tag}",
            "TW_API_WORKERS": str(self.api_workers),
        }

    def command(self, *args: str) -> list[str]:
        """The full ``docker-compose`` command line for ``args``."""
        binary = shutil.which("docker-compose") or "docker-compose"
        return [binary, "--file", str(self.file), "--project-name", self.project, *args]

    def _run(self, *args: str, timeout: float = 600) -> str:
        if shutil.which("docker-compose") is None:
            raise BadInputError(
                "docker-compose is not installed (apt-get install docker-compose): "
                "the compose kind runs it"
            )
        env = dict(os.environ, **self.variables())
        try:
            result = subprocess.run(
                self.command(*args), capture_output=True, text=True, env=env, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            raise GoalMissedError(
                f"docker-compose {' '.join(args)} did not finish in {timeout:.0f}s"
            ) from None
        if result.returncode != 0:
            output = (result.stderr + result.stdout).strip()
            lowered = output.lower()
            if any(marker in lowered for marker in _ENGINE_DOWN) and "docker" in lowered:
                host = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
                raise UnreachableError(
                    f"docker-compose cannot reach the Docker engine at {host} (DOCKER_HOST): "
                    + output.splitlines()[-1][:300]
                )
            raise GoalMissedError(
                f"docker-compose {' '.join(args)} failed (exit {result.returncode}):\n"
                + "\n".join(output.splitlines()[-20:])
            )
        return result.stdout

    def config(self) -> str:
        """``docker-compose config``: the file validated, with the variables filled in."""
        return self._run("config")

    def is_up(self) -> bool:
        """True when every service has a running container."""
        running = {i.component for i in self.status() if i.state == "running"}
        return all(s in running for s in COMPOSE_SERVICES)

    def up(self, timeout: float = 180.0) -> StackResult:
        """``docker-compose up -d``, then wait for ``/api/health/ready`` through nginx."""
        began = time.monotonic()
        result = StackResult(url=self.url)
        before = {i.component for i in self.status() if i.state == "running"}
        result.already_running = sorted(before)
        if not before:
            for port, what in (
                (self.nginx_port, "nginx"),
                (self.env.local.api_port, "api"),
                (self.env.local.redis_port, "redis"),
            ):
                if port_in_use(port):
                    holder = port_holder(port)
                    raise BadInputError(
                        f"port {port} ({what}) is already in use"
                        + (f" by {holder}" if holder else "")
                    )
        try:
            self.progress(f"docker-compose up -d ({self.file})")
            self._run("up", "--detach", "--no-build")
            result.started = sorted(set(COMPOSE_SERVICES) - before)
            self.progress(f"waiting for {self.url}/api/health/ready")
            wait_ready(f"{self.url}/api/health/ready", timeout, lambda: None, self.progress)
        except KeyboardInterrupt:
            if not before:
                self._run("down")
            raise AbortedError("interrupted: stopped the compose stack this run started") from None
        except TimeoutError as exc:
            raise GoalMissedError(str(exc)) from None
        result.seconds = time.monotonic() - began
        return result

    def down(self, grace: float = 10.0, volumes: bool = False) -> list[str]:
        """``docker-compose down`` (``--volumes`` drops the database volume too)."""
        running = [i.name for i in self.status() if i.state == "running"]
        args = ["down", "--timeout", str(int(grace))]
        if volumes:
            args.append("--volumes")
        self._run(*args)
        clear_profile_record(self.state_dir)  # what scale set went down with the stack
        return running

    def status(self) -> list[ProcessInfo]:
        """The stack's containers, from ``docker inspect``."""
        ids = self._run("ps", "--quiet", "--all").split()
        if not ids:
            return []
        docker = shutil.which("docker") or "docker"
        result = subprocess.run(
            [docker, "inspect", *ids], capture_output=True, text=True, timeout=60
        )
        if result.returncode != 0:
            raise GoalMissedError(f"docker inspect failed: {result.stderr.strip()[-300:]}")
        infos = []
        now = datetime.now().astimezone()
        for item in json.loads(result.stdout):
            labels = item.get("Config", {}).get("Labels") or {}
            service = labels.get("com.docker.compose.service", "?")
            number = labels.get("com.docker.compose.container-number", "1")
            state = item.get("State", {})
            running = bool(state.get("Running"))
            uptime = None
            if running and state.get("StartedAt"):
                started = datetime.fromisoformat(state["StartedAt"][:26].rstrip("Z") + "+00:00")
                uptime = (now - started).total_seconds()
            health = (state.get("Health") or {}).get("Status", "")
            infos.append(
                ProcessInfo(
                    name=f"{service}-{number}",
                    component=service,
                    pid=state.get("Pid") or None,
                    state="running" if running else "exited",
                    exit_code=None if running else state.get("ExitCode"),
                    uptime_seconds=uptime,
                    port=None,
                    log=None,
                    detail=health,
                )
            )
        return sorted(infos, key=lambda i: i.name)

    def counts(self) -> dict[str, int]:
        """Running containers per service (``api`` counts containers, not gunicorn workers)."""
        counts = dict.fromkeys(COMPOSE_SERVICES, 0)
        for info in self.status():
            if info.state == "running":
                counts[info.component] = counts.get(info.component, 0) + 1
        return counts

    def scale(self, component: str, count: int, *, record: bool = True) -> dict[str, int]:
        """Workers: ``up --scale worker=N``; API: recreate it with ``WEB_CONCURRENCY=N``.

        With host networking every API container would need its own port, so the API scales
        by gunicorn workers inside its one container. ``record``: once done, record the counts
        as the scale profile ``manual`` (``scale status``, the monitor's ``wanted``).
        """
        component = {"workers": "worker"}.get(component, component)
        low = 1 if component == "api" else 0
        if component not in ("api", "worker"):
            raise BadInputError(f"cannot scale {component!r}: use api or workers")
        if count < low or count > self.env.max_replicas:
            raise BadInputError(
                f"{component} count {count} is outside {low}..{self.env.max_replicas} "
                "(max_replicas in the config)"
            )
        wanted = {**self.wanted(), component: count}
        if component == "worker":
            self._run("up", "--detach", "--no-build", "--no-recreate", "--scale", f"worker={count}")
        else:
            self.api_workers = count
            self._run("up", "--detach", "--no-build", "--no-deps", "api")
        if record:
            record_manual_scale(self.state_dir, wanted)
        return self.counts()

    def logs(
        self, service: str | None = None, follow: bool = False, lines: int = 100
    ) -> Iterator[str]:
        """``docker-compose logs`` of one service or all, optionally following."""
        if service and service not in COMPOSE_SERVICES:
            raise BadInputError(
                f"no compose service {service!r}: use one of {', '.join(COMPOSE_SERVICES)}"
            )
        args = ["logs", "--no-color", "--tail", str(lines)]
        if follow:
            args.append("--follow")
        if service:
            args.append(service)
        env = dict(os.environ, **self.variables())
        with subprocess.Popen(
            self.command(*args), stdout=subprocess.PIPE, text=True, env=env
        ) as proc:
            assert proc.stdout is not None
            try:
                for line in proc.stdout:
                    yield line.rstrip("\n")
            finally:
                if proc.poll() is None:
                    proc.terminate()
