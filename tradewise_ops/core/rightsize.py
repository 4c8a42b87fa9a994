"""Right-sizing from real usage: configured requests and limits against what the pods used.

For each component: the observed CPU (cores) and memory (working set, bytes), as the 95th
percentile and the maximum over the window (``Usage``, from the metrics API or Prometheus: see
``adapters.usage``); a recommendation; whether the configuration is over-provisioned; and what
the change costs or saves a month at the ``cost:`` prices of ``tradewise.yaml``.

The recommendation: requests = p95 x (1 + ``headroom_percent``), limits = max x (1 +
``limit_headroom_percent``) and never below the requests; CPU rounded up to 5m (at least 10m),
memory up to 4Mi (at least 32Mi). QoS as the guide says: the database (``postgres``) stays
Guaranteed (requests = limits = the larger of the two), every other component Burstable (a limit
equal to its request is raised by the limit headroom). A component is over-provisioned when a
configured request is above the recommended one by more than ``margin_percent``.

Cost: a pod costs its requests (what the scheduler reserves): CPU cores x ``cpu_hour`` + GiB x
``gib_hour`` an hour, less ``spot_discount_percent`` for a component placed on spot, times
``hours_per_month``. For each traffic profile the API and the workers count the profile's
replicas, the other components their configured ones: the monthly cost now, recommended, and
the change, as if the month were spent in that profile.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tradewise_ops.core.config import CostSettings, Environment, Profile, Resources
from tradewise_ops.core.units import cpu_millicores, memory_bytes

GUARANTEED = frozenset({"postgres"})
# each component's main container, as the templates name it (what usage is read for)
CONTAINERS: Mapping[str, str] = {
    "api": "tradewise-api",
    "worker": "tradewise-worker",
    "precompute": "tradewise-precompute",
    "postgres": "postgres",
    "redis": "redis",
}
MIB = 2**20
GIB = 2**30
_CPU_STEP_M = 5
_CPU_FLOOR_M = 10
_MEM_STEP = 4 * MIB
_MEM_FLOOR = 32 * MIB


@dataclass(frozen=True)
class Usage:
    """What one component's containers used over the window: cores and bytes."""

    cpu_p95: float
    cpu_max: float
    memory_p95: float
    memory_max: float
    samples: int
    source: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, CPU in millicores and memory in MiB."""
        return {
            "cpu_p95_m": round(self.cpu_p95 * 1000, 1),
            "cpu_max_m": round(self.cpu_max * 1000, 1),
            "memory_p95_mib": round(self.memory_p95 / MIB, 1),
            "memory_max_mib": round(self.memory_max / MIB, 1),
            "samples": self.samples,
            "source": self.source,
        }


@dataclass(frozen=True)
class VpaRecommendation:
    """A VerticalPodAutoscaler's recommendation for one container (``target``, ``upperBound``)."""

    cpu_target: str | None
    memory_target: str | None
    cpu_upper: str | None
    memory_upper: str | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "cpu_target": self.cpu_target,
            "memory_target": self.memory_target,
            "cpu_upper": self.cpu_upper,
            "memory_upper": self.memory_upper,
        }


@dataclass(frozen=True)
class Sizing:
    """One component: configured, observed, recommended, and the verdict."""

    component: str
    qos: str
    placement: str
    current: Resources
    usage: Usage | None
    recommended: Resources | None
    over_provisioned: bool
    notes: tuple[str, ...] = ()
    vpa: VpaRecommendation | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "component": self.component,
            "qos": self.qos,
            "placement": self.placement,
            "current": _resources_dict(self.current),
            "usage": None if self.usage is None else self.usage.to_dict(),
            "recommended": None if self.recommended is None else _resources_dict(self.recommended),
            "over_provisioned": self.over_provisioned,
            "notes": list(self.notes),
            "vpa": None if self.vpa is None else self.vpa.to_dict(),
        }


@dataclass(frozen=True)
class ProfileCost:
    """The monthly cost of one traffic profile's replicas, now and recommended."""

    profile: str
    current: float
    recommended: float

    @property
    def change(self) -> float:
        return self.recommended - self.current

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, in the price's currency, rounded to cents."""
        return {
            "profile": self.profile,
            "current_monthly": round(self.current, 2),
            "recommended_monthly": round(self.recommended, 2),
            "change_monthly": round(self.change, 2),
        }


