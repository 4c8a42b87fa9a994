"""Read what ``tradewise doctor`` judges (``core.doctor``): changes nothing anywhere.

Cluster: the namespace, the release records, the tradewise pods, Warning events, Services and
Endpoints, HPAs, the backup CronJobs (when backups.enabled), the metrics API (``metrics.k8s.io``:
served? pod usage), the last log lines of the pods in trouble, and the application's
``/api/performance/stats`` through the API server's service proxy (the kubeconfig's credentials;
no port-forward). About 12 requests (2 more with backups). A read that RBAC refuses is recorded
(``read_errors``) and its checks run on what there is; an unreachable
cluster is recorded, not raised.

Local: the processes (``LocalStack.status``) with the log tails of those not running, the API
and Redis ports, Redis ``PING``, SQLite's ``quick_check`` of the database file (read-only), and
the application's readiness and stats over plain HTTP on loopback.

Compose: the stack's containers (``ComposeStack.status``: state, exit code) with the last lines
of ``docker-compose logs`` of the services whose containers are not running, the ports of nginx,
the API, Redis and PostgreSQL, Redis ``PING``, PostgreSQL ``SELECT 1`` (3 s timeout) on the URL
the services use (``ComposeStack.database_url``), and the same app sample through nginx.
"""

from __future__ import annotations

import datetime
import functools
import json
import socket
import sqlite3
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from tradewise_ops.core.backup import BACKUP_CRONJOB, VERIFY_CRONJOB
from tradewise_ops.core.bluegreen import API_SERVICE
from tradewise_ops.core.doctor import (
    LOG_LINES,
    AppSample,
    ClusterSnapshot,
    LocalSnapshot,
    ProcessState,
    pods_needing_logs,
)
from tradewise_ops.core.podlogs import NAME_LABEL, main_container
from tradewise_ops.errors import NotFoundError, TradewiseError, UnreachableError

if TYPE_CHECKING:
    from tradewise_ops.adapters.kube import KubeGateway
    from tradewise_ops.adapters.local import LocalStack
    from tradewise_ops.adapters.local.compose import ComposeStack

T = TypeVar("T")
PART_OF = "app.kubernetes.io/part-of=tradewise"
METRICS_API = "metrics.k8s.io/v1beta1"
STATS_PATH = "/api/performance/stats"


