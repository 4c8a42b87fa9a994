"""Capacity as data: what one API replica serves, what each traffic profile needs, whether it fits.

Pure. ``tradewise capacity`` steps the load up against one replica (``step_spec``: users double
every step, no wait between requests) and judges each step (``measure_step``) against the SLO.
It stops (``keep_stepping``) when a step misses the SLO (p95 or error rate), when the throughput
has stopped growing (``PLATEAU_STEPS`` doublings of the users in a row, none of them beating the
best step so far by ``PLATEAU_GAIN``: the replica is saturated, more users only queue; one or two
steps are not enough on a shared machine, whose throughput swings by tens of percent), or at
the time bound. What one replica serves within the SLO (``per_replica_rps``) is the best req/s
of a step that met it, divided by the replicas behind the target.

A profile needs ``ceil(planned rps x (1 + headroom) / per-replica rps)`` API replicas, where the
planned rps is the top of its band (``rps: "100-500"``: 500) or, for an open band (``"1000+"``),
its lower bound. It is provisioned (``ok``) when the profile itself sets at least that many: the
HPA may add more up to its ceiling, but only after a scale-up. ``allocatable_check`` adds up the
requests of the pods a profile runs and places them on the nodes' allocatable CPU and memory.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tradewise_ops.core.config import Environment, Profile, Slo
from tradewise_ops.core.loadplan import LoadSpec, StageSpec, TaskSpec, WaitSpec
from tradewise_ops.core.loadreport import EndpointCounts, Interval
from tradewise_ops.core.units import cpu_millicores, memory_bytes
from tradewise_ops.errors import BadInputError

PLATEAU_GAIN = 0.05  # doublings of the users that add less than 5% req/s ...
PLATEAU_STEPS = 3  # ... three in a row: saturated
MAX_USERS = 512  # what one Locust process can keep busy here
_BAND = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:(-)\s*(\d+(?:\.\d+)?)|(\+))?\s*$")
# the order pods are placed on nodes: what already runs first, the API last
PLACEMENT_ORDER = ("postgres", "redis", "precompute", "worker", "api")
_TITLES = {
    "api": "API",
    "worker": "worker",
    "precompute": "precompute",
    "postgres": "PostgreSQL",
    "redis": "Redis",
}


# --------------------------------------------------------------------------------------------
# stepping the load up
# --------------------------------------------------------------------------------------------
def step_users(max_seconds: float, step_seconds: float) -> list[int]:
    """Users of each step: 1, 2, 4, ... (at most ``MAX_USERS``), as many steps as fit the bound."""
    if not step_seconds >= 2:
        raise BadInputError(f"a step must last at least 2 seconds (got {step_seconds:g})")
    if max_seconds < step_seconds:
        raise BadInputError(
            f"--max-seconds {max_seconds:g} is shorter than one step of {step_seconds:g}s"
        )
    steps = int(max_seconds // step_seconds)
    users: list[int] = []
    for i in range(steps):
        n = min(2**i, MAX_USERS)
        if users and n == users[-1]:
            break
        users.append(n)
    return users


def step_spec(
    host: str, tasks: Sequence[TaskSpec], max_seconds: float, step_seconds: float
) -> LoadSpec:
    """The stepped load: one stage per step, users doubling, no wait, 1 s intervals."""
    users = step_users(max_seconds, step_seconds)
    stages = tuple(
        StageSpec(name=f"step-{i + 1}", duration_seconds=step_seconds, users=n, spawn_rate=n * 4)
        for i, n in enumerate(users)
    )
    return LoadSpec(
        host=host,
        tasks=tuple(tasks),
        duration_seconds=step_seconds * len(stages),
        users=users[-1],
        spawn_rate=float(users[-1] * 4),
        stages=stages,
        wait=WaitSpec(),
        interval_seconds=1.0,
        kind="capacity",
    )


@dataclass(frozen=True)
class Step:
    """One step of the stepped load, judged against the SLO."""

    name: str
    users: int
    seconds: float
    requests: int
    failures: int
    rps: float
    p95_ms: float | None
    error_rate: float
    within_slo: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.name,
            "users": self.users,
            "seconds": round(self.seconds, 2),
            "requests": self.requests,
            "failures": self.failures,
            "rps": round(self.rps, 1),
            "p95_ms": None if self.p95_ms is None else round(self.p95_ms, 1),
            "error_rate": round(self.error_rate, 5),
            "within_slo": self.within_slo,
        }


def judge_step(
    name: str,
    users: int,
    seconds: float,
    requests: int,
    failures: int,
    p95_ms: float | None,
    slo: Slo,
) -> Step:
    """A step from its totals (whichever generator counted them), judged against the SLO."""
    error_rate = failures / requests if requests else 0.0
    within = requests > 0 and p95_ms is not None and p95_ms <= slo.p95_ms
    return Step(
        name=name,
        users=users,
        seconds=seconds,
        requests=requests,
        failures=failures,
        rps=requests / seconds if seconds > 0 else 0.0,
        p95_ms=p95_ms,
        error_rate=error_rate,
        within_slo=within and error_rate <= slo.error_rate,
    )


def measure_step(name: str, intervals: Sequence[Interval], slo: Slo) -> Step:
    """A step's req/s, p95 and error rate from Locust's intervals, without the first one (users
    starting)."""
    kept = list(intervals[1:]) if len(intervals) > 1 else list(intervals)
    counts = EndpointCounts()
    for iv in kept:
        counts.merge(iv.total)
    return judge_step(
        name,
        max((iv.users for iv in intervals), default=0),
        sum(iv.seconds for iv in kept),
        counts.requests,
        counts.failures,
        counts.latency.percentile(95),
        slo,
    )


def keep_stepping(steps: Sequence[Step]) -> bool:
    """False once the last step missed the SLO or the throughput stopped growing."""
    return stop_reason(steps) is None


def stop_reason(steps: Sequence[Step]) -> str | None:
    """Why stepping stops after ``steps``: ``slo``, ``plateau``, or None (go on)."""
    if not steps:
        return None
    if not steps[-1].within_slo:
        return "slo"
    if len(steps) > PLATEAU_STEPS:
        before = max(s.rps for s in steps[:-PLATEAU_STEPS])
        if max(s.rps for s in steps[-PLATEAU_STEPS:]) < before * (1 + PLATEAU_GAIN):
            return "plateau"
    return None


def per_replica_rps(steps: Sequence[Step], replicas: int = 1) -> float | None:
    """The best req/s of a step within the SLO, per replica; None when no step met it."""
    good = [s.rps for s in steps if s.within_slo]
    if not good or replicas < 1:
        return None
    return max(good) / replicas


# --------------------------------------------------------------------------------------------
# profiles
# --------------------------------------------------------------------------------------------
def parse_band(text: str, what: str = "rps") -> tuple[float, float | None]:
    """``"100-500"`` -> (100, 500); ``"1000+"`` -> (1000, None); ``"300"`` -> (300, 300)."""
    m = _BAND.match(str(text))
    if not m:
        raise BadInputError(
            f"{what} {text!r} is not a requests/s band: use LOW-HIGH (100-500) or LOW+ (1000+)"
        )
    low = float(m.group(1))
    if m.group(4):
        return low, None
    high = float(m.group(3)) if m.group(2) else low
    if high < low:
        raise BadInputError(f"{what} {text!r}: the top of the band is below its bottom")
    return low, high


def hpa_ceiling(profile: Profile, env: Environment) -> int:
    """The API HPA's ceiling under ``profile``: the configured max, raised to the profile's
    replicas (as ``scale traffic`` does), capped by ``max_replicas``."""
    scaling = env.components["api"].autoscaling
    configured = scaling.max_replicas if scaling is not None else profile.api
    return min(max(configured, profile.api), env.max_replicas)


@dataclass(frozen=True)
class ProfileNeed:
    """What one traffic profile needs against what it sets."""

    name: str
    rps: str
    planned_rps: float
    open_band: bool
    replicas: int
    replicas_needed: int
    hpa_max: int
    allocatable: AllocatableCheck | None = None

    @property
    def enough_replicas(self) -> bool:
        return self.replicas_needed <= self.replicas

    @property
    def ok(self) -> bool:
        """The profile's own replicas serve its band, and (when checked) its pods fit the nodes."""
        fits = self.allocatable is None or self.allocatable.fits
        return self.enough_replicas and fits

    def note(self) -> str:
        """What the numbers mean, in one sentence."""
        top = f"at least {self.planned_rps:g}" if self.open_band else f"{self.planned_rps:g}"
        if self.enough_replicas:
            text = (
                f"{top} req/s needs {self.replicas_needed}; the profile's {self.replicas} serve it"
            )
        elif self.replicas_needed <= self.hpa_max:
            text = (
                f"{top} req/s needs {self.replicas_needed}, the profile sets {self.replicas}: "
                f"the HPA can add {self.replicas_needed - self.replicas} (ceiling "
                f"{self.hpa_max}), only after a scale-up"
            )
        else:
            text = (
                f"{top} req/s needs {self.replicas_needed}, above the HPA's ceiling of "
                f"{self.hpa_max} (the profile sets {self.replicas})"
            )
        if self.allocatable is not None and not self.allocatable.fits:
            text += "; " + self.allocatable.sentence()
        return text

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "name": self.name,
            "rps": self.rps,
            "planned_rps": self.planned_rps,
            "replicas": self.replicas,
            "replicas_needed": self.replicas_needed,
            "hpa_max": self.hpa_max,
            "ok": self.ok,
            "note": self.note(),
        }
        if self.allocatable is not None:
            doc["allocatable"] = self.allocatable.to_dict()
        return doc


