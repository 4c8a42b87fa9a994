"""The TradeWise AI stock-analysis service: a Flask API with Celery workers on Redis.

``create_app()`` builds the Flask app from environment settings (see ``app.settings``) and binds
the Celery app to it (Flask's own Celery pattern): ``app.wsgi:app`` for gunicorn,
``app.worker:celery`` for ``celery -A app.worker worker|beat``.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from flask import Flask

from app.settings import ConfigError, Settings

__all__ = ["ConfigError", "Settings", "create_app"]

log = logging.getLogger(__name__)


def create_app(overrides: dict[str, Any] | None = None) -> Flask:
    """Build the Flask app; ``overrides`` replace environment variables (and Flask config keys).

    Raises ``ConfigError`` naming the variable when a setting is invalid.
    """
    from app.api import register_api
    from app.cache import make_cache
    from app.celery_app import celery_init_app
    from app.models import make_engine
    from app.service import AnalysisService

    overrides = dict(overrides or {})
    flask_app = Flask(__name__, static_folder=None)
    environ: dict[str, str] = dict(os.environ)
    environ.update({k: str(v) for k, v in overrides.items() if isinstance(v, str | int | float)})
    settings = Settings.from_env(environ, instance_path=flask_app.instance_path)
    if settings.database_url.startswith("sqlite:///") and "DATABASE_URL" not in environ:
        try:
            os.makedirs(flask_app.instance_path, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                "DATABASE_URL",
                settings.database_url,
                f"a writable location (the default instance dir is not: {exc})",
            ) from None
    flask_app.config.update(
        JSON_SORT_KEYS=False,
        TRADEWISE_SETTINGS=settings,
        CELERY=celery_config(settings),
    )
    flask_app.config.update({k: v for k, v in overrides.items() if k.isupper()})
    flask_app.json.sort_keys = False  # type: ignore[attr-defined]

    engine = make_engine(
        settings.database_url,
        settings.db_pool_size,
        settings.db_pool_overflow,
        settings.db_pool_timeout,
    )
    cache = make_cache(
        settings.redis_url,
        settings.cache_ttl_seconds,
        settings.redis_retry_seconds,
        settings.cache_local_seconds,
    )
    service = AnalysisService(settings, engine, cache)
    service.prepare_schema()
    flask_app.extensions["tradewise"] = service
    register_api(flask_app)
    celery_init_app(flask_app)
    return flask_app


def celery_config(settings: Settings) -> dict[str, Any]:
    """Celery settings: late acks, one message at a time, New York time for the beat schedule."""
    from app.schedule import beat_schedule

    return {
        "broker_url": settings.broker_url,
        "result_backend": settings.result_backend,
        "result_expires": 86400,
        "task_ignore_result": False,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_track_started": True,
        "worker_prefetch_multiplier": 1,
        "worker_hijack_root_logger": False,
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": _transport_options(
            settings.broker_url, settings.visibility_timeout
        ),
        "result_backend_transport_options": {"visibility_timeout": settings.visibility_timeout},
        "timezone": "America/New_York",
        "enable_utc": True,
        "beat_schedule": beat_schedule(settings),
        "task_default_queue": "celery",
    }


def _transport_options(broker_url: str, visibility_timeout: int) -> dict[str, Any]:
    """Redis transport options: unacked messages return after ``visibility_timeout`` seconds.

    The restore sweep runs about every ``interval * throttle`` seconds (kombu's default 100 s);
    with a short visibility timeout it is made proportionally short. The SQLAlchemy transport
    (``sqla+sqlite://``) takes none: it passes its options to ``create_engine``, and it has no
    visibility timeout (a task of a killed worker is not redelivered).
    """
    if broker_url.startswith("sqla+"):
        return {}
    options: dict[str, Any] = {"visibility_timeout": visibility_timeout}
    if visibility_timeout < 300:
        options["unacked_restore_interval"] = max(1, visibility_timeout // 3)
        options["unacked_restore_throttle"] = 1
    return options
