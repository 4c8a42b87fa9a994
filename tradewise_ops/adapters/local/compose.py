"""``ComposeStack``: the service under docker-compose (kind ``compose``), from ``compose/``.

Runs the ``docker-compose`` v1 command (the one Debian ships) with the ports and images of the
environment passed as variables: nginx on the port of the environment's ``url`` (8080 by
default), the API on ``local.api_port``, Redis on ``local.redis_port``, PostgreSQL on
``TW_POSTGRES_PORT`` (5432). Every service uses host networking.

The PostgreSQL the services use is read from the compose file itself (the ``DATABASE_URL`` of
the ``api`` service, its ``${VAR:-default}`` filled in as docker-compose does from the same
variables), so ``tradewise db`` reaches the database the stack's services do.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlparse

from tradewise_ops.adapters.local.common import (
    ProcessInfo,
    Progress,
    StackResult,
    clear_profile_record,
    http_status,
    port_holder,
    port_in_use,
    record_manual_scale,
    recorded_counts,
    wait_ready,
)
from tradewise_ops.core.config import Environment
from tradewise_ops.errors import (
    AbortedError,
    BadInputError,
    GoalMissedError,
    TradewiseError,
    UnreachableError,
)

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


# docker-compose's variable substitution: $$, ${VAR}, ${VAR:-default}, ${VAR-default},
# ${VAR:?error}, ${VAR?error}, $VAR
_VARIABLE = re.compile(
    r"\$(?:(?P<dollar>\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


def interpolate(text: str, variables: Mapping[str, str], where: str = "") -> str:
    """``text`` with its compose variables filled in from ``variables``, as docker-compose does.

    ``${VAR:?message}`` of a variable unset (or empty) is ``BadInputError`` with that message.
    """

    def one(m: re.Match[str]) -> str:
        if m.group("dollar"):
            return "$"
        name = m.group("braced") or m.group("bare")
        value = variables.get(name)
        op, arg = m.group("op") or "", m.group("arg") or ""
        missing = value is None or (op.startswith(":") and value == "")
        if op.endswith("-") and missing:
            return arg
        if op.endswith("?") and missing:
            raise BadInputError(f"{name} is not set{' (' + where + ')' if where else ''}: {arg}")
        return value or ""

    return _VARIABLE.sub(one, text)


def _environment(service: Mapping[str, Any]) -> dict[str, str]:
    """A compose service's ``environment`` (a mapping or ``KEY=VALUE`` items) as a dict."""
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        pairs = [str(item).partition("=") for item in raw]
        return {k: v for k, _, v in pairs}
    return {str(k): "" if v is None else str(v) for k, v in raw.items()}


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

    def _require_binary(self) -> None:
        if shutil.which("docker-compose") is None:
            raise BadInputError(
                "docker-compose is not installed (apt-get install docker-compose): "
                "the compose kind runs it"
            )

    def _failure(self, args: Sequence[str], returncode: int, output: str) -> TradewiseError:
        """The error for a failed ``docker-compose ARGS``: the engine unreachable, or its
        output's last lines."""
        output = output.strip()
        lowered = output.lower()
        if any(marker in lowered for marker in _ENGINE_DOWN) and "docker" in lowered:
            host = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
            return UnreachableError(
                f"docker-compose cannot reach the Docker engine at {host} (DOCKER_HOST): "
                + output.splitlines()[-1][:300]
            )
        return GoalMissedError(
            f"docker-compose {' '.join(args)} failed (exit {returncode}):\n"
            + "\n".join(output.splitlines()[-20:])
        )

    def _run(self, *args: str, timeout: float = 600) -> str:
        self._require_binary()
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
            raise self._failure(args, result.returncode, result.stderr + result.stdout)
        return result.stdout

    def exec_in(
        self,
        service: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        stdin: Path | None = None,
        stdout: Path | None = None,
        timeout: float = 3600,
    ) -> None:
        """``docker-compose exec -T [-e K=V]... SERVICE ARGV`` in the service's running container,
        its stdin read from / stdout written to files (bytes as they are). ``env`` goes on the
        command line: nothing secret in it."""
        self._require_binary()
        args = ["exec", "-T"]
        for key, value in (env or {}).items():
            args += ["-e", f"{key}={value}"]
        args += [service, *argv]
        with contextlib.ExitStack() as files:
            src: IO[bytes] | int = subprocess.DEVNULL
            out: IO[bytes] | int = subprocess.PIPE
            if stdin is not None:
                src = files.enter_context(open(stdin, "rb"))
            if stdout is not None:
                out = files.enter_context(open(stdout, "wb"))
            try:
                result = subprocess.run(
                    self.command(*args),
                    stdin=src,
                    stdout=out,
                    stderr=subprocess.PIPE,
                    env=dict(os.environ, **self.variables()),
                    timeout=timeout,
                )
            except subprocess.TimeoutExpired:
                raise GoalMissedError(
                    f"docker-compose exec {service} {argv[0]} did not finish in {timeout:.0f}s"
                ) from None
        if result.returncode != 0:
            said = (result.stderr or b"").decode(errors="replace")
            if isinstance(result.stdout, bytes):
                said += result.stdout.decode(errors="replace")
            raise self._failure(["exec", service, argv[0]], result.returncode, said)

    # -- the compose file, read as docker-compose reads it ---------------------------------------
    def _file_doc(self) -> dict[str, Any]:
        import yaml

        try:
            doc = yaml.safe_load(self.file.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise BadInputError(f"cannot read the compose file {self.file}: {exc}") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("services"), dict):
            raise BadInputError(f"{self.file} is not a compose file (no services:)")
        return doc

    def _service(self, name: str) -> dict[str, Any]:
        service = self._file_doc()["services"].get(name)
        if not isinstance(service, dict):
            raise BadInputError(f"{self.file} has no service {name!r}")
        return service

    def database_url(self) -> str:
        """The PostgreSQL URL the stack's services use: the ``api`` service's ``DATABASE_URL``
        in the compose file, its variables filled in from this stack's and the process's
        environment (``TW_POSTGRES_PORT``, ``TW_POSTGRES_USER``, ``TW_POSTGRES_PASSWORD``,
        ``TW_POSTGRES_DB``)."""
        raw = _environment(self._service("api")).get("DATABASE_URL")
        if not raw:
            raise BadInputError(f"{self.file}: the api service sets no DATABASE_URL")
        variables = dict(os.environ, **self.variables())
        return interpolate(raw, variables, where=f"{self.file}, DATABASE_URL")

    def postgres_major(self) -> int | None:
        """The major version of the ``postgres`` service's image (``postgres:15`` -> 15), or
        None when its tag does not say."""
        image = interpolate(str(self._service("postgres").get("image") or ""), os.environ)
        tag = image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else ""
        m = re.match(r"^(\d+)", tag)
        return int(m.group(1)) if m else None

    def running(self, services: Sequence[str]) -> list[str]:
        """Those of ``services`` with a running container, in the order given."""
        up = {i.component for i in self.status() if i.state == "running"}
        return [s for s in services if s in up]

    def stop(self, services: Sequence[str], grace: float = 30.0) -> None:
        """``docker-compose stop`` of ``services`` (their containers stay, stopped)."""
        if services:
            self._run("stop", "--timeout", str(int(grace)), *services)

    def start(self, services: Sequence[str]) -> None:
        """``docker-compose start`` of ``services``: their stopped containers run again."""
        if services:
            self._run("start", *services)

    def hold(self, services: Sequence[str], say: Callable[[str], None]) -> ComposeHold:
        """What ``db restore`` stops and starts again: the running ones of ``services``."""
        return ComposeHold(self, services, say)

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

    def _inspect(self, ids: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """``docker inspect`` of the stack's containers (or of ``ids``)."""
        if ids is None:
            ids = self._run("ps", "--quiet", "--all").split()
        if not ids:
            return []
        result = _docker("inspect", *ids)
        return list(json.loads(result))

    @staticmethod
    def _name_of(item: Mapping[str, Any]) -> str:
        labels = item.get("Config", {}).get("Labels") or {}
        service = labels.get("com.docker.compose.service", "?")
        return f"{service}-{labels.get('com.docker.compose.container-number', '1')}"

    def _container(self, name: str) -> dict[str, Any]:
        for item in self._inspect():
            if self._name_of(item) == name:
                return item
        raise BadInputError(
            f"no container {name} in the compose stack of {self.env.name}: see `tradewise local ps`"
        )

    def restart_process(self, name: str, timeout: float = 60.0) -> int:
        """Restart one container (``docker restart``: TERM, the task in hand finishes, then
        start) and wait until it runs again and, when it has a healthcheck, is healthy. Its new
        main pid; ``GoalMissedError`` with its last log lines when it does not come back."""
        item = self._container(name)
        cid, started = item["Id"], item.get("State", {}).get("StartedAt")
        _docker("restart", "--time", "30", cid, timeout=timeout + 60)
        deadline = time.monotonic() + timeout
        while True:
            state = self._inspect([cid])[0].get("State", {})
            health = (state.get("Health") or {}).get("Status")
            if (
                state.get("Running")
                and state.get("StartedAt") != started
                and health
                in (
                    None,
                    "healthy",
                )
            ):
                return int(state.get("Pid") or 0)
            if time.monotonic() > deadline or not (state.get("Running") or state.get("Restarting")):
                said = health or ("running" if state.get("Running") else "exited")
                raise GoalMissedError(
                    f"{name} did not come back within {timeout:.0f}s ({said}); its log ends:\n"
                    + _docker("logs", "--tail", "15", cid, timeout=30, both=True)
                )
            time.sleep(0.25)

    def reload_api(self, timeout: float = 60.0) -> tuple[list[int], list[int]]:
        """Gracefully reload the API container's gunicorn (its PID 1): ``docker kill --signal
        HUP``; gunicorn starts new workers and the old ones finish their requests, on the same
        socket. Done when no old worker is left, the container still runs and the API answers
        ``/api/health/ready`` 200 on its port. (old, new) worker pids (host pids, ``docker
        top``)."""
        items = [i for i in self._inspect() if self._name_of(i).startswith("api-")]
        running = [i for i in items if i.get("State", {}).get("Running")]
        if not running:
            raise BadInputError(
                f"the API container of {self.env.name} is not running: `tradewise local up "
                f"--env {self.env.name}` first"
            )
        cid, main = running[0]["Id"], int(running[0]["State"].get("Pid") or 0)
        old = self._workers(cid, main)
        _docker("kill", "--signal", "HUP", cid)
        ready = f"http://127.0.0.1:{self.env.local.api_port}/api/health/ready"
        deadline = time.monotonic() + timeout
        while True:
            state = self._inspect([cid])[0].get("State", {})
            if not state.get("Running"):
                raise GoalMissedError(
                    "the API container exited on the reload; its log ends:\n"
                    + _docker("logs", "--tail", "15", cid, timeout=30, both=True)
                )
            now = self._workers(cid, main)
            if not (set(now) & set(old)) and http_status(ready) == 200:
                return old, now
            if time.monotonic() > deadline:
                raise GoalMissedError(
                    f"the API reload did not finish in {timeout:.0f}s ({len(set(now) & set(old))}"
                    f" old workers left; {ready} answered {http_status(ready)})"
                )
            time.sleep(0.1)

    @staticmethod
    def _workers(cid: str, main: int) -> list[int]:
        """Host pids of the children of the container's main process ``main`` (gunicorn's
        workers), from ``docker top``."""
        rows = _docker("top", cid, "-o", "pid,ppid").splitlines()[1:]
        pairs = [tuple(int(x) for x in row.split()[:2]) for row in rows if row.strip()]
        return sorted(pid for pid, ppid in pairs if ppid == main)

    def status(self) -> list[ProcessInfo]:
        """The stack's containers, from ``docker inspect``."""
        infos = []
        now = datetime.now().astimezone()
        for item in self._inspect():
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
        self,
        service: str | None = None,
        follow: bool = False,
        lines: int = 100,
        since_seconds: int | None = None,
    ) -> Iterator[str]:
        """``docker-compose logs`` of one service or all, optionally following.

        ``since_seconds``: of those lines (the last ``lines`` of each container, then the new
        ones), only those Docker stamped within that many seconds before now (docker-compose
        1.x has no ``--since``: the lines are read with ``--timestamps`` and the stamp is
        dropped again).
        """
        if service and service not in COMPOSE_SERVICES:
            raise BadInputError(
                f"no compose service {service!r}: use one of {', '.join(COMPOSE_SERVICES)}"
            )
        args = ["logs", "--no-color", "--tail", str(lines)]
        if since_seconds is not None:
            args.append("--timestamps")
        if follow:
            args.append("--follow")
        if service:
            args.append(service)
        env = dict(os.environ, **self.variables())
        cutoff = time.time() - since_seconds if since_seconds is not None else None
        with subprocess.Popen(
            self.command(*args), stdout=subprocess.PIPE, text=True, env=env
        ) as proc:
            assert proc.stdout is not None
            try:
                for raw in proc.stdout:
                    line = raw.rstrip("\n")
                    if cutoff is None:
                        yield line
                        continue
                    kept = _newer_than(line, cutoff)
                    if kept is not None:
                        yield kept
            finally:
                if proc.poll() is None:
                    proc.terminate()