@dataclass(frozen=True)
class RightsizeReport:
    """Every component's sizing and every profile's cost; ``over_provisioned`` means exit 1."""

    environment: str
    since: str
    source: str
    sizings: tuple[Sizing, ...]
    costs: tuple[ProfileCost, ...]
    warnings: tuple[str, ...] = field(default=())

    @property
    def over_provisioned(self) -> list[str]:
        return [s.component for s in self.sizings if s.over_provisioned]

    def to_dict(self) -> dict[str, Any]:
        """The report as one JSON document."""
        return {
            "environment": self.environment,
            "since": self.since,
            "source": self.source,
            "components": [s.to_dict() for s in self.sizings],
            "costs": [c.to_dict() for c in self.costs],
            "over_provisioned": self.over_provisioned,
            "warnings": list(self.warnings),
        }

    def tables(self) -> list[dict[str, Any]]:
        """Two tables as data (columns, rows, title): components, then cost per profile."""
        rows = []
        for s in self.sizings:
            u, r = s.usage, s.recommended
            rows.append(
                [
                    s.component,
                    f"{s.current.cpu_request}/{s.current.cpu_limit}",
                    f"{s.current.memory_request}/{s.current.memory_limit}",
                    "-" if u is None else f"{u.cpu_p95 * 1000:.0f}m/{u.cpu_max * 1000:.0f}m",
                    "-" if u is None else f"{u.memory_p95 / MIB:.0f}Mi/{u.memory_max / MIB:.0f}Mi",
                    "-" if r is None else f"{r.cpu_request}/{r.cpu_limit}",
                    "-" if r is None else f"{r.memory_request}/{r.memory_limit}",
                    "-"
                    if s.vpa is None
                    else f"{s.vpa.cpu_target or '?'} / {s.vpa.memory_target or '?'}",
                    "OVER" if s.over_provisioned else ("ok" if r is not None else "no data"),
                ]
            )
        costs = [
            [c.profile, f"{c.current:.2f}", f"{c.recommended:.2f}", f"{c.change:+.2f}"]
            for c in self.costs
        ]
        return [
            {
                "title": f"Right-sizing of {self.environment} ({self.source}, {self.since})",
                "columns": [
                    "component",
                    "cpu req/lim",
                    "mem req/lim",
                    "cpu p95/max",
                    "mem p95/max",
                    "rec. cpu",
                    "rec. mem",
                    "vpa target",
                    "verdict",
                ],
                "rows": rows,
            },
            {
                "title": "Monthly cost per traffic profile (requests at the cost: prices)",
                "columns": ["profile", "now", "recommended", "change"],
                "rows": costs,
            },
        ]


# ------------------------------------------------------------------------------------------
def recommend(
    component: str, usage: Usage, settings: CostSettings, current: Resources
) -> tuple[Resources, tuple[str, ...]]:
    """The recommended resources of ``component`` for ``usage``, and notes on the current ones."""
    head = 1 + settings.headroom_percent / 100
    limit_head = 1 + settings.limit_headroom_percent / 100
    cpu_req = _cpu_m(usage.cpu_p95 * head)
    mem_req = _mem(usage.memory_p95 * head)
    cpu_lim = max(_cpu_m(usage.cpu_max * limit_head), cpu_req)
    mem_lim = max(_mem(usage.memory_max * limit_head), mem_req)
    if component in GUARANTEED:
        cpu_req = cpu_lim = max(cpu_req, cpu_lim)
        mem_req = mem_lim = max(mem_req, mem_lim)
    else:  # Burstable: a limit above its request
        if cpu_lim <= cpu_req:
            cpu_lim = _cpu_m(cpu_req / 1000 * limit_head + 0.001)
        if mem_lim <= mem_req:
            mem_lim = _mem(mem_req * limit_head + 1)
    notes = []
    if (memory_bytes(current.memory_limit) or 0) < usage.memory_max:
        notes.append(
            f"memory limit {current.memory_limit} is below the observed maximum "
            f"({usage.memory_max / MIB:.0f}Mi): OOM kills likely"
        )
    if (cpu_millicores(current.cpu_limit) or 0) < usage.cpu_max * 1000 * 0.95:
        notes.append(f"CPU limit {current.cpu_limit} is reached: the pods are throttled")
    return (
        Resources(
            cpu_request=_fmt_cpu(cpu_req),
            memory_request=_fmt_mem(mem_req),
            cpu_limit=_fmt_cpu(cpu_lim),
            memory_limit=_fmt_mem(mem_lim),
        ),
        tuple(notes),
    )


