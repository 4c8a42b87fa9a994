"""Stress scenarios as data: the target, the load, the figures behind each verdict, findings.

Pure. ``tradewise stress cpu|memory|db`` each run one bounded scenario against the environment's
own URL and end in a verdict: ``StressOutcome`` holds the checks (``core.slo.SloCheck``, the
same as a load test's), the figures behind them, findings (what to change, naming the setting)
and the SLOs; ``to_dict`` is the ``-o json`` document (``scenario``, ``verdict`` ``pass`` or
``fail``, ``slo``, ``checks``, ``figures``, ``findings``). A scenario interrupted by Ctrl-C or
SIGTERM is judged on what ran (``interrupted``).

The db scenario: more concurrent uncached analyses than the API's database pools hold. The app
publishes its pools on ``/metrics`` (``tradewise_db_pool_*``: checkouts, checkouts that found
the pool full and how long they waited, timeouts, connections in use, capacity, settings);
``parse_pool`` reads a scrape, ``pool_figures`` turns two scrapes (and the samples between)
into the run's pool figures, ``db_outcome`` judges p95 and errors and names
``environments.ENV.database_pool`` when calls waited on the pool.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from tradewise_ops.core.config import Environment, PerformanceTest, Slo, StressSettings
from tradewise_ops.core.loadplan import LoadSpec, TaskSpec, WaitSpec, check_host
from tradewise_ops.core.slo import SloCheck, evaluate
from tradewise_ops.core.units import format_duration, parse_duration
from tradewise_ops.errors import BadInputError

SCENARIOS = ("cpu", "memory", "db")
MAX_SECONDS = 3600.0  # no scenario runs longer than an hour, whatever --duration says
PASS, FAIL = "pass", "fail"
# the query parameter the service's ``uncached`` fault knob honours (computed as on a miss)
BYPASS_QUERY = "cache=bypass"


# --------------------------------------------------------------------------------------------
# what every scenario shares
# --------------------------------------------------------------------------------------------
def service_environment(env: Environment) -> dict[str, str]:
    """The service's variables for the pool and the fault knobs of ``env`` (as the ConfigMap
    renders them): ``TRADEWISE_DB_POOL_SIZE|OVERFLOW|TIMEOUT_SECONDS``, ``TRADEWISE_FAULTS``."""
    pool = env.database_pool
    out = {
        "TRADEWISE_DB_POOL_SIZE": str(pool.size),
        "TRADEWISE_DB_POOL_OVERFLOW": str(pool.overflow),
        "TRADEWISE_DB_POOL_TIMEOUT_SECONDS": f"{pool.timeout_seconds:g}",
    }
    if env.faults:
        out["TRADEWISE_FAULTS"] = ",".join(env.faults)
    return out


def stress_target(env: Environment, host: str | None = None) -> str:
    """The URL a scenario loads: the environment's own (``url``, or ``https://DOMAIN``).

    ``host``, when given, must be that URL (same scheme, host and port; a path under it): a
    stress scenario never loads anything but the environment it names (``BadInputError``).
    """
    own = env.target_url
    if not own:
        raise BadInputError(
            f"environment {env.name} has no url or domain in the config: a stress scenario "
            "needs the environment's own URL"
        )
    own = check_host(own)
    if host is None:
        return own
    given = check_host(host)
    if _origin(given) != _origin(own) or not (urlsplit(given).path or "/").startswith(
        urlsplit(own).path or "/"
    ):
        raise BadInputError(
            f"--host {given} is outside {env.name}'s own URL {own}: a stress scenario only "
            "loads the environment it names (set its url in the config to move it)"
        )
    return given


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.scheme, (parts.hostname or "").lower(), port


def scenario_seconds(settings: StressSettings, scenario: str, duration: str | None) -> float:
    """The scenario's bound: ``--duration`` or ``stress.duration.SCENARIO``, at most an hour."""
    if scenario not in SCENARIOS:
        raise BadInputError(f"unknown stress scenario {scenario!r}: use {', '.join(SCENARIOS)}")
    if duration is None:
        seconds = float(getattr(settings, f"{scenario}_seconds"))
    else:
        seconds = parse_duration(duration, what="--duration")
    if seconds < 3 or seconds > MAX_SECONDS:
        raise BadInputError(
            f"--duration {format_duration(seconds)} is outside 3s..1h: a stress scenario is bounded"
        )
    return seconds