_STAMPED = re.compile(
    r"^(?P<prefix>[^|]*\|\s)(?P<date>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?P<frac>\.\d+)?Z (?P<rest>.*)$"
)


def _newer_than(line: str, cutoff: float) -> str | None:
    """A ``--timestamps`` log line without its stamp when it is not older than ``cutoff``; None
    when it is. A line with no stamp (docker-compose's own) is kept as it is."""
    m = _STAMPED.match(line)
    if m is None:
        return line
    stamp = datetime.fromisoformat(m["date"] + "+00:00").timestamp()
    stamp += float("0" + m["frac"][:7]) if m["frac"] else 0.0
    return m["prefix"] + m["rest"] if stamp >= cutoff else None


def _docker(*args: str, timeout: float = 60.0, both: bool = False) -> str:
    """``docker ARGS`` (the engine of ``DOCKER_HOST``): its stdout (and stderr with ``both``);
    ``GoalMissedError`` naming the command when it fails."""
    binary = shutil.which("docker") or "docker"
    try:
        result = subprocess.run([binary, *args], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise GoalMissedError(f"docker {args[0]} did not finish in {timeout:.0f}s") from None
    if result.returncode != 0:
        raise GoalMissedError(f"docker {args[0]} failed: {result.stderr.strip()[-300:]}")
    return result.stdout + (result.stderr if both else "")


class ComposeHold:
    """Services of a compose stack held while the database is replaced: stopped, then started."""

    def __init__(
        self, stack: ComposeStack, services: Sequence[str], say: Callable[[str], None]
    ) -> None:
        self.stack = stack
        self.services = tuple(services)
        self.say = say
        self.stopped: list[str] = []

    def stop(self) -> list[str]:
        """Stop the running ones of the services (a stopped one stays so); their names."""
        running = self.stack.running(self.services)
        self.stopped = list(running)
        self.stack.stop(running)
        if running:
            self.say("stopped: " + ", ".join(running))
        return running

    def start(self) -> list[str]:
        """Start again what ``stop`` stopped; what could not be (empty: all back)."""
        if not self.stopped:
            return []
        try:
            self.stack.start(self.stopped)
        except TradewiseError as exc:
            return [f"{', '.join(self.stopped)} not started again: {exc.message}"]
        self.say("started again: " + ", ".join(self.stopped))
        return []