def replicas_needed(planned_rps: float, per_replica: float, headroom_percent: float) -> int:
    """``ceil(planned x (1 + headroom) / per_replica)``, at least 1."""
    if not per_replica > 0:
        raise BadInputError(f"per-replica req/s must be above 0 (got {per_replica:g})")
    return max(1, math.ceil(planned_rps * (1 + headroom_percent / 100) / per_replica - 1e-9))


def profile_needs(
    profiles: Iterable[Profile], env: Environment, per_replica: float, headroom_percent: float
) -> list[ProfileNeed]:
    """Each profile's replicas needed for the top of its rps band, against what it sets."""
    out = []
    for profile in profiles:
        low, high = parse_band(profile.rps, f"profiles.{profile.name}.rps")
        planned = low if high is None else high
        out.append(
            ProfileNeed(
                name=profile.name,
                rps=profile.rps,
                planned_rps=planned,
                open_band=high is None,
                replicas=profile.api,
                replicas_needed=replicas_needed(planned, per_replica, headroom_percent),
                hpa_max=hpa_ceiling(profile, env),
            )
        )
    return out


CAPACITY_COLUMNS = ("profile", "rps", "replicas", "needed", "HPA max", "ok", "note")


def capacity_rows(needs: Sequence[ProfileNeed]) -> list[tuple[str, ...]]:
    """Table rows of ``tradewise capacity``."""
    return [
        (
            n.name,
            n.rps,
            str(n.replicas),
            str(n.replicas_needed),
            str(n.hpa_max),
            "yes" if n.ok else "NO",
            n.note(),
        )
        for n in needs
    ]