def read_cluster(
    gw: KubeGateway,
    environment: str,
    namespace: str,
    expected_context: str | None,
    now: datetime.datetime | None = None,
    *,
    backups_enabled: bool = False,
) -> ClusterSnapshot:
    """A snapshot of the environment's namespace for ``core.doctor.diagnose_cluster``.

    With ``backups_enabled``, also the two backup CronJobs (their last success and schedule).
    """
    from tradewise_ops.adapters.release_store import ReleaseStore

    snap = ClusterSnapshot(
        environment=environment,
        namespace=namespace,
        server=gw.server,
        context=gw.context,
        expected_context=expected_context,
        now=now or datetime.datetime.now(datetime.UTC),
        backups_enabled=backups_enabled,
    )
    try:
        found = gw.find("Namespace", namespace)
    except UnreachableError as exc:
        snap.reachable, snap.error = False, exc.message
        return snap
    except TradewiseError as exc:  # forbidden to read namespaces: assume it is there
        snap.read_errors["namespaces"] = exc.message
        found = {}
    if found is None:
        snap.namespace_exists = False
        return snap

    def read(what: str, fn: Callable[[], T], default: T) -> T:
        try:
            return fn()
        except UnreachableError:
            raise
        except TradewiseError as exc:
            snap.read_errors[what] = exc.message
            return default

    snap.releases = read("releases", lambda: ReleaseStore(gw, environment, namespace).list(), [])
    snap.pods = read("pods", lambda: gw.list("Pod", NAME_LABEL, namespace=namespace), [])
    snap.events = read("events", lambda: gw.events(warnings_only=True, namespace=namespace), [])
    snap.services = read("services", lambda: gw.list("Service", PART_OF, namespace=namespace), [])
    snap.endpoints = read("endpoints", lambda: gw.list("Endpoints", namespace=namespace), [])
    snap.hpas = read(
        "horizontalpodautoscalers",
        lambda: gw.list("HorizontalPodAutoscaler", PART_OF, namespace=namespace),
        [],
    )
    snap.metrics_served = read("metrics API", lambda: gw.served(METRICS_API, "PodMetrics"), None)
    if snap.metrics_served:
        snap.pod_metrics = read(
            "pod metrics",
            lambda: gw.list("PodMetrics", namespace=namespace, api_version=METRICS_API),
            [],
        )
    if backups_enabled:
        for cronjob in (BACKUP_CRONJOB, VERIFY_CRONJOB):
            snap.cronjobs[cronjob] = read(
                "cronjobs",
                functools.partial(gw.find, "CronJob", cronjob, namespace=namespace),
                None,
            )
    by_name = {p["metadata"]["name"]: p for p in snap.pods}
    for name in pods_needing_logs(snap.pods, snap.now):
        try:
            stream = gw.pod_log(
                name,
                container=main_container(by_name[name]),
                tail_lines=LOG_LINES,
                namespace=namespace,
            )
            snap.logs[name] = list(stream.lines())
        except UnreachableError:
            raise
        except TradewiseError:
            continue  # no log to show (waiting, gone): the finding stands without it
    where = f"Service {API_SERVICE}:http via {gw.server}"
    if not any(s["metadata"]["name"] == API_SERVICE for s in snap.services):
        snap.app = AppSample(where, error=f"no Service {API_SERVICE} in {namespace}")
        return snap
    try:
        stats = gw.proxy_get_json(API_SERVICE, "http", STATS_PATH, namespace=namespace)
        snap.app = AppSample(where, stats=stats if isinstance(stats, dict) else None)
        if snap.app.stats is None:
            snap.app.error = f"{STATS_PATH} answered no JSON object"
    except NotFoundError as exc:
        snap.app = AppSample(where, error=exc.message)
    except UnreachableError:
        raise
    except TradewiseError as exc:
        snap.app = AppSample(where, error=exc.message)
    return snap


def _get_json(url: str, timeout: float = 5.0) -> tuple[int | None, Any, str | None]:
    """(status, JSON body or None, error) of ``GET url`` on loopback."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback
            return int(response.status), json.loads(response.read() or b"null"), None
    except urllib.error.HTTPError as exc:
        try:
            body = json.loads(exc.read() or b"null")
        except ValueError:
            body = None
        return int(exc.code), body, None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return None, None, str(getattr(exc, "reason", exc))


def _port_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False


def redis_ping(port: int) -> str:
    """``PONG``, or what went wrong, from a raw ``PING`` to Redis on 127.0.0.1:port."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2.0) as sock:
            sock.sendall(b"PING\r\n")
            answer = sock.recv(64).decode("utf-8", "replace").strip()
    except OSError as exc:
        return f"no answer ({exc})"
    return "PONG" if answer == "+PONG" else f"answered {answer!r}"


