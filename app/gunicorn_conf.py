"""gunicorn production settings for ``tradewise-api`` (``-c python:app.gunicorn_conf``).

Works on a read-only root filesystem: no control socket, worker heartbeat files in ``/tmp``
(``GUNICORN_WORKER_TMP_DIR``), no access log unless ``ACCESS_LOG`` is set (``-`` for stdout).
"""

from __future__ import annotations

import os
from typing import Any

from gunicorn.glogging import Logger

from app.redact import mask_handlers


def default_workers() -> int:
    """Two sync workers per core, between 2 and 8."""
    return max(2, min(8, 2 * (os.cpu_count() or 1)))


bind = os.environ.get("BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY") or default_workers())
worker_class = "sync"
# WEB_THREADS > 1: that many threads per worker (gunicorn then runs its gthread worker)
threads = int(os.environ.get("WEB_THREADS") or 1)
worker_tmp_dir = os.environ.get("GUNICORN_WORKER_TMP_DIR", "/tmp")
control_socket_disable = True
timeout = 30
graceful_timeout = 20
keepalive = 5
backlog = 2048
accesslog = os.environ.get("ACCESS_LOG") or None
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
proc_name = "tradewise-api"


class MaskingLogger(Logger):
    """gunicorn's logger with credentials masked in its error log (boot tracebacks included)."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        mask_handlers(self.error_log)


logger_class = MaskingLogger
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")


def child_exit(server: Any, worker: Any) -> None:
    """Drop a dead worker's live-gauge files so /metrics stays right after restarts."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