def uncached_paths(symbols: Sequence[str], uncached: bool) -> tuple[str, ...]:
    """Analysis paths of ``symbols``; with the ``uncached`` knob, asking the app to compute."""
    suffix = f"&{BYPASS_QUERY}" if uncached else ""
    return tuple(f"/api/stock-analysis?symbol={s}{suffix}" for s in symbols)


@dataclass(frozen=True)
class StressFinding:
    """Something the run showed that a setting changes; ``setting`` names it, when one does."""

    code: str
    message: str
    setting: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"code": self.code, "message": self.message, "setting": self.setting}


@dataclass
class StressOutcome:
    """A scenario's verdict: its checks (all met: ``pass``), the figures behind them, findings."""

    scenario: str
    environment: str
    target: str
    slo: dict[str, Any]
    checks: list[SloCheck]
    figures: dict[str, Any]
    findings: list[StressFinding] = field(default_factory=list)
    interrupted: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        """``pass`` when there are checks and every one is met, else ``fail``."""
        return PASS if self.checks and all(c.met for c in self.checks) else FAIL

    def missed(self) -> list[SloCheck]:
        """The checks that were not met."""
        return [c for c in self.checks if not c.met]

    def sentence(self) -> str:
        """One line: the verdict and each check with what was measured."""
        parts = [f"{c.objective} ({_actual(c)}) {'ok' if c.met else 'MISSED'}" for c in self.checks]
        head = f"stress {self.scenario}: " + ("passed" if self.verdict == PASS else "FAILED")
        if self.interrupted:
            head += " (interrupted: judged on what ran)"
        return head + (": " + "; ".join(parts) if parts else ": nothing to judge")

    def to_dict(self) -> dict[str, Any]:
        """The ``-o json`` document."""
        return {
            "scenario": self.scenario,
            "verdict": self.verdict,
            "environment": self.environment,
            "target": self.target,
            "interrupted": self.interrupted,
            "sentence": self.sentence(),
            "slo": dict(self.slo),
            "checks": [c.to_dict() for c in self.checks],
            "figures": dict(self.figures),
            "findings": [f.to_dict() for f in self.findings],
            "notes": list(self.notes),
        }

    def rows(self) -> list[tuple[str, str, str, str]]:
        """The checks as table rows: check, objective, measured, verdict."""
        return [(c.name, c.objective, _actual(c), "ok" if c.met else "MISSED") for c in self.checks]


CHECK_COLUMNS = ("check", "objective", "measured", "verdict")


def _actual(check: SloCheck) -> str:
    if check.actual is None:
        return "no data"
    if check.name == "cpu_target":
        return f"peak {check.actual:.0f}%"
    if check.name.startswith("error_rate"):
        return f"{check.actual * 100:.2f}%"
    if check.name.endswith("_seconds") or check.name in ("scale_up", "scale_down", "recovery"):
        return f"{check.actual:.1f}s"
    if check.name.endswith("_ms") or check.name.startswith("p95"):
        return f"{check.actual:.0f} ms"
    return f"{check.actual:g}"


def check(name: str, objective: str, actual: float | None, threshold: float, met: bool) -> SloCheck:
    """A check of a scenario (``core.slo.SloCheck``)."""
    return SloCheck(name=name, objective=objective, actual=actual, threshold=threshold, met=met)


def load_checks(
    requests: int, failures: int, p95_ms: float | None, slo: Slo, suffix: str = ""
) -> list[SloCheck]:
    """p95 and error rate against the SLO (as a load test judges them), named with ``suffix``."""
    verdict = evaluate(
        requests=requests,
        failures=failures,
        p95_ms=p95_ms,
        max_p95_ms=slo.p95_ms,
        max_error_rate=slo.error_rate,
    )
    out = []
    for c in verdict.checks:
        met = c.met and requests > 0
        out.append(
            SloCheck(c.name + suffix, c.objective + suffix.replace("_", " "), c.actual,
                     c.threshold, met)
        )  # fmt: skip
    return out


def slo_data(slo: Slo) -> dict[str, Any]:
    """The SLOs a document states."""
    return {
        "p95_ms": slo.p95_ms,
        "error_rate": slo.error_rate,
        "scale_up_seconds": slo.scale_up_seconds,
        "recovery_seconds": slo.recovery_seconds,
    }