# --------------------------------------------------------------------------------------------
# requests against the nodes' allocatable
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class NodeRoom:
    """A schedulable node's allocatable CPU (millicores) and memory (bytes)."""

    name: str
    cpu_m: int
    memory: int


def schedulable_nodes(nodes: Iterable[Mapping[str, Any]]) -> tuple[list[NodeRoom], list[str]]:
    """The nodes new pods can land on, and why the others were left out.

    Left out: cordoned nodes, nodes not Ready, nodes with a ``NoSchedule``/``NoExecute`` taint
    (tradewise's pods tolerate none), nodes without an allocatable CPU or memory.
    """
    rooms: list[NodeRoom] = []
    skipped: list[str] = []
    for node in nodes:
        name = str((node.get("metadata") or {}).get("name", "?"))
        spec = node.get("spec") or {}
        status = node.get("status") or {}
        ready = [c for c in status.get("conditions") or [] if c.get("type") == "Ready"]
        taints = [
            t for t in spec.get("taints") or [] if t.get("effect") in ("NoSchedule", "NoExecute")
        ]
        alloc = status.get("allocatable") or {}
        cpu = cpu_millicores(alloc["cpu"]) if "cpu" in alloc else None
        mem = memory_bytes(alloc["memory"]) if "memory" in alloc else None
        if spec.get("unschedulable"):
            skipped.append(f"{name} (cordoned)")
        elif ready and ready[0].get("status") != "True":
            skipped.append(f"{name} (not Ready)")
        elif taints:
            skipped.append(f"{name} (taint {taints[0].get('key')}:{taints[0].get('effect')})")
        elif cpu is None or mem is None:
            skipped.append(f"{name} (no allocatable cpu/memory)")
        else:
            rooms.append(NodeRoom(name, cpu, mem))
    return rooms, skipped


