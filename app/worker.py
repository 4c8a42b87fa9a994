"""The Celery app bound to the Flask app: ``celery -A app.worker worker`` / ``beat``.

Worker and beat processes refresh a heartbeat file (``TRADEWISE_HEARTBEAT_FILE``) every few
seconds; ``tradewise-healthcheck worker|precompute`` checks its age.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from celery import Celery
from celery.signals import (
    after_setup_logger,
    after_setup_task_logger,
    beat_init,
    worker_ready,
    worker_shutdown,
)

from app import create_app
from app.redact import mask_handlers

flask_app = create_app()
celery: Celery = flask_app.extensions["celery"]

HEARTBEAT_INTERVAL = 5.0
_stop = threading.Event()


def touch_heartbeat(path: str) -> None:
    """Create or refresh the heartbeat file."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.touch()


def _beat(path: str) -> None:
    while not _stop.is_set():
        try:
            touch_heartbeat(path)
        except OSError:  # a full or read-only disk shows as a stale heartbeat
            pass
        _stop.wait(HEARTBEAT_INTERVAL)


def _start_heartbeat(**_: Any) -> None:
    path = flask_app.config["TRADEWISE_SETTINGS"].heartbeat_file
    threading.Thread(target=_beat, args=(path,), name="tradewise-heartbeat", daemon=True).start()


def _stop_heartbeat(**_: Any) -> None:
    _stop.set()


def _mask_logs(logger: Any = None, **_: Any) -> None:
    """Credentials out of the worker's log lines (Celery masks its own broker URLs already)."""
    if logger is not None:
        mask_handlers(logger)


after_setup_logger.connect(_mask_logs, weak=False)
after_setup_task_logger.connect(_mask_logs, weak=False)
worker_ready.connect(_start_heartbeat, weak=False)
beat_init.connect(_start_heartbeat, weak=False)
worker_shutdown.connect(_stop_heartbeat, weak=False)