def sqlite_quick_check(path: Path) -> str:
    """SQLite's ``PRAGMA quick_check`` of ``path``, opened read-only: ``ok`` or the problem."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=2.0)
        try:
            rows = conn.execute("PRAGMA quick_check").fetchall()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return f"{type(exc).__name__}: {exc}"
    return "; ".join(str(r[0]) for r in rows[:5]) or "no answer"


def read_local(stack: LocalStack) -> LocalSnapshot:
    """A snapshot of the local stack for ``core.doctor.diagnose_local``."""
    from tradewise_ops.adapters.local.common import tail

    infos = stack.status()
    broker = stack.broker
    snap = LocalSnapshot(environment=stack.env.name, url=stack.url, broker=broker)
    for info in infos:
        log_tail = tail(Path(info.log), LOG_LINES) if info.log and info.state != "running" else []
        snap.processes.append(
            ProcessState(
                info.name,
                info.component,
                info.state,
                info.pid,
                info.exit_code,
                info.port,
                log_tail,
            )
        )
    db = stack.state_dir / "tradewise.db"
    snap.database_path = str(db)
    snap.database_exists = db.is_file()
    if snap.database_exists:
        snap.database_check = sqlite_quick_check(db)
    if not infos:
        return snap
    settings = stack.settings
    snap.ports["api"] = (settings.api_port, _port_answers(settings.api_port))
    if broker == "redis":
        snap.ports["redis"] = (settings.redis_port, _port_answers(settings.redis_port))
        snap.redis_ping = redis_ping(settings.redis_port)
    snap.app = _app_sample(stack.url)
    return snap


def _app_sample(url: str) -> AppSample:
    """Readiness and ``/api/performance/stats`` of the API at ``url`` (loopback)."""
    status, body, error = _get_json(url + "/api/health/ready")
    app = AppSample(url, readiness_status=status, readiness=body, error=error)
    if status is not None:
        s_status, stats, s_error = _get_json(url + STATS_PATH)
        if s_status == 200 and isinstance(stats, dict):
            app.stats = stats
        else:
            app.error = s_error or f"{STATS_PATH} answered {s_status}"
    return app


def _container_log(lines: list[str], names: tuple[str, ...]) -> list[str]:
    """The lines of ``docker-compose logs SERVICE`` that are one container's (``NAME | text``,
    ``NAME`` one of ``names``; the prefix dropped); all but the ``Attaching to`` header when
    none is prefixed so."""
    lines = [line for line in lines if not line.startswith("Attaching to ")]
    mine = [
        line.split("|", 1)[1].removeprefix(" ")
        for line in lines
        if "|" in line and line.split("|", 1)[0].strip() in names
    ]
    return mine or lines


def read_compose(stack: ComposeStack) -> LocalSnapshot:
    """A snapshot of the compose stack for ``core.doctor.diagnose_local`` (kind compose).

    No container at all: only that is recorded (nothing else is probed).
    """
    import shlex

    from tradewise_ops.adapters.backups import PostgresDatabase
    from tradewise_ops.adapters.local.compose import COMPOSE_SERVICES
    from tradewise_ops.core.redact import mask_credentials

    infos = stack.status()
    snap = LocalSnapshot(
        environment=stack.env.name,
        url=stack.url,
        broker=stack.broker,
        kind="compose",
        compose_command=shlex.join(
            ["docker-compose", "--file", str(stack.file), "--project-name", stack.project]
        ),
    )
    logs: dict[str, list[str]] = {}
    for info in infos:
        log_tail: list[str] = []
        if info.state != "running" and info.component in COMPOSE_SERVICES:
            if info.component not in logs:
                logs[info.component] = list(stack.logs(info.component, lines=LOG_LINES * 4))
            number = info.name.rsplit("-", 1)[-1]
            names = (f"{info.component}_{number}", f"{stack.project}_{info.component}_{number}")
            log_tail = _container_log(logs[info.component], names)[-LOG_LINES:]
        snap.processes.append(
            ProcessState(
                info.name, info.component, info.state, info.pid, info.exit_code, None, log_tail
            )
        )
    if not infos:
        return snap
    wanted_workers = stack.wanted().get("worker", 1)
    snap.services = [s for s in COMPOSE_SERVICES if s != "worker" or wanted_workers > 0]
    url = stack.database_url()
    database = PostgresDatabase(url)
    snap.database_path = mask_credentials(url)
    local = stack.env.local
    for what, port in (
        ("nginx", stack.nginx_port),
        ("api", local.api_port),
        ("redis", local.redis_port),
        ("postgres", database.port if database.host in ("127.0.0.1", "localhost") else None),
    ):
        if port is not None:  # a PostgreSQL elsewhere: SELECT 1 alone judges it
            snap.ports[what] = (port, _port_answers(port))
    snap.redis_ping = redis_ping(local.redis_port)
    snap.database_check = database.ping(timeout=3)
    snap.app = _app_sample(stack.url)
    return snap