# --------------------------------------------------------------------------------------------
# db: the database pool
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PoolScrape:
    """The ``tradewise_db_pool_*`` figures of one ``/metrics`` scrape (summed over processes).

    ``published`` is False when the app exports no pool metrics (an older image, or a pool
    without a queue); ``wait_buckets``: ``(upper bound in seconds, cumulative count)``.
    """

    t: float
    published: bool
    checkouts: float = 0.0
    waits: float = 0.0
    timeouts: float = 0.0
    wait_buckets: tuple[tuple[float, float], ...] = ()
    wait_sum: float = 0.0
    checked_out: float = 0.0
    capacity: float = 0.0
    size: float | None = None
    overflow: float | None = None
    timeout_seconds: float | None = None
    not_stored: float = 0.0  # database errors and skips of the API's writes


def parse_pool(text: str, t: float) -> PoolScrape:
    """The pool figures in the Prometheus text exposition of the app's ``/metrics``."""
    from prometheus_client.parser import text_string_to_metric_families

    sums: dict[str, float] = {}
    buckets: dict[float, float] = {}
    settings: dict[str, float] = {}
    seen = False
    try:
        families = list(text_string_to_metric_families(text))
    except ValueError:
        families = []
    for family in families:
        for sample in family.samples:
            name = sample.name
            if name.startswith("tradewise_db_pool_"):
                seen = True
            if name == "tradewise_db_pool_wait_seconds_bucket":
                bound = float(sample.labels["le"])
                buckets[bound] = buckets.get(bound, 0.0) + sample.value
            elif name == "tradewise_db_pool_setting":
                key = sample.labels.get("setting", "")
                settings[key] = max(settings.get(key, 0.0), sample.value)
            elif name == "tradewise_dependency_errors_total":
                if sample.labels.get("dependency") == "database":
                    sums["not_stored"] = sums.get("not_stored", 0.0) + sample.value
            elif name.startswith("tradewise_db_pool_"):
                sums[name] = sums.get(name, 0.0) + sample.value
    return PoolScrape(
        t=t,
        published=seen,
        checkouts=sums.get("tradewise_db_pool_checkouts_total", 0.0),
        waits=sums.get("tradewise_db_pool_waits_total", 0.0),
        timeouts=sums.get("tradewise_db_pool_timeouts_total", 0.0),
        wait_buckets=tuple(sorted(buckets.items())),
        wait_sum=sums.get("tradewise_db_pool_wait_seconds_sum", 0.0),
        checked_out=sums.get("tradewise_db_pool_checked_out", 0.0),
        capacity=sums.get("tradewise_db_pool_capacity", 0.0),
        size=settings.get("size"),
        overflow=settings.get("overflow"),
        timeout_seconds=settings.get("timeout_seconds"),
        not_stored=sums.get("not_stored", 0.0),
    )


def pool_figures(
    before: PoolScrape | None, after: PoolScrape | None, samples: Sequence[PoolScrape] = ()
) -> dict[str, Any] | None:
    """The run's pool figures from the scrapes before and after (and the samples between).

    None when the app publishes no pool metrics. Counters that went down (a process restarted)
    count from zero. The wait percentiles are estimated from the histogram's buckets (as
    Prometheus' ``histogram_quantile`` does).
    """
    if before is None or after is None or not after.published:
        return None
    from tradewise_ops.core.timeline import histogram_quantile

    def delta(name: str) -> float:
        now, then = float(getattr(after, name)), float(getattr(before, name))
        return now - then if now >= then else now

    old = dict(before.wait_buckets)
    reset = after.waits < before.waits
    waited = [(b, c - (0.0 if reset else old.get(b, 0.0))) for b, c in after.wait_buckets]
    waits = delta("waits")
    p95 = histogram_quantile(0.95, waited) if waits > 0 else None
    checkouts = delta("checkouts")
    peak = max([s.checked_out for s in [*samples, after] if s.published], default=0.0)
    return {
        "checkouts": int(checkouts),
        "waits": int(waits),
        "waited_share": round(waits / checkouts, 4) if checkouts else 0.0,
        "wait_p95_ms": None if p95 is None else round(p95 * 1000.0, 2),
        "wait_mean_ms": round(delta("wait_sum") / waits * 1000.0, 2) if waits else None,
        "timeouts": int(delta("timeouts")),
        "not_stored": int(delta("not_stored")),
        "peak_checked_out": int(peak),
        "capacity": int(after.capacity),
        "size": None if after.size is None else int(after.size),
        "overflow": None if after.overflow is None else int(after.overflow),
        "timeout_seconds": after.timeout_seconds,
    }