def profile_pods(profile: Profile, env: Environment) -> dict[str, int]:
    """Pods per component under ``profile``: its API and workers, the rest as configured."""
    pods = {c: env.components[c].replicas for c in PLACEMENT_ORDER if c in env.components}
    pods["api"] = profile.api
    pods["worker"] = profile.workers
    return pods


@dataclass(frozen=True)
class AllocatableCheck:
    """A profile's pod requests placed on the nodes' allocatable CPU and memory."""

    profile: str
    cpu_requested_m: int
    memory_requested: int
    cpu_allocatable_m: int
    memory_allocatable: int
    nodes: int
    pending: Mapping[str, int]  # component -> pods no node has room for
    skipped_nodes: tuple[str, ...] = field(default=())

    @property
    def fits(self) -> bool:
        return not any(self.pending.values())

    def sentence(self) -> str:
        """``peak needs 9.5 CPU of requests; the nodes have 8 allocatable: 3 API pods ...``."""
        need = (
            f"{self.profile} needs {_cpu(self.cpu_requested_m)} CPU and "
            f"{_gib(self.memory_requested)} GiB of requests"
        )
        have = (
            f"the {self.nodes} schedulable node(s) have {_cpu(self.cpu_allocatable_m)} CPU and "
            f"{_gib(self.memory_allocatable)} GiB allocatable"
        )
        if self.fits:
            return f"{need}; {have}: every pod fits"
        stuck = ", ".join(
            f"{n} {_TITLES.get(c, c)} pod{'s' if n > 1 else ''}"
            for c, n in self.pending.items()
            if n
        )
        return f"{need}; {have}: {stuck} would stay Pending"

    def to_dict(self) -> dict[str, Any]:
        return {
            "profile": self.profile,
            "cpu_requested": _cpu(self.cpu_requested_m),
            "memory_requested_gib": float(_gib(self.memory_requested)),
            "cpu_allocatable": _cpu(self.cpu_allocatable_m),
            "memory_allocatable_gib": float(_gib(self.memory_allocatable)),
            "nodes": self.nodes,
            "pending": {k: v for k, v in self.pending.items() if v},
            "fits": self.fits,
            "skipped_nodes": list(self.skipped_nodes),
            "sentence": self.sentence(),
        }


def allocatable_check(
    profile: Profile, env: Environment, nodes: Iterable[Mapping[str, Any]]
) -> AllocatableCheck:
    """Would the pods of ``profile`` find room on ``nodes`` (Node objects as the API gives them)?

    Adds up the requests of every pod the profile runs (its API and worker replicas, the other
    components as configured) and places them first-fit on the schedulable nodes' allocatable
    CPU and memory, the database first and the API last; what finds no room would stay
    Pending. Only this environment's pods are counted: what other pods on the nodes already
    request is not subtracted, so a fit here is a lower bound of what the scheduler needs.
    """
    rooms, skipped = schedulable_nodes(nodes)
    free = [[r.cpu_m, r.memory] for r in rooms]
    pods = profile_pods(profile, env)
    pending: dict[str, int] = {}
    cpu_total = mem_total = 0
    for component in PLACEMENT_ORDER:
        count = pods.get(component, 0)
        res = env.components[component].resources
        cpu = cpu_millicores(res.cpu_request) or 0
        mem = memory_bytes(res.memory_request) or 0
        cpu_total += cpu * count
        mem_total += mem * count
        stuck = 0
        for _ in range(count):
            slot = next((f for f in free if f[0] >= cpu and f[1] >= mem), None)
            if slot is None:
                stuck += 1
            else:
                slot[0] -= cpu
                slot[1] -= mem
        pending[component] = stuck
    return AllocatableCheck(
        profile=profile.name,
        cpu_requested_m=cpu_total,
        memory_requested=mem_total,
        cpu_allocatable_m=sum(r.cpu_m for r in rooms),
        memory_allocatable=sum(r.memory for r in rooms),
        nodes=len(rooms),
        pending=pending,
        skipped_nodes=tuple(skipped),
    )


def _cpu(millicores: int) -> str:
    return f"{millicores / 1000:g}"


def _gib(n: int) -> str:
    return f"{n / 2**30:.1f}"