def is_over_provisioned(current: Resources, recommended: Resources, margin_percent: float) -> bool:
    """Whether a configured request is above the recommended one by more than the margin."""
    factor = 1 + margin_percent / 100
    cpu_now = cpu_millicores(current.cpu_request) or 0
    cpu_rec = cpu_millicores(recommended.cpu_request) or 0
    mem_now = memory_bytes(current.memory_request) or 0
    mem_rec = memory_bytes(recommended.memory_request) or 0
    return cpu_now > cpu_rec * factor or mem_now > mem_rec * factor


def build_report(
    env: Environment,
    profiles: Mapping[str, Profile],
    usage: Mapping[str, Usage],
    settings: CostSettings,
    *,
    since: str,
    source: str,
    vpa: Mapping[str, VpaRecommendation] | None = None,
    warnings: Sequence[str] = (),
) -> RightsizeReport:
    """The whole right-sizing report of ``env`` from per-component ``usage``."""
    sizings = []
    for name, comp in env.components.items():
        observed = usage.get(name)
        recommended: Resources | None = None
        notes: tuple[str, ...] = ()
        over = False
        if observed is not None:
            recommended, notes = recommend(name, observed, settings, comp.resources)
            over = is_over_provisioned(comp.resources, recommended, settings.margin_percent)
        else:
            notes = ("no usage data for it in the window",)
        sizings.append(
            Sizing(
                component=name,
                qos="Guaranteed" if name in GUARANTEED else "Burstable",
                placement=comp.placement,
                current=comp.resources,
                usage=observed,
                recommended=recommended,
                over_provisioned=over,
                notes=notes,
                vpa=(vpa or {}).get(name),
            )
        )
    costs = tuple(_profile_cost(env, p, sizings, settings) for p in profiles.values())
    return RightsizeReport(env.name, since, source, tuple(sizings), costs, tuple(warnings))


def parse_window(text: str) -> int:
    """Seconds in a ``--since`` window: ``7d``, ``24h``, ``30m``, ``90s`` (days allowed)."""
    from tradewise_ops.core.units import parse_duration

    raw = str(text).strip().lower()
    if raw.endswith("d") and raw[:-1].isdigit() and int(raw[:-1]) > 0:
        return int(raw[:-1]) * 86400
    return int(parse_duration(raw, what="--since"))


def pod_hourly_cost(resources: Resources, spot: bool, settings: CostSettings) -> float:
    """What one pod's requests cost an hour."""
    cores = (cpu_millicores(resources.cpu_request) or 0) / 1000
    gib = (memory_bytes(resources.memory_request) or 0) / GIB
    price = cores * settings.cpu_hour + gib * settings.gib_hour
    return price * (1 - settings.spot_discount_percent / 100) if spot else price


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` (0-100) percentile of ``values`` by nearest rank; 0.0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


# ------------------------------------------------------------------------------------------
def _profile_cost(
    env: Environment, profile: Profile, sizings: Sequence[Sizing], settings: CostSettings
) -> ProfileCost:
    now = rec = 0.0
    for s in sizings:
        comp = env.components[s.component]
        replicas = {"api": profile.api, "worker": profile.workers}.get(s.component, comp.replicas)
        spot = comp.placement == "spot"
        hours = replicas * settings.hours_per_month
        now += pod_hourly_cost(s.current, spot, settings) * hours
        rec += pod_hourly_cost(s.recommended or s.current, spot, settings) * hours
    return ProfileCost(profile.name, now, rec)


def _cpu_m(cores: float) -> int:
    return max(_CPU_FLOOR_M, _CPU_STEP_M * math.ceil(cores * 1000 / _CPU_STEP_M - 1e-9))


def _mem(size: float) -> int:
    return max(_MEM_FLOOR, _MEM_STEP * math.ceil(size / _MEM_STEP - 1e-9))


def _fmt_cpu(millicores: int) -> str:
    return f"{millicores // 1000}" if millicores % 1000 == 0 else f"{millicores}m"


def _fmt_mem(size: int) -> str:
    return f"{size // GIB}Gi" if size % GIB == 0 else f"{size // MIB}Mi"


def _resources_dict(r: Resources) -> dict[str, Any]:
    return {
        "requests": {"cpu": r.cpu_request, "memory": r.memory_request},
        "limits": {"cpu": r.cpu_limit, "memory": r.memory_limit},
    }
