"""The WSGI entry point for gunicorn: ``app.wsgi:app``."""

from __future__ import annotations

import logging
import os

from app import create_app
from app.redact import MaskingFormatter


def _log_to_stderr() -> None:
    """The service's own log lines (e.g. "redis unavailable") on stderr, like gunicorn's, with
    credentials masked."""
    logger = logging.getLogger("app")
    if logger.handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(
        MaskingFormatter(
            logging.Formatter(
                "[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s",
                "%Y-%m-%d %H:%M:%S %z",
            )
        )
    )
    logger.addHandler(handler)
    logger.setLevel(os.environ.get("LOG_LEVEL", "info").upper())
    logger.propagate = False


_log_to_stderr()
app = create_app()