def pool_series(samples: Sequence[PoolScrape], start: float) -> list[dict[str, Any]]:
    """The pool over time: connections in use, and waits/timeouts since the previous sample."""
    rows = []
    previous: PoolScrape | None = None
    for s in samples:
        if not s.published:
            continue
        rows.append(
            {
                "second": round(s.t - start, 3),
                "checked_out": int(s.checked_out),
                "capacity": int(s.capacity),
                "waits": int(s.waits - previous.waits) if previous else 0,
                "timeouts": int(s.timeouts - previous.timeouts) if previous else 0,
            }
        )
        previous = s
    return rows


def db_users(settings: StressSettings, capacity: int, env: Environment) -> int:
    """Concurrent users: ``stress.db_users``, else twice the connections the pools may open
    (the app's own figure, else the config's per process), at least 4 and at most
    ``stress.max_users``."""
    if settings.db_users:
        return min(settings.db_users, settings.max_users)
    if capacity <= 0:
        capacity = env.database_pool.size + env.database_pool.overflow
    return max(4, min(2 * capacity + 1, settings.max_users))


def db_spec(
    host: str, perf: PerformanceTest, seconds: float, users: int, uncached: bool
) -> LoadSpec:
    """The db load: uncached analyses of the cold symbols by ``users`` users, no wait."""
    return LoadSpec(
        host=host,
        tasks=(TaskSpec("analysis_cold", uncached_paths(perf.cold_symbols, uncached)),),
        duration_seconds=seconds,
        users=users,
        spawn_rate=float(max(users, 1) * 4),
        wait=WaitSpec(),
        interval_seconds=1.0,
        kind="stress-db",
    )


def db_outcome(
    env: Environment,
    slo: Slo,
    target: str,
    *,
    requests: int,
    failures: int,
    p95_ms: float | None,
    rps: float,
    users: int,
    pool: Mapping[str, Any] | None,
    uncached: bool,
    interrupted: bool = False,
) -> StressOutcome:
    """The db verdict (p95 and errors of the run) and what the pool figures show.

    A finding names ``environments.ENV.database_pool.size``/``.overflow`` when calls waited
    on the pool (and ``.timeout`` when some gave up), says when the app runs other pool
    settings than the config's, and when analyses were served without being stored.
    """
    checks = load_checks(requests, failures, p95_ms, slo)
    findings: list[StressFinding] = []
    notes: list[str] = []
    key = f"environments.{env.name}.database_pool"
    configured = env.database_pool
    if pool is None:
        notes.append(
            "the app publishes no database pool metrics at its /metrics (not reachable from "
            "here, or an image older than the pool metrics): judged on p95 and errors only"
        )
    else:
        size, overflow = pool.get("size"), pool.get("overflow")
        now = f"now {size} + {overflow} overflow per process" if size is not None else "now"
        if pool["waits"] > 0:
            share = pool["waited_share"] * 100
            wait = pool["wait_p95_ms"]
            findings.append(
                StressFinding(
                    "pool-wait",
                    f"{pool['waits']} of {pool['checkouts']} database calls ({share:.1f}%) "
                    f"waited for a pool connection"
                    + (f" (p95 wait {wait:.1f} ms)" if wait is not None else "")
                    + f": raise {key}.size ({now}) or {key}.overflow in the config, or send "
                    "fewer concurrent requests to each process (WEB_THREADS)",
                    f"{key}.size",
                )
            )
        if pool["timeouts"] > 0:
            findings.append(
                StressFinding(
                    "pool-timeout",
                    f"{pool['timeouts']} database calls gave up after waiting "
                    f"{_seconds(pool.get('timeout_seconds'))} for a pool connection: raise "
                    f"{key}.size (or {key}.timeout)",
                    f"{key}.timeout",
                )
            )
        if size is not None and (size, overflow) != (configured.size, configured.overflow):
            findings.append(
                StressFinding(
                    "pool-settings-differ",
                    f"the app runs pools of {size} + {overflow} overflow, the config says "
                    f"{configured.size} + {configured.overflow} ({key}): deploy it again (or "
                    "restart the local stack) to apply the config",
                    key,
                )
            )
        if pool["not_stored"] > 0:
            findings.append(
                StressFinding(
                    "not-stored",
                    f"{pool['not_stored']} analyses were served without being stored (a "
                    "database error, its deadline, or its circuit open): see the API's log",
                )
            )
        if pool["waits"] == 0 and pool["timeouts"] == 0:
            notes.append(
                f"no call waited for a pool connection (at most {pool['peak_checked_out']} of "
                f"{pool['capacity']} in use): the pools are not the bottleneck at {users} users"
            )
    if not uncached:
        notes.append(
            f"{env.name} does not enable the `uncached` fault knob (faults in the config): the "
            "cold symbols are analysed once, then served from the cache, so few requests "
            "reach the database"
        )
    figures: dict[str, Any] = {
        "requests": requests,
        "failures": failures,
        "error_rate": round(failures / requests, 5) if requests else None,
        "p95_ms": None if p95_ms is None else round(p95_ms, 2),
        "rps": round(rps, 2),
        "users": users,
        "uncached": uncached,
        "pool": None if pool is None else dict(pool),
        "configured_pool": {
            "size": configured.size,
            "overflow": configured.overflow,
            "timeout_seconds": configured.timeout_seconds,
        },
    }
    return StressOutcome(
        scenario="db",
        environment=env.name,
        target=target,
        slo=slo_data(slo),
        checks=checks,
        figures=figures,
        findings=findings,
        interrupted=interrupted,
        notes=notes,
    )


