"""Console scripts: ``tradewise-api``, ``tradewise-worker``, ``tradewise-precompute``,
``tradewise-healthcheck``.

Each validates the settings first, so a bad environment variable stops the process at start-up
with a message naming it (exit status 2) instead of failing inside a worker later.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from app.redact import mask_credentials
from app.settings import ConfigError, Settings

EXIT_CONFIG = 2


def _validate() -> Settings:
    try:
        settings = Settings.from_env()
        workers = os.environ.get("WEB_CONCURRENCY", "").strip()
        if workers and (not workers.isdigit() or not 1 <= int(workers) <= 64):
            raise ConfigError("WEB_CONCURRENCY", workers, "an integer between 1 and 64")
        bind = os.environ.get("BIND", "").strip()
        if bind and not _valid_bind(bind):
            raise ConfigError("BIND", bind, "HOST:PORT (e.g. 127.0.0.1:8000) or unix:PATH")
    except ConfigError as exc:
        print(f"tradewise: configuration error: {mask_credentials(str(exc))}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from None
    return settings


def _valid_bind(bind: str) -> bool:
    if bind.startswith("unix:"):
        return len(bind) > 5
    host, sep, port = bind.rpartition(":")
    return bool(sep and host and port.isdigit() and 0 < int(port) < 65536)


def _prepare_multiproc_dir() -> tuple[str, bool]:
    """Use PROMETHEUS_MULTIPROC_DIR (emptied) or a fresh temp dir; (path, created here)."""
    configured = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "").strip()
    if configured:
        path = Path(configured)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):
            stale.unlink()
        return str(path), False
    path_str = tempfile.mkdtemp(prefix="tradewise-prometheus-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path_str
    return path_str, True


def api(argv: list[str] | None = None) -> None:
    """``tradewise-api [gunicorn args]``: serve ``app.wsgi:app`` with production settings."""
    _validate()
    multiproc_dir, created = _prepare_multiproc_dir()
    args = sys.argv[1:] if argv is None else argv
    sys.argv = ["tradewise-api", "-c", "python:app.gunicorn_conf", *args, "app.wsgi:app"]
    from gunicorn.app.wsgiapp import run

    try:
        run()
    finally:
        if created:
            shutil.rmtree(multiproc_dir, ignore_errors=True)


def _celery(command: list[str]) -> None:
    from app.worker import celery

    celery.start(argv=command)


def worker(argv: list[str] | None = None) -> None:
    """``tradewise-worker [celery worker args]``: the Celery worker (late acks, prefetch 1)."""
    _validate()
    args = sys.argv[1:] if argv is None else argv
    _celery(["worker", "--loglevel=INFO", *args])


def precompute(argv: list[str] | None = None) -> None:
    """``tradewise-precompute [celery beat args]``: the pre-computation schedule (Celery beat)."""
    _validate()
    args = sys.argv[1:] if argv is None else argv
    schedule = os.path.join(tempfile.gettempdir(), "tradewise-celerybeat-schedule")
    _celery(["beat", "--loglevel=INFO", f"--schedule={schedule}", *args])


def healthcheck(argv: list[str] | None = None) -> None:
    """``tradewise-healthcheck api|worker|precompute``: exit 0 when healthy, 1 when not."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] not in ("api", "worker", "precompute"):
        print("usage: tradewise-healthcheck api|worker|precompute", file=sys.stderr)
        raise SystemExit(2)
    if args[0] == "api":
        raise SystemExit(_check_api())
    raise SystemExit(_check_heartbeat())


def _check_api() -> int:
    bind = os.environ.get("BIND", "127.0.0.1:8000").strip()
    host, _, port = bind.rpartition(":")
    if host in ("0.0.0.0", "", "[::]", "::"):
        host = "127.0.0.1"
    url = f"http://{host}:{port}/api/health"
    try:
        with urllib.request.urlopen(url, timeout=3) as response:  # noqa: S310 - loopback
            ok = response.status == 200
    except (urllib.error.URLError, OSError) as exc:
        print(f"unhealthy: {url}: {exc}", file=sys.stderr)
        return 1
    print(f"{'healthy' if ok else 'unhealthy'}: {url}")
    return 0 if ok else 1


def _check_heartbeat() -> int:
    path = Path(os.environ.get("TRADEWISE_HEARTBEAT_FILE", "") or "/tmp/tradewise-heartbeat")
    raw_age = os.environ.get("TRADEWISE_HEARTBEAT_MAX_AGE", "").strip() or "30"
    try:
        max_age = float(raw_age)
    except ValueError:
        print(f"invalid TRADEWISE_HEARTBEAT_MAX_AGE={raw_age!r}: expected seconds", file=sys.stderr)
        return EXIT_CONFIG
    try:
        age = time.time() - path.stat().st_mtime
    except OSError:
        print(f"unhealthy: no heartbeat file {path}", file=sys.stderr)
        return 1
    if age > max_age:
        print(
            f"unhealthy: heartbeat {path} is {age:.0f}s old (max {max_age:.0f}s)", file=sys.stderr
        )
        return 1
    print(f"healthy: heartbeat {age:.1f}s old")
    return 0
