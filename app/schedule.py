"""The AI pre-computation schedule (Celery beat, America/New_York).

Before the US market opens at 09:30 New York time the cache is warmed twice on weekdays (09:00
and 09:25, so a slow first run still finishes before the open); during the session (09:30-16:00)
the popular symbols are refreshed every ``TRADEWISE_REFRESH_MINUTES`` minutes; a last run at 16:10
stores the closing analysis.
"""

from __future__ import annotations

from typing import Any

from celery.schedules import crontab

from app.settings import Settings

WEEKDAYS = "mon-fri"


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """The beat schedule: entries name the task ``tradewise.precompute_popular``."""
    every = settings.refresh_minutes
    task = "tradewise.precompute_popular"
    expires = 55 * 60
    return {
        "warm-cache-0900": {
            "task": task,
            "schedule": crontab(hour="9", minute="0", day_of_week=WEEKDAYS),
            "options": {"expires": expires},
        },
        "warm-cache-0925": {
            "task": task,
            "schedule": crontab(hour="9", minute="25", day_of_week=WEEKDAYS),
            "options": {"expires": expires},
        },
        "refresh-open-0930": {
            "task": task,
            "schedule": crontab(hour="9", minute=f"30-59/{every}", day_of_week=WEEKDAYS),
            "options": {"expires": every * 60},
        },
        "refresh-session": {
            "task": task,
            "schedule": crontab(hour="10-15", minute=f"*/{every}", day_of_week=WEEKDAYS),
            "options": {"expires": every * 60},
        },
        "closing-1610": {
            "task": task,
            "schedule": crontab(hour="16", minute="10", day_of_week=WEEKDAYS),
            "options": {"expires": expires},
        },
    }
