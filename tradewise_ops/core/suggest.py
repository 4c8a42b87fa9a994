"""``scale suggest``: from recorded load, the time-of-day pattern and the schedules that fit it.

Load samples ``(epoch seconds, req/s)`` are put in buckets of the time of day (``bucket_minutes``,
on the schedules' clock, America/New_York by default); each bucket's need is its p95 req/s x
(1 + ``capacity.headroom_percent``). A profile serves ``api replicas x per-replica req/s`` (the
figure ``tradewise capacity`` measures), or, without one, the top of its ``rps`` band. Each
bucket gets the smallest profile that serves its need (the largest, with a warning, when none
does); consecutive buckets of the same profile make one step. A step up fires
``lead_minutes`` before its bucket (scaling takes minutes), a step down at its start. The result
is a ``schedules:`` block to paste into ``tradewise.yaml``; buckets without samples keep the
profile before them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from tradewise_ops.core.config import Profile
from tradewise_ops.core.rightsize import percentile
from tradewise_ops.errors import BadInputError


@dataclass(frozen=True)
class Bucket:
    """One slot of the day: its start (minutes after midnight), samples, p95 and max req/s."""

    start: int
    samples: int
    p95: float
    peak: float
    need: float
    profile: str


@dataclass(frozen=True)
class Suggestion:
    """The pattern and the schedule steps that would have served it."""

    timezone: str
    bucket_minutes: int
    days: str
    capacity: Mapping[str, float]
    buckets: tuple[Bucket, ...]
    steps: tuple[dict[str, Any], ...]
    warnings: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "timezone": self.timezone,
            "bucket_minutes": self.bucket_minutes,
            "days": self.days,
            "capacity_rps": dict(self.capacity),
            "pattern": [
                {
                    "at": _hhmm(b.start),
                    "samples": b.samples,
                    "p95_rps": round(b.p95, 1),
                    "max_rps": round(b.peak, 1),
                    "need_rps": round(b.need, 1),
                    "profile": b.profile,
                }
                for b in self.buckets
            ],
            "schedules": list(self.steps),
            "warnings": list(self.warnings),
        }

    def yaml(self) -> str:
        """The ``schedules:`` block to paste, one flow mapping a step."""
        lines = [f"# load by time of day ({self.timezone}, p95 req/s -> profile):"]
        lines += [f"#   {_hhmm(b.start)}  {b.p95:8.1f}  -> {b.profile}" for b in self.buckets]
        lines.append("schedules:")
        for s in self.steps:
            body = ", ".join(f"{k}: {_scalar(v)}" for k, v in s.items())
            lines.append(f"  - {{{body}}}")
        return "\n".join(lines) + "\n"


def profile_capacity(
    profiles: Mapping[str, Profile], per_replica_rps: float | None
) -> dict[str, float]:
    """What each profile serves: API replicas x per-replica req/s, else its band's top."""
    out: dict[str, float] = {}
    for name, p in profiles.items():
        if per_replica_rps is not None:
            out[name] = p.api * per_replica_rps
            continue
        band = p.rps.replace(" ", "")
        top = band.split("-")[-1].rstrip("+") if band else ""
        try:
            out[name] = float(top) if not band.endswith("+") else math.inf
        except ValueError:
            raise BadInputError(
                f"profile {name!r} has no usable rps band ({p.rps!r}): pass --per-replica-rps"
            ) from None
    return out


def suggest(
    samples: Sequence[tuple[float, float]],
    profiles: Mapping[str, Profile],
    *,
    per_replica_rps: float | None,
    headroom_percent: float,
    timezone: str = "America/New_York",
    bucket_minutes: int = 60,
    lead_minutes: int = 15,
    calendar: str | None = "nyse",
) -> Suggestion:
    """The pattern of ``samples`` and the schedule steps (see the module's docstring)."""
    if not samples:
        raise BadInputError("no load samples to suggest from (the file has no req/s)")
    if bucket_minutes <= 0 or 1440 % bucket_minutes:
        raise BadInputError(f"--bucket {bucket_minutes}m: a divisor of a day (15m, 30m, 60m)")
    zone = ZoneInfo(timezone)
    capacity = profile_capacity(profiles, per_replica_rps)
    order = sorted(capacity, key=lambda n: (capacity[n], profiles[n].api))
    by_slot: dict[int, list[float]] = {}
    weekend = False
    for t, rps in samples:
        moment = datetime.fromtimestamp(t, zone)
        weekend |= moment.weekday() >= 5
        slot = (moment.hour * 60 + moment.minute) // bucket_minutes * bucket_minutes
        by_slot.setdefault(slot, []).append(rps)
    warnings: list[str] = []
    buckets: list[Bucket] = []
    for slot in sorted(by_slot):
        values = by_slot[slot]
        p95 = percentile(values, 95)
        need = p95 * (1 + headroom_percent / 100)
        fits = [n for n in order if capacity[n] >= need]
        chosen = fits[0] if fits else order[-1]
        if not fits:
            warnings.append(
                f"{_hhmm(slot)}: {need:.0f} req/s needed, more than {chosen} serves "
                f"({capacity[chosen]:.0f}): add a larger profile"
            )
        buckets.append(Bucket(slot, len(values), p95, max(values), need, chosen))
    steps: list[dict[str, Any]] = []
    days = "*" if weekend else "1-5"
    previous: str | None = None
    for b in buckets:
        if b.profile == previous:
            continue
        up = previous is not None and capacity[b.profile] > capacity[previous]
        at = (b.start - (lead_minutes if up else 0)) % 1440
        step: dict[str, Any] = {
            "name": f"{b.profile}-{_hhmm(at).replace(':', '')}",
            "profile": b.profile,
            "cron": f"{at % 60} {at // 60} * * {days}",
            "timezone": timezone,
        }
        if calendar:
            step["calendar"] = calendar
        steps.append(step)
        previous = b.profile
    if len(steps) > 1 and steps[0]["profile"] == buckets[-1].profile:
        steps.pop(0)  # the day ends in the profile it starts with: that step is the last one's
    return Suggestion(
        timezone, bucket_minutes, days, capacity, tuple(buckets), tuple(steps), tuple(warnings)
    )


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _scalar(value: Any) -> str:
    text = str(value)
    return f'"{text}"' if any(c in text for c in "*: ,") else text
