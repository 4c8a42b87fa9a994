"""Celery bound to Flask (Flask's own pattern): every task runs inside the app context."""

from __future__ import annotations

from typing import Any

from celery import Celery, Task
from flask import Flask


def celery_init_app(flask_app: Flask) -> Celery:
    """Create the Celery app from ``flask_app.config["CELERY"]`` and store it in extensions."""

    class FlaskTask(Task):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            with flask_app.app_context():
                return self.run(*args, **kwargs)

    celery_app = Celery(flask_app.name, task_cls=FlaskTask)
    celery_app.config_from_object(flask_app.config["CELERY"])
    celery_app.set_default()
    import app.faults  # noqa: F401  (the stress-test fault task, refused unless enabled)
    import app.tasks  # noqa: F401  (registers the shared tasks)

    flask_app.extensions["celery"] = celery_app
    return celery_app