def _seconds(x: Any) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "the pool timeout"
    return f"{float(x):g}s"


# --------------------------------------------------------------------------------------------
# cpu: the autoscaler
# --------------------------------------------------------------------------------------------
API_HPA = "tradewise-api-hpa"  # the API's HPA (its target is whichever API Deployment is live)
LOCAL_HPA = "api-processes"  # the local stack: its API processes, sampled as if an HPA
LOCAL_DEPLOYMENT = "api"
CPU_METRIC = "cpu"
# after the HPA's stabilization and rate limits, one sync period and a metrics window pass
# before a scale-down is seen (15 s each by default)
SCALE_DOWN_MARGIN_SECONDS = 30.0


def climb_users(settings: StressSettings, bound: float) -> list[int]:
    """Users of each climb step: 1, 2, 4, ... up to ``max_users``, as many steps as leave a
    third of the bound to hold the load once the CPU target is crossed."""
    steps = max(1, int((bound * 2 / 3) // settings.step_seconds))
    users: list[int] = []
    for i in range(steps):
        n = min(2**i, settings.max_users)
        if users and n == users[-1]:
            break
        users.append(n)
    return users


def cpu_climb_spec(
    host: str, perf: PerformanceTest, settings: StressSettings, bound: float, uncached: bool
) -> LoadSpec:
    """The climb: uncached analyses of the cold symbols, users doubling every step, no wait."""
    from tradewise_ops.core.loadplan import StageSpec

    users = climb_users(settings, bound)
    stages = tuple(
        StageSpec(f"climb-{i + 1}", settings.step_seconds, n, float(max(n, 1) * 4))
        for i, n in enumerate(users)
    )
    return LoadSpec(
        host=host,
        tasks=(TaskSpec("analysis_cold", uncached_paths(perf.cold_symbols, uncached)),),
        duration_seconds=settings.step_seconds * len(stages),
        users=users[-1],
        spawn_rate=float(users[-1] * 4),
        stages=stages,
        wait=WaitSpec(),
        interval_seconds=1.0,
        kind="stress-cpu",
    )


def cpu_hold_spec(climb: LoadSpec, users: int, seconds: float) -> LoadSpec:
    """The hold: the climb's requests at the users that crossed the target, for ``seconds``."""
    from tradewise_ops.core.loadplan import StageSpec

    return LoadSpec(
        host=climb.host,
        tasks=climb.tasks,
        duration_seconds=seconds,
        users=users,
        spawn_rate=float(users * 4),
        stages=(StageSpec("hold", seconds, users, float(users * 4)),),
        wait=climb.wait,
        interval_seconds=climb.interval_seconds,
        kind=climb.kind,
    )


def shifted(intervals: Sequence[Any], offset: float, first_index: int) -> list[Any]:
    """``intervals`` of a later run on the first run's clock (``offset`` seconds after it)."""
    from tradewise_ops.core.loadreport import Interval

    return [
        Interval(
            index=first_index + i,
            start=iv.start + offset,
            end=iv.end + offset,
            users=iv.users,
            endpoints=iv.endpoints,
            stage=iv.stage,
        )
        for i, iv in enumerate(intervals)
    ]


def cpu_above(record: Any, hpa: str) -> float | None:
    """The CPU utilization of an HPA sample of ``hpa`` when it is above its target, else None."""
    from tradewise_ops.core.timeline import HpaSample

    if not isinstance(record, HpaSample) or record.name != hpa or record.deleted:
        return None
    for metric in record.metrics:
        if metric.name == CPU_METRIC and metric.above:
            return metric.value
    return None


def scale_down_window(behavior: Mapping[str, Any], peak: int, floor: int) -> float:
    """How long the HPA's ``behavior`` takes from ``peak`` replicas to ``floor`` at most.

    The stabilization window, then one policy period per step (as the HPA controller rate
    limits: a Percent policy allows ``int(start * (1 - value/100))``, a Pods policy
    ``start - value``; ``selectPolicy: Max`` takes the larger change), plus
    ``SCALE_DOWN_MARGIN_SECONDS`` for a sync period and the metrics window.
    """
    rules = dict(behavior.get("scaleDown") or {})
    window = float(rules.get("stabilizationWindowSeconds", 300))
    policies = list(
        rules.get("policies") or [{"type": "Percent", "value": 100, "periodSeconds": 15}]
    )
    select_min = rules.get("selectPolicy") == "Min"
    current, steps, period = peak, 0, 0.0
    while current > floor and steps < 10_000:
        proposals = []
        for policy in policies:
            value = float(policy.get("value", 100))
            if policy.get("type") == "Pods":
                proposals.append(int(current - value))
            else:
                proposals.append(int(current * (1 - value / 100)))
            period = max(period, float(policy.get("periodSeconds", 60)))
        proposed = max(proposals) if select_min else min(proposals)
        current = max(floor, min(current - 1, proposed)) if proposed < current else current - 1
        steps += 1
    return window + max(0, steps - 1) * period + SCALE_DOWN_MARGIN_SECONDS


def climb_intervals(intervals: Sequence[Any], started_at: float, until: float | None) -> list[Any]:
    """The intervals of the climb: from the start until ``until`` (epoch; None: all)."""
    if until is None:
        return list(intervals)
    return [iv for iv in intervals if started_at + iv.start < until]


def cpu_outcome(
    env: Environment,
    slo: Slo,
    target: str,
    *,
    analysis: Mapping[str, Any],
    hpa: str,
    cpu_target: float | None,
    peak_cpu: float | None,
    crossed_users: int | None,
    climb: Sequence[Any],
    scale_down: Mapping[str, Any] | None,
    interrupted: bool = False,
) -> StressOutcome:
    """The cpu verdict: the target crossed, trigger -> rescale -> ready within
    ``slo.scale_up_seconds``, p95 and errors of the ``climb`` intervals (start to ready), and
    with ``scale_down`` (``seconds``, ``window_seconds``, ``floor``) the return to the floor."""
    from tradewise_ops.core.loadreport import run_totals

    ups = [u for u in analysis.get("scale_ups", []) if u.get("hpa") == hpa]
    done = [u for u in ups if u.get("total_seconds") is not None]
    first = done[0] if done else (ups[0] if ups else None)
    checks = [
        check(
            "cpu_target",
            f"API CPU above its {cpu_target:g}% target" if cpu_target else "API CPU above target",
            peak_cpu,
            cpu_target or 0.0,
            crossed_users is not None,
        ),
        check(
            "scale_up",
            f"scale-up (trigger -> ready) < {format_duration(slo.scale_up_seconds)}",
            None if first is None else first.get("total_seconds"),
            slo.scale_up_seconds,
            first is not None and first.get("verdict") == PASS,
        ),
    ]
    totals = run_totals(climb)
    checks += load_checks(
        totals.requests, totals.failures, totals.latency.percentile(95), slo, "_during_climb"
    )
    notes: list[str] = []
    if scale_down is not None:
        seconds, window = scale_down.get("seconds"), float(scale_down["window_seconds"])
        checks.append(
            check(
                "scale_down",
                f"back to {scale_down['floor']} replicas within {format_duration(window)} "
                "(the HPA's scale-down behavior)",
                seconds,
                window,
                seconds is not None and seconds <= window,
            )
        )
    if crossed_users is None:
        notes.append(
            "the API's CPU never went above its target: more users (stress.max_users), a "
            "longer --duration, or the `uncached` fault knob make the load heavier"
        )
    elif not ups:
        notes.append(
            "the CPU crossed its target but no scale-up was seen"
            + (
                ": the local stack has no autoscaler (scale it with `tradewise local scale api "
                "N` while the scenario runs)"
                if not env.is_kubernetes
                else " within the bound"
            )
        )
    figures: dict[str, Any] = {
        "hpa": hpa,
        "cpu_target_percent": cpu_target,
        "peak_cpu_percent": None if peak_cpu is None else round(peak_cpu, 1),
        "users_at_crossing": crossed_users,
        "scale_ups": ups,
        "climb": {
            "requests": totals.requests,
            "failures": totals.failures,
            "p95_ms": None
            if totals.latency.percentile(95) is None
            else round(float(totals.latency.percentile(95) or 0), 2),
            "seconds": round(sum(iv.seconds for iv in climb), 3),
        },
        "scale_down": None if scale_down is None else dict(scale_down),
    }
    return StressOutcome(
        scenario="cpu",
        environment=env.name,
        target=target,
        slo=slo_data(slo),
        checks=checks,
        figures=figures,
        interrupted=interrupted,
        notes=notes,
    )


# --------------------------------------------------------------------------------------------
# memory: OOM handling
# --------------------------------------------------------------------------------------------
MEMORY_TARGETS = ("api", "worker")
# the local stack has no cgroup limit: each target process gets an address-space limit
# (RLIMIT_AS) this far above what it has mapped when the fault starts
LOCAL_HEADROOM_MB = 256
MEMORY_TASKS = 5  # analysis tasks queued behind the worker's fault: none may be lost
# what a node-level memory problem looks like in the events (an OOM of the node, an eviction)
NODE_MEMORY_REASONS = frozenset(
    {"SystemOOM", "Evicted", "Evicting", "NodeHasInsufficientMemory", "EvictionThresholdMet"}
)


def is_production(env: Environment) -> bool:
    """True for the production environment: named (or aliased) prod/production."""
    names = {env.name.lower(), *(a.lower() for a in env.aliases)}
    return bool(names & {"prod", "production"})


def memory_allowed(env: Environment, i_mean_prod: bool) -> None:
    """Refuse (``BadInputError``) unless ``env`` enables the memory fault; never production
    unless ``--i-mean-prod``."""
    if is_production(env) and not i_mean_prod:
        raise BadInputError(
            f"{env.name} is production: stress memory OOM-kills its pods; add --i-mean-prod "
            "if that is what you want"
        )
    if "memory" not in env.faults:
        raise BadInputError(
            f"{env.name} does not enable the memory fault: add memory to "
            f"environments.{env.name}.faults in the config (and deploy, so the service gets "
            "TRADEWISE_FAULTS=memory)"
        )


def component_of(deployment: str) -> str | None:
    """``api`` or ``worker`` for a Deployment (or the local stack's process group) name."""
    if "worker" in deployment:
        return "worker"
    if "api" in deployment:
        return "api"
    return None


def memory_max_mb(env: Environment, component: str) -> int:
    """How far the fault may grow a process: past its limit (1.5x the container's memory limit;
    locally twice the address-space headroom), so that it meets the limit, but bounded."""
    from tradewise_ops.core.units import memory_bytes

    if not env.is_kubernetes:
        return 2 * LOCAL_HEADROOM_MB
    limit = memory_bytes(env.components[component].resources.memory_limit) or 0
    return max(64, int(math.ceil(limit / 2**20 * 1.5)))


def memory_load_spec(host: str, perf: PerformanceTest, seconds: float, users: int = 4) -> LoadSpec:
    """The traffic during the memory scenario: health and hot analyses, a few users, short
    waits (what the error objective is held against while processes are killed)."""
    hot = tuple(f"/api/stock-analysis?symbol={s}" for s in perf.hot_symbols)
    return LoadSpec(
        host=host,
        tasks=(TaskSpec("health", ("/api/health",), 1), TaskSpec("analysis_hot", hot, 2)),
        duration_seconds=seconds,
        users=users,
        spawn_rate=float(users * 4),
        wait=WaitSpec(kind="between", low=0.05, high=0.2),
        interval_seconds=1.0,
        kind="stress-memory",
    )


def memory_outcome(
    env: Environment,
    slo: Slo,
    target: str,
    *,
    analysis: Mapping[str, Any],
    targets: Sequence[str],
    tasks: Mapping[str, str] | None,
    requests: int,
    failures: int,
    p95_ms: float | None,
    limits: Mapping[str, Any] | None = None,
    interrupted: bool = False,
) -> StressOutcome:
    """The memory verdict, per target: OOM-killed (the process or container, not the node),
    back within ``slo.recovery_seconds``; no task lost (every analysis task queued behind the
    worker's fault succeeded); errors under the error objective during it all.

    ``analysis`` is the monitor's document (``recoveries``, ``events``); ``tasks`` the state of
    each queued task at the end.
    """
    recoveries = list(analysis.get("recoveries") or [])
    node_events = [
        e for e in analysis.get("events") or [] if e.get("reason") in NODE_MEMORY_REASONS
    ]
    checks: list[SloCheck] = []
    kills: dict[str, list[Mapping[str, Any]]] = {}
    for component in targets:
        oom = [
            r
            for r in recoveries
            if component_of(str(r.get("deployment", ""))) == component
            and "OOMKilled" in str(r.get("cause", ""))
        ]
        kills[component] = oom
        checks.append(
            check(
                f"{component}_oom_killed",
                f"the {component} is OOM-killed at its limit, not the node",
                float(len(oom)),
                1.0,
                bool(oom) and not node_events,
            )
        )
        seconds = [r.get("seconds") for r in oom]
        worst = max(float(x) for x in seconds) if oom and None not in seconds else None
        checks.append(
            check(
                f"{component}_recovery_seconds",
                f"the {component} back within {format_duration(slo.recovery_seconds)}",
                worst,
                slo.recovery_seconds,
                bool(oom) and all(r.get("verdict") == PASS for r in oom),
            )
        )
    if tasks is not None:
        done = sum(1 for s in tasks.values() if s == "SUCCESS")
        checks.append(
            check(
                "no_task_lost",
                f"every task queued behind the fault done ({len(tasks)})",
                float(done),
                float(len(tasks)),
                bool(tasks) and done == len(tasks),
            )
        )
    error = [c for c in load_checks(requests, failures, p95_ms, slo) if c.name == "error_rate"]
    checks += error
    notes: list[str] = []
    findings: list[StressFinding] = []
    if node_events:
        findings.append(
            StressFinding(
                "node-memory",
                "the node ran out of memory or evicted pods ("
                + ", ".join(f"{e.get('reason')} {e.get('object')}" for e in node_events[:3])
                + "): the memory limits of the pods on it add up to more than it has",
                f"environments.{env.name}.components.*.resources.limits.memory",
            )
        )
    if tasks is not None and any(s == "STARTED" for s in tasks.values()):
        notes.append(
            "a task was running when its worker was killed: the broker gives it back after "
            "CELERY_VISIBILITY_TIMEOUT (default 3600 s), later than this scenario waits"
        )
    for component in targets:
        if not kills.get(component):
            notes.append(
                f"no OOM kill of the {component} was seen: its limit was not reached within the "
                "bound (a larger stress.memory_step_mb, or a longer --duration)"
            )
    figures: dict[str, Any] = {
        "targets": list(targets),
        "oom_kills": {c: [dict(r) for r in kills.get(c, [])] for c in targets},
        "tasks": None if tasks is None else dict(tasks),
        "requests": requests,
        "failures": failures,
        "error_rate": round(failures / requests, 5) if requests else None,
        "p95_ms": None if p95_ms is None else round(p95_ms, 2),
        "node_events": node_events,
        "limits": None if limits is None else dict(limits),
    }
    return StressOutcome(
        scenario="memory",
        environment=env.name,
        target=target,
        slo=slo_data(slo),
        checks=checks,
        figures=figures,
        findings=findings,
        interrupted=interrupted,
        notes=notes,
    )
