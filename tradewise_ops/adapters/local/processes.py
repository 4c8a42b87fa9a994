"""``LocalStack``: the service as processes on this machine (kind ``local``: no Docker, no cluster).

A private ``redis-server`` on ``local.redis_port``, the API (``tradewise-api``: gunicorn with
``api_processes`` workers on ``127.0.0.1:api_port``), ``worker_processes`` Celery workers and the
precompute scheduler, with SQLite under ``local.state_dir``. Without ``redis-server`` (or with
``local.broker: sqlite``) no Redis runs: Celery uses kombu's SQLAlchemy transport on
``STATE_DIR/broker.db`` and the API runs without a cache (``REDIS_URL=none``). Each runs under
a small supervisor (``_supervise``) that records its pid and exit status in the state dir, so
``ps`` can show a crash after ``up`` has returned and ``up`` can restart it. ``stack.json``
there remembers what runs, the broker, and the counts ``scale`` set.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tradewise_ops.adapters.local.common import (
    ProcessInfo,
    Progress,
    StackResult,
    children_of,
    clear_profile_record,
    command_line,
    pid_alive,
    port_holder,
    port_in_use,
    record_manual_scale,
    tail,
    wait_ready,
)
from tradewise_ops.adapters.local.common import (
    follow as follow_lines,
)
from tradewise_ops.core.config import Environment
from tradewise_ops.errors import AbortedError, BadInputError, GoalMissedError

SERVICES = ("redis", "api", "worker", "precompute")
BROKER_DB = "broker.db"
RESULTS_DB = "results.db"
_SUPERVISOR = "tradewise_ops.adapters.local._supervise"


@dataclass(frozen=True)
class _Spec:
    """How to start one process."""

    name: str
    component: str
    argv: list[str]
    env: dict[str, str]
    port: int | None = None


def require_service() -> None:
    """Raise ``BadInputError`` unless the bundled service's servers are installed here.

    A CLI-only install (``pipx install tradewise``) has the service's console scripts but not
    gunicorn and Celery (the ``service`` extra): say so before any process starts.
    """
    import importlib.util

    missing = [m for m in ("gunicorn", "celery") if importlib.util.find_spec(m) is None]
    if missing:
        raise BadInputError(
            f"the local stack runs the bundled service, but {' and '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not installed here: install "
            "tradewise[service] (pip install 'tradewise[service]', or pipx install "
            "'tradewise[service]')"
        )


def _script(name: str) -> str:
    """The console script ``name`` next to this Python, else on PATH."""
    require_service()
    local = Path(sys.executable).parent / name
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    found = shutil.which(name)
    if found is None:
        raise BadInputError(
            f"{name} is not installed: install the project (pip install -e .) in this environment"
        )
    return found


def redis_server_binary() -> str | None:
    """The ``redis-server`` to run, or None when it is not installed."""
    explicit = os.environ.get("TRADEWISE_REDIS_SERVER")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    return shutil.which("redis-server") or (
        "/usr/bin/redis-server" if os.access("/usr/bin/redis-server", os.X_OK) else None
    )


@contextlib.contextmanager
def _interrupt_deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM for the duration (main thread only); after, hand the first one
    caught to the handler it would have reached (Ctrl-C: ``KeyboardInterrupt``; SIGTERM: the
    CLI's, which raises ``Terminated``), else raise ``KeyboardInterrupt``."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = {
        signum: signal.signal(signum, lambda got, _frame: caught.append(got))
        for signum in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
    if caught:
        handler = previous.get(signal.Signals(caught[0]))
        if callable(handler):
            handler(caught[0], None)
        raise KeyboardInterrupt


class LocalStack:
    """The local process stack of one environment (kind ``local``)."""

    def __init__(self, env: Environment, progress: Progress | None = None) -> None:
        if env.kind != "local":
            raise BadInputError(f"environment {env.name} is of kind {env.kind}, not local")
        self.env = env
        self.settings = env.local
        self.state_dir = Path(self.settings.state_dir).expanduser().resolve()
        self.log_dir = self.state_dir / "logs"
        self.run_dir = self.state_dir / "run"
        self.progress: Progress = progress or (lambda _message: None)

    # -- addresses ---------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """Where the API answers: ``http://127.0.0.1:API_PORT``."""
        return f"http://127.0.0.1:{self.settings.api_port}"

    @property
    def redis_url(self) -> str:
        """The private Redis (database 0: cache and Celery)."""
        return f"redis://127.0.0.1:{self.settings.redis_port}/0"

    @property
    def broker(self) -> str:
        """``redis`` or ``sqlite``: what the running stack uses, else what ``up`` would use."""
        state = self._read_state()
        if state["processes"] and state.get("broker") in ("redis", "sqlite"):
            return str(state["broker"])
        return self._broker_choice()[0]

    @property
    def broker_url(self) -> str:
        """The Celery broker of the stack: its Redis, or the SQLite file of kombu's transport."""
        if self.broker == "redis":
            return self.redis_url
        return f"sqla+sqlite:///{self.state_dir / BROKER_DB}"

    @property
    def result_backend(self) -> str:
        """Where Celery results go: the stack's Redis, or a SQLite file beside the broker's."""
        if self.broker == "redis":
            return self.redis_url
        return f"db+sqlite:///{self.state_dir / RESULTS_DB}"

    def _broker_choice(self) -> tuple[str, str]:
        """(``redis`` | ``sqlite``, why) from ``local.broker`` and whether redis-server exists."""
        wanted = self.settings.broker
        if wanted == "sqlite":
            return "sqlite", "local.broker (or TRADEWISE_LOCAL_BROKER) is sqlite"
        if wanted == "redis" or redis_server_binary() is not None:
            return "redis", f"local.broker is {wanted}"
        return "sqlite", "redis-server not installed"

    # -- state -------------------------------------------------------------------------------
    def _state_file(self) -> Path:
        return self.state_dir / "stack.json"

    def _read_state(self) -> dict[str, Any]:
        try:
            data = json.loads(self._state_file().read_text())
        except (OSError, ValueError):
            return {"processes": {}}
        if not isinstance(data, dict) or not isinstance(data.get("processes"), dict):
            return {"processes": {}}
        return data

    def _write_state(self, state: dict[str, Any]) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        partial = self._state_file().with_suffix(".json.partial")
        partial.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")
        partial.replace(self._state_file())

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One ``up``/``down``/``scale`` at a time on this state dir."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.state_dir / ".lock", "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                self.progress("another tradewise local command is running here; waiting")
                fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def _pid(self, name: str) -> int | None:
        try:
            return int((self.run_dir / f"{name}.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def _exit_code(self, name: str) -> int | None:
        try:
            return int((self.run_dir / f"{name}.exit").read_text().strip())
        except (OSError, ValueError):
            return None

    def _running(self, name: str, entry: dict[str, Any]) -> bool:
        """True when the supervisor of ``name`` and its child are both alive (not a reused pid)."""
        sup = int(entry.get("supervisor") or 0)
        if not pid_alive(sup) or _SUPERVISOR not in command_line(sup, limit=10_000):
            return False
        return pid_alive(self._pid(name)) and self._exit_code(name) is None

    # -- what to run -------------------------------------------------------------------------
    def _base_env(self, state: dict[str, Any]) -> dict[str, str]:
        env = dict(os.environ)
        if state.get("broker", "redis") == "sqlite":
            redis_url = "none"
            broker = f"sqla+sqlite:///{self.state_dir / BROKER_DB}"
            backend = f"db+sqlite:///{self.state_dir / RESULTS_DB}"
        else:
            redis_url = broker = backend = self.redis_url
        env.update(
            {
                "DATABASE_URL": f"sqlite:///{self.state_dir / 'tradewise.db'}",
                "REDIS_URL": redis_url,
                "CELERY_BROKER_URL": broker,
                "CELERY_RESULT_BACKEND": backend,
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.pop("BIND", None)
        # the database pool and the fault knobs of the environment (`tradewise stress`)
        from tradewise_ops.core.stress import service_environment

        env.update(service_environment(self.env))
        return env

    def _spec(self, name: str, state: dict[str, Any]) -> _Spec:
        base = self._base_env(state)
        if name == "redis":
            binary = redis_server_binary()
            if binary is None:
                raise BadInputError(
                    "redis-server is not installed, and local.broker is redis: apt-get install "
                    "redis-server (or set TRADEWISE_REDIS_SERVER to its path), or set "
                    "local.broker to auto or sqlite (the SQLite broker, analyses uncached)"
                )
            argv = [
                binary,
                "--port",
                str(self.settings.redis_port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.state_dir),
                "--daemonize",
                "no",
                "--protected-mode",
                "yes",
            ]
            return _Spec(name, "redis", argv, base, self.settings.redis_port)
        if name == "api":
            base.update(
                {
                    "BIND": f"127.0.0.1:{self.settings.api_port}",
                    "WEB_CONCURRENCY": str(state.get("api_processes", self.settings.api_processes)),
                    "PROMETHEUS_MULTIPROC_DIR": str(self.state_dir / "prometheus"),
                }
            )
            return _Spec(name, "api", [_script("tradewise-api")], base, self.settings.api_port)
        if name == "precompute":
            base["TRADEWISE_HEARTBEAT_FILE"] = str(self.run_dir / "precompute.heartbeat")
            argv = [
                _script("tradewise-precompute"),
                f"--schedule={self.state_dir / 'celerybeat-schedule'}",
            ]
            return _Spec(name, "precompute", argv, base)
        if name.startswith("worker-"):
            base["TRADEWISE_HEARTBEAT_FILE"] = str(self.run_dir / f"{name}.heartbeat")
            argv = [
                _script("tradewise-worker"),
                "--pool=solo",
                f"--hostname={name}@%h",
                "--without-gossip",
                "--without-mingle",
            ]
            return _Spec(name, "worker", argv, base)
        raise BadInputError(f"unknown local service {name!r}: use one of {', '.join(SERVICES)}")

    def _wanted(self, state: dict[str, Any]) -> list[str]:
        workers = int(state.get("worker_processes", self.settings.worker_processes))
        redis = ["redis"] if state.get("broker", "redis") == "redis" else []
        return [*redis, "api", *[f"worker-{i}" for i in range(1, workers + 1)], "precompute"]

    # -- start / stop one ----------------------------------------------------------------------
    def _start(self, spec: _Spec, state: dict[str, Any], wait: bool = True) -> None:
        # Ctrl-C between the fork and the record would leave a process nobody stops: hold it
        with _interrupt_deferred():
            self._spawn(spec, state)
        if not wait:
            return
        deadline = time.monotonic() + 10
        while self._pid(spec.name) is None and time.monotonic() < deadline:
            if not pid_alive(state["processes"][spec.name]["supervisor"]):
                break
            time.sleep(0.02)

    def _spawn(self, spec: _Spec, state: dict[str, Any]) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        for suffix in (".pid", ".exit"):
            (self.run_dir / f"{spec.name}{suffix}").unlink(missing_ok=True)
        log_path = self.log_dir / f"{spec.name}.log"
        import subprocess

        with open(log_path, "ab") as log:
            log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting {spec.name}\n".encode())
            log.flush()
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    _SUPERVISOR,
                    str(self.run_dir / spec.name),
                    "--",
                    *spec.argv,
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=spec.env,
                cwd=str(self.state_dir),
                start_new_session=True,  # Ctrl-C in the terminal does not reach it
            )
        state["processes"][spec.name] = {
            "component": spec.component,
            "supervisor": proc.pid,
            "port": spec.port,
            "log": str(log_path),
            "started_at": time.time(),
        }
        self._write_state(state)

    def _stop(self, name: str, entry: dict[str, Any], grace: float) -> None:
        """TERM the process (via its supervisor), KILL its group after ``grace`` seconds."""
        sup = int(entry.get("supervisor") or 0)
        sup_ok = pid_alive(sup) and _SUPERVISOR in command_line(sup, limit=10_000)
        child = self._pid(name)
        deadline = time.monotonic() + 5
        while sup_ok and child is None and time.monotonic() < deadline and pid_alive(sup):
            time.sleep(0.02)  # a supervisor that is starting its child: learn the child's pid
            child = self._pid(name)
        targets = [p for p in (child if pid_alive(child) else None, sup if sup_ok else None) if p]
        # the supervisor forwards TERM to its child; a child without one gets it directly
        if targets:
            with contextlib.suppress(ProcessLookupError):
                os.kill(sup if sup_ok else targets[0], signal.SIGTERM)
        deadline = time.monotonic() + grace
        while any(pid_alive(p) for p in targets) and time.monotonic() < deadline:
            time.sleep(0.05)
        if child and pid_alive(child):
            self.progress(f"{name} did not stop within {grace:.0f}s: killing it")
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child, signal.SIGKILL)
        if sup_ok and pid_alive(sup):
            with contextlib.suppress(ProcessLookupError):
                os.kill(sup, signal.SIGKILL)
        # what the child left behind (gunicorn or celery pool workers) goes with its group
        if child:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child, signal.SIGKILL)
        for suffix in (".pid", ".exit"):
            (self.run_dir / f"{name}{suffix}").unlink(missing_ok=True)

    def _check_port(self, port: int, what: str) -> None:
        if port_in_use(port):
            holder = port_holder(port)
            raise BadInputError(
                f"port {port} ({what}) is already in use"
                + (f" by {holder}" if holder else "")
                + f": stop it, or set environments.{self.env.name}.local."
                + ("api_port" if what == "api" else "redis_port")
                + " in the config"
            )

    # -- the interface -------------------------------------------------------------------------
    def is_up(self) -> bool:
        """True when every wanted process runs."""
        state = self._read_state()
        return all(self._running(n, state["processes"].get(n, {})) for n in self._wanted(state))

    def up(self, timeout: float = 90.0) -> StackResult:
        """Start what is not running and wait until ``/api/health/ready`` answers 200.

        Idempotent: running processes stay, crashed ones are restarted. A port in use ->
        ``BadInputError``; not ready in time -> ``GoalMissedError`` with the log tail;
        Ctrl-C -> what this call started is stopped, then ``AbortedError``.
        """
        require_service()
        began = time.monotonic()
        result = StackResult(url=self.url)
        with self._locked():
            state = self._read_state()
            state.setdefault("api_processes", self.settings.api_processes)
            state.setdefault("worker_processes", self.settings.worker_processes)
            self._settle_broker(state)
            try:
                # Redis and the API first, workers and the scheduler once the API is ready: the
                # API boots without three other Python processes competing for the cores
                wanted = self._wanted(state)
                first = [n for n in wanted if n in ("redis", "api")]
                for name in first:
                    self._ensure(name, state, result)
                self._wait_api(state, timeout)
                later = [
                    n
                    for n in wanted
                    if n not in first and self._ensure(n, state, result, wait=False)
                ]
                self._wait_started(state, later)
                if not result.started:
                    uncached = " (SQLite broker, no cache)" if state["broker"] == "sqlite" else ""
                    self.progress(f"the local stack is already up at {self.url}{uncached}")
            except KeyboardInterrupt:
                self._undo(state, result.started)
                raise AbortedError(
                    "interrupted: stopped what this run had started"
                    + (f" ({', '.join(result.started)})" if result.started else "")
                ) from None
            except BaseException:
                self._undo(state, result.started)  # nothing left running that was not asked for
                raise
        result.seconds = time.monotonic() - began
        return result

    def _settle_broker(self, state: dict[str, Any]) -> None:
        """Record the broker in ``state``: the running processes' one, else a fresh choice.

        With nothing running, the choice follows ``local.broker`` and whether redis-server is
        installed, and entries of processes the new choice does not run are dropped.
        """
        running = [n for n, e in state["processes"].items() if self._running(n, e)]
        mode, why = self._broker_choice()
        if running:
            current = str(state.get("broker", "redis"))
            if current != mode:
                self.progress(
                    f"the running stack uses the {current} broker ({why}, which asks for "
                    f"{mode}): `tradewise local down` first to switch"
                )
            state["broker"] = current
            return
        state["broker"] = mode
        if mode == "sqlite":
            self.progress(f"{why}: using the SQLite broker, analyses uncached")
        wanted = set(self._wanted(state))
        for name in [n for n in state["processes"] if n not in wanted]:
            self._stop(name, state["processes"].pop(name), grace=2)
        self._write_state(state)

    def _ensure(
        self, name: str, state: dict[str, Any], result: StackResult, wait: bool = True
    ) -> bool:
        """Start ``name`` unless it runs (restarting a crashed one); True when started."""
        entry = state["processes"].get(name, {})
        if self._running(name, entry):
            result.already_running.append(name)
            return False
        if entry:
            code = self._exit_code(name)
            shown = f" (exited {code})" if code is not None else ""
            self.progress(f"{name} is not running{shown}: restarting it")
            self._stop(name, entry, grace=2)
        spec = self._spec(name, state)
        if spec.port is not None:
            self._check_port(spec.port, spec.component)
        self.progress(f"starting {name}" + (f" on port {spec.port}" if spec.port else ""))
        result.started.append(name)  # before the start: Ctrl-C may come mid-way
        self._start(spec, state, wait=wait)
        if name == "redis":
            self._wait_redis(state)
        return True

    def _wait_started(self, state: dict[str, Any], names: list[str], timeout: float = 20) -> None:
        """Wait until each of ``names`` has its process (a pid file); fail on an early exit."""
        deadline = time.monotonic() + timeout
        while any(self._pid(n) is None for n in names):
            failure = self._failure(state)
            if failure:
                raise GoalMissedError(failure)
            if time.monotonic() > deadline:
                missing = [n for n in names if self._pid(n) is None]
                raise GoalMissedError(f"{', '.join(missing)} did not start in {timeout:.0f}s")
            time.sleep(0.02)

    def _undo(self, state: dict[str, Any], names: list[str]) -> None:
        for name in reversed(names):
            entry = state["processes"].pop(name, None)
            if entry:
                self._stop(name, entry, grace=5)
        self._write_state(state)

    def _failure(self, state: dict[str, Any]) -> str | None:
        for name, entry in state["processes"].items():
            code = self._exit_code(name)
            if code is not None or not pid_alive(int(entry.get("supervisor") or 0)):
                log = self.log_dir / f"{name}.log"
                shown = "exited" + (f" {code}" if code is not None else "")
                return f"{name} {shown} during start-up; its log ({log}) ends:\n" + "\n".join(
                    tail(log, 15)
                )
        return None

    def _wait_redis(self, state: dict[str, Any]) -> None:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if port_in_use(self.settings.redis_port):
                return
            failure = self._failure(state)
            if failure:
                raise GoalMissedError(failure)
            time.sleep(0.02)
        raise GoalMissedError(f"redis-server did not listen on {self.settings.redis_port} in 15s")

    def _wait_api(self, state: dict[str, Any], timeout: float) -> None:
        url = self.url + "/api/health/ready"
        self.progress(f"waiting for {url}")
        try:
            wait_ready(url, timeout, lambda: self._failure(state), self.progress)
        except RuntimeError as exc:
            raise GoalMissedError(str(exc)) from None
        except TimeoutError as exc:
            log = self.log_dir / "api.log"
            raise GoalMissedError(
                f"{exc}; the API log ({log}) ends:\n" + "\n".join(tail(log, 15))
            ) from None

    def down(self, grace: float = 10.0) -> list[str]:
        """Stop everything this stack started (TERM, then KILL after ``grace``); their names."""
        with self._locked():
            state = self._read_state()
            stopped = []
            order = [n for n in state["processes"] if n != "redis"]
            if "redis" in state["processes"]:
                order.append("redis")  # the broker last, so workers can finish cleanly
            for name in order:
                entry = state["processes"][name]
                was_running = self._running(name, entry)
                if was_running:
                    self.progress(f"stopping {name}")
                self._stop(name, entry, grace)
                if was_running:
                    stopped.append(name)
            state["processes"] = {}
            state.pop("api_processes", None)
            state.pop("worker_processes", None)
            clear_profile_record(self.state_dir)  # what scale set went down with the stack
            if state.pop("broker", None) == "sqlite":  # like the Redis one: no queue survives
                for name in (BROKER_DB, RESULTS_DB):
                    (self.state_dir / name).unlink(missing_ok=True)
            self._write_state(state)
            return stopped

    def status(self) -> list[ProcessInfo]:
        """Every process this stack knows: pid, state, exit code, uptime, port, log."""
        state = self._read_state()
        infos = []
        now = time.time()
        for name, entry in state["processes"].items():
            running = self._running(name, entry)
            code = self._exit_code(name)
            pid = self._pid(name)
            detail = ""
            if running and entry.get("component") == "api" and pid:
                detail = f"{len(children_of(pid))} gunicorn workers"
            infos.append(
                ProcessInfo(
                    name=name,
                    component=str(entry.get("component", name)),
                    pid=pid,
                    state="running" if running else ("exited" if code is not None else "stopped"),
                    exit_code=None if running else code,
                    uptime_seconds=(now - float(entry.get("started_at", now))) if running else None,
                    port=entry.get("port"),
                    log=entry.get("log"),
                    detail=detail,
                )
            )
        return infos

    def counts(self) -> dict[str, int]:
        """Running processes per component; ``api`` counts gunicorn workers."""
        counts = dict.fromkeys(SERVICES, 0)
        for info in self.status():
            if info.state != "running":
                continue
            if info.component == "api" and info.pid:
                counts["api"] += len(children_of(info.pid))
            else:
                counts[info.component] = counts.get(info.component, 0) + 1
        return counts

    def wanted(self) -> dict[str, int]:
        """The processes the stack should run (``api``: gunicorn workers, ``worker``): what
        ``up`` started with, or the last ``scale``; the config's counts when it is not up."""
        state = self._read_state()
        return {
            "api": int(state.get("api_processes", self.settings.api_processes)),
            "worker": int(state.get("worker_processes", self.settings.worker_processes)),
        }

    def scale(
        self, component: str, count: int, timeout: float = 30.0, *, record: bool = True
    ) -> dict[str, int]:
        """Change the API's gunicorn workers or the number of Celery workers at run time.

        The new count goes into ``stack.json`` first (what the stack should run, ``wanted``),
        then the processes follow. ``record``: also record it as the scale profile ``manual``
        (what ``scale status`` shows); ``tradewise scale`` records its own profile instead.
        """
        component = {"workers": "worker", "apis": "api"}.get(component, component)
        if component not in ("api", "worker"):
            raise BadInputError(f"cannot scale {component!r}: use api or workers")
        low = 1 if component == "api" else 0
        if count < low or count > self.env.max_replicas:
            raise BadInputError(
                f"{component} count {count} is outside {low}..{self.env.max_replicas} "
                "(max_replicas in the config)"
            )
        with self._locked():
            state = self._read_state()
            if not self._running("api", state["processes"].get("api", {})):
                raise BadInputError("the local stack is not up: run `tradewise local up` first")
            key = "api_processes" if component == "api" else "worker_processes"
            state.setdefault("api_processes", self.settings.api_processes)
            state.setdefault("worker_processes", self.settings.worker_processes)
            state[key] = count
            self._write_state(state)  # wanted first: a monitor sees the change, then its progress
            if record:
                record_manual_scale(self.state_dir, self.wanted())
            if component == "api":
                self._scale_api(state, count, timeout)
            else:
                self._scale_workers(state, count)
            self._write_state(state)
        return self.counts()

    def _scale_api(self, state: dict[str, Any], count: int, timeout: float) -> None:
        master = self._pid("api")
        assert master is not None
        current = len(children_of(master))
        self.progress(f"api: {current} -> {count} gunicorn workers")
        sig = signal.SIGTTIN if count > current else signal.SIGTTOU
        for _ in range(abs(count - current)):
            os.kill(master, sig)
            time.sleep(0.05)
        deadline = time.monotonic() + timeout
        while len(children_of(master)) != count:
            if time.monotonic() > deadline:
                raise GoalMissedError(
                    f"the API has {len(children_of(master))} gunicorn workers after "
                    f"{timeout:.0f}s, not {count}"
                )
            time.sleep(0.1)

    def _scale_workers(self, state: dict[str, Any], count: int) -> None:
        current = [n for n in state["processes"] if n.startswith("worker-")]
        numbers = sorted(int(n.split("-", 1)[1]) for n in current)
        self.progress(f"workers: {len(numbers)} -> {count} processes")
        for number in numbers[count:]:
            name = f"worker-{number}"
            self._stop(name, state["processes"].pop(name), grace=10)
        wanted = {f"worker-{i}" for i in range(1, count + 1)}
        for name in sorted(wanted, key=lambda n: int(n.split("-")[1])):
            entry = state["processes"].get(name, {})
            if not self._running(name, entry):
                self._start(self._spec(name, state), state)

    # -- restarts (``tradewise restart --env local``) ------------------------------------------
    def reload_api(self, timeout: float = 60.0) -> tuple[list[int], list[int]]:
        """Gracefully reload the API: SIGHUP to the gunicorn master. (old, new) worker pids.

        gunicorn starts new workers and TERMs the old ones, which finish the request in hand;
        the master keeps the listening socket, so no connection is refused meanwhile. A worker
        count set by ``scale`` (TTIN/TTOU) is restored after the reload (a reload resets it to
        the configured one). Done when no old worker is left, the count is right and
        ``/api/health/ready`` answers 200; else ``GoalMissedError`` with the log tail.
        """
        with self._locked():
            state = self._read_state()
            if not self._running("api", state["processes"].get("api", {})):
                raise BadInputError("the local API is not running: run `tradewise local up` first")
            master = self._pid("api")
            assert master is not None
            old = set(children_of(master))
            want = int(state.get("api_processes", self.settings.api_processes))
            os.kill(master, signal.SIGHUP)
            deadline = time.monotonic() + timeout
            resized = False
            while True:
                now = set(children_of(master))
                if not pid_alive(master):
                    raise GoalMissedError(self._failure(state) or "the gunicorn master died")
                if not (now & old) and now:
                    if len(now) == want:
                        break
                    if not resized:  # back to the count `scale` set
                        sig = signal.SIGTTIN if want > len(now) else signal.SIGTTOU
                        for _ in range(abs(want - len(now))):
                            os.kill(master, sig)
                            time.sleep(0.05)
                        resized = True
                if time.monotonic() > deadline:
                    log = self.log_dir / "api.log"
                    raise GoalMissedError(
                        f"the API reload did not finish in {timeout:.0f}s ({len(now & old)} old "
                        f"and {len(now - old)} new workers); its log ({log}) ends:\n"
                        + "\n".join(tail(log, 15))
                    )
                time.sleep(0.05)
            self._wait_api(state, max(1.0, deadline - time.monotonic()))
            return sorted(old), sorted(now)

    def restart_process(self, name: str, timeout: float = 60.0, grace: float = 10.0) -> int:
        """Restart one worker or the scheduler: TERM (its task in hand finishes), start again,
        wait until its heartbeat file is fresh (Celery is ready). The new pid.

        ``BadInputError`` when ``name`` is not a process of the running stack; a process that
        exits or never beats -> ``GoalMissedError`` with its log tail.
        """
        with self._locked():
            state = self._read_state()
            entry = state["processes"].get(name)
            if entry is None or name in ("api", "redis"):
                raise BadInputError(
                    f"{name!r} is not a worker or scheduler process of the local stack"
                )
            began = time.time()
            heartbeat = self.run_dir / f"{name}.heartbeat"
            self._stop(name, entry, grace)
            self._start(self._spec(name, state), state)
            deadline = time.monotonic() + timeout
            log = self.log_dir / f"{name}.log"
            while True:
                try:
                    if heartbeat.stat().st_mtime >= began:
                        break
                except OSError:
                    pass
                code = self._exit_code(name)
                if code is not None or not pid_alive(state["processes"][name]["supervisor"]):
                    raise GoalMissedError(
                        f"{name} exited ({code}) after its restart; its log ({log}) ends:\n"
                        + "\n".join(tail(log, 15))
                    )
                if time.monotonic() > deadline:
                    raise GoalMissedError(
                        f"{name} gave no heartbeat {timeout:.0f}s after its restart; its log "
                        f"({log}) ends:\n" + "\n".join(tail(log, 15))
                    )
                time.sleep(0.1)
            pid = self._pid(name)
            assert pid is not None
            return pid

    def logs(
        self, service: str | None = None, follow: bool = False, lines: int = 100
    ) -> Iterator[str]:
        """The last ``lines`` lines of each service's log, then new ones when ``follow``."""
        state = self._read_state()
        names = list(state["processes"]) or [p.stem for p in sorted(self.log_dir.glob("*.log"))]
        if service:
            names = [n for n in names if n == service or n.split("-")[0] == service]
            if not names:
                raise BadInputError(
                    f"no local service {service!r}: use one of "
                    + ", ".join(sorted({*SERVICES, *state["processes"]}))
                )
        paths = {n: self.log_dir / f"{n}.log" for n in names}
        prefix = len(paths) > 1
        for name, path in paths.items():
            for line in tail(path, lines):
                yield f"{name} | {line}" if prefix else line
        if follow:
            yield from follow_lines(paths, prefix)
