"""The guide's troubleshooting checklist as data: findings from a snapshot of the live state.

``diagnose_cluster(snapshot, slo)`` and ``diagnose_local(snapshot, slo)`` (a local stack's
processes, or a compose stack's containers: ``diagnose_compose``) take what the adapter
read (``adapters/doctor_probe``: objects, a few log lines, the application's own statistics) and
return a ``DoctorReport``: every check that ran, and each problem found with its evidence and
the fix, worst first. Nothing here does I/O; a check whose data could not be read says so.

Severities: ``critical`` (the service is down or about to be: a crash loop, no ready endpoints,
an HPA that cannot scale, the database down, p95 or the error rate past the guide's critical
alerts), ``warning`` (degraded or heading there: an OOM kill, an HPA at its ceiling, memory near
its limit, cache hit rate < 50%, queue backlog > 50, errors above the SLO), ``info``.

"Restarted more than 3 times in 15 minutes": a pod keeps only its restart count and how its last
run ended, so a pod counts when its count is above 3 and its last restart was within the 15
minutes (exact for pods younger than 15 minutes).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tradewise_ops.core import release as rel
from tradewise_ops.core.rollout import ready_pods
from tradewise_ops.core.units import cpu_millicores, memory_bytes

CRITICAL, WARNING, INFO = "critical", "warning", "info"
SEVERITIES = (CRITICAL, WARNING, INFO)
COMPONENT = "app.kubernetes.io/component"
IMAGE_REASONS = frozenset({"ImagePullBackOff", "ErrImagePull", "InvalidImageName"})
RESTARTS_MAX = 3
RESTARTS_WINDOW = 15 * 60.0
NEAR_LIMIT = 0.9  # memory / CPU use at or above this share of the limit
HIT_RATE_MIN = 0.5
QUEUE_MAX = 50
CRITICAL_ERROR_RATE = 0.05  # the guide's critical alert; the SLO's is a warning
MIN_LOOKUPS = 20  # below this many cache lookups / requests a rate says nothing
MIN_REQUESTS = 20
LOG_LINES = 10

CLUSTER_CHECKS = (
    "cluster.reachable",
    "cluster.context",
    "release.deployed",
    "pods.crashloop",
    "pods.image",
    "pods.pending",
    "pods.oomkilled",
    "pods.restarts",
    "services.endpoints",
    "hpa.conditions",
    "hpa.ceiling",
    "metrics.api",
    "metrics.usage",
)
APP_CHECKS = (
    "app.reachable",
    "app.readiness",
    "app.cache",
    "app.queue",
    "app.latency",
    "app.errors",
)
BACKUP_CHECKS = ("backups.recent", "backups.verified")  # when backups.enabled
LOCAL_CHECKS = ("local.processes", "local.ports", "local.redis", "local.database")
COMPOSE_CHECKS = ("compose.containers", "compose.ports", "compose.redis", "compose.database")


@dataclass(frozen=True)
class DoctorFinding:
    """One problem: which check, about what, what is wrong, the evidence, and the fix."""

    severity: str
    check: str
    subject: str
    message: str
    evidence: tuple[str, ...] = ()
    fix: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "severity": self.severity,
            "check": self.check,
            "subject": self.subject,
            "message": self.message,
            "evidence": list(self.evidence),
            "fix": self.fix,
        }


@dataclass(frozen=True)
class DoctorReport:
    """Every check that ran and the findings, worst first."""

    environment: str
    kind: str
    checks: tuple[str, ...]
    findings: tuple[DoctorFinding, ...]

    @property
    def critical(self) -> list[DoctorFinding]:
        return [f for f in self.findings if f.severity == CRITICAL]

    @property
    def warnings(self) -> list[DoctorFinding]:
        return [f for f in self.findings if f.severity == WARNING]

    @property
    def passed(self) -> list[str]:
        """The checks that ran and found nothing."""
        failed = {f.check for f in self.findings}
        return [c for c in self.checks if c not in failed]

    def to_dict(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            "kind": self.kind,
            "healthy": not self.critical,
            "critical": len(self.critical),
            "warnings": len(self.warnings),
            "findings": [f.to_dict() for f in self.findings],
            "passed": self.passed,
            "checks": list(self.checks),
        }


def report(
    environment: str, kind: str, checks: Iterable[str], findings: Iterable[DoctorFinding]
) -> DoctorReport:
    """A report with the findings ordered worst first (then by check, then by subject)."""
    rank = {s: i for i, s in enumerate(SEVERITIES)}
    ordered = sorted(findings, key=lambda f: (rank.get(f.severity, 9), f.check, f.subject))
    return DoctorReport(environment, kind, tuple(checks), tuple(ordered))


# -- snapshots: what the adapter read ---------------------------------------------------------
@dataclass
class AppSample:
    """The application's own view: ``/api/performance/stats`` (and, locally, readiness)."""

    where: str  # how it was reached, for the evidence
    stats: dict[str, Any] | None = None
    readiness_status: int | None = None  # /api/health/ready's status (local only)
    readiness: dict[str, Any] | None = None  # its body
    error: str | None = None


@dataclass
class ClusterSnapshot:
    """What ``doctor`` read from a cluster."""

    environment: str
    namespace: str
    server: str
    context: str | None
    expected_context: str | None
    now: datetime.datetime
    reachable: bool = True
    error: str | None = None
    namespace_exists: bool = True
    releases: list[rel.Release] = field(default_factory=list)
    pods: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    services: list[dict[str, Any]] = field(default_factory=list)
    endpoints: list[dict[str, Any]] = field(default_factory=list)
    hpas: list[dict[str, Any]] = field(default_factory=list)
    metrics_served: bool | None = None  # None: not read
    pod_metrics: list[dict[str, Any]] = field(default_factory=list)
    logs: dict[str, list[str]] = field(default_factory=dict)  # pod -> its last lines
    app: AppSample | None = None
    read_errors: dict[str, str] = field(default_factory=dict)  # what -> why it was not read
    backups_enabled: bool = False  # backups.enabled of the environment
    cronjobs: dict[str, dict[str, Any] | None] = field(default_factory=dict)  # None: missing


@dataclass
class ProcessState:
    """One process of the local stack (``LocalStack.status()``), with its log's last lines."""

    name: str
    component: str
    state: str  # running | exited | stopped
    pid: int | None = None
    exit_code: int | None = None
    port: int | None = None
    log_tail: list[str] = field(default_factory=list)


@dataclass
class LocalSnapshot:
    """What ``doctor`` read from the local stack (``kind`` local: processes and a SQLite file)
    or the compose stack (``kind`` compose: containers as the processes, PostgreSQL)."""

    environment: str
    url: str
    broker: str  # redis | sqlite
    processes: list[ProcessState] = field(default_factory=list)
    ports: dict[str, tuple[int, bool]] = field(default_factory=dict)  # what -> (port, answers)
    redis_ping: str | None = None  # PONG, or what went wrong (None: no Redis in this stack)
    database_path: str = ""  # local: the SQLite file; compose: the URL, password masked
    database_exists: bool = False  # local only
    database_check: str | None = None  # quick_check's (local) or SELECT 1's (compose) answer
    app: AppSample | None = None
    kind: str = "local"  # local | compose
    services: list[str] = field(default_factory=list)  # compose: those that should have one
    compose_command: str = "docker-compose"  # compose: with its --file and --project-name


# -- helpers ----------------------------------------------------------------------------------
def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def _name(obj: Mapping[str, Any]) -> str:
    return str(_meta(obj).get("name", ""))


def _component(obj: Mapping[str, Any]) -> str:
    return str((_meta(obj).get("labels") or {}).get(COMPONENT) or "")


def parse_time(text: Any) -> datetime.datetime | None:
    """An RFC 3339 time of the API (``2025-01-01T00:00:00Z``), or None."""
    if not isinstance(text, str) or not text:
        return None
    try:
        value = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=datetime.UTC)


def _ago(now: datetime.datetime, then: datetime.datetime | None) -> str:
    if then is None:
        return "at an unknown time"
    seconds = max(0, int((now - then).total_seconds()))
    if seconds < 120:
        return f"{seconds}s ago"
    if seconds < 7200:
        return f"{seconds // 60}m ago"
    return f"{seconds // 3600}h ago"


def _container_statuses(pod: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    status = pod.get("status") or {}
    return list(status.get("initContainerStatuses") or []) + list(
        status.get("containerStatuses") or []
    )


def _limits(pod: Mapping[str, Any], container: str) -> Mapping[str, Any]:
    for c in (pod.get("spec") or {}).get("containers") or []:
        if c.get("name") == container:
            return (c.get("resources") or {}).get("limits") or {}
    return {}


def cpu_milli(quantity: Any) -> float | None:
    """Millicores of a CPU quantity, also in the metrics API's ``n`` / ``u`` units."""
    text = str(quantity)
    try:
        if text.endswith("n"):
            return float(text[:-1]) / 1e6
        if text.endswith("u"):
            return float(text[:-1]) / 1e3
    except ValueError:
        return None
    value = cpu_millicores(text)
    return None if value is None else float(value)


def _mib(value: float) -> str:
    return f"{value / 2**20:.0f}Mi"


def restart_hint(pod: Mapping[str, Any]) -> str:
    """How to restart the pod's workload: ``tradewise restart`` for the service's own
    Deployments, ``kubectl`` for the rest (the databases are StatefulSets)."""
    component = _component(pod)
    if component in ("api", "worker", "precompute"):
        return f"`tradewise restart {component}`"
    return f"`kubectl delete pod {_name(pod)}` (its controller starts a new one)"


def _log_evidence(logs: Mapping[str, list[str]], pod: str) -> list[str]:
    lines = logs.get(pod)
    if lines is None:
        return []
    if not lines:
        return ["its log is empty"]
    return ["last log lines:", *(f"  | {line}" for line in lines[-LOG_LINES:])]


# -- the cluster checks -----------------------------------------------------------------------
def pods_needing_logs(pods: Sequence[Mapping[str, Any]], now: datetime.datetime) -> list[str]:
    """The pods whose findings show their last log lines (crash loops, OOM kills, restarts)."""
    out = []
    for pod in pods:
        problems = {p[0] for p in _pod_problems(pod, [], now)}
        if problems & {"pods.crashloop", "pods.oomkilled", "pods.restarts"}:
            out.append(_name(pod))
    return out


def _pod_problems(
    pod: Mapping[str, Any], events: Sequence[Mapping[str, Any]], now: datetime.datetime
) -> list[tuple[str, str, list[str]]]:
    """(check, message, evidence) for each problem of one pod."""
    name = _name(pod)
    status = pod.get("status") or {}
    out: list[tuple[str, str, list[str]]] = []
    crashloop = False
    for cs in _container_statuses(pod):
        cname = cs.get("name", "")
        waiting = (cs.get("state") or {}).get("waiting") or {}
        last = (cs.get("lastState") or {}).get("terminated") or {}
        ended = (cs.get("state") or {}).get("terminated") or {}
        restarts = int(cs.get("restartCount") or 0)
        reason = waiting.get("reason")
        if reason == "CrashLoopBackOff":
            crashloop = True
            evidence = [f"container {cname}: CrashLoopBackOff, {restarts} restarts"]
            if last:
                evidence.append(
                    f"last run ended: {last.get('reason', '?')} (exit code "
                    f"{last.get('exitCode', '?')}) {_ago(now, parse_time(last.get('finishedAt')))}"
                )
            if waiting.get("message"):
                evidence.append(str(waiting["message"]))
            out.append(("pods.crashloop", f"{cname} is crash-looping", evidence))
        elif reason in IMAGE_REASONS:
            image = next(
                (
                    c.get("image", "")
                    for c in (pod.get("spec") or {}).get("containers") or []
                    if c.get("name") == cname
                ),
                cs.get("image", ""),
            )
            evidence = [f"container {cname}: {reason}", f"image {image}"]
            if waiting.get("message"):
                evidence.append(str(waiting["message"]))
            out.append(("pods.image", f"{cname} cannot pull its image", evidence))
        for term, when in ((last, "its last run"), (ended, "it")):
            if term.get("reason") == "OOMKilled":
                limit = _limits(pod, cname).get("memory", "no limit")
                out.append(
                    (
                        "pods.oomkilled",
                        f"{cname} was OOMKilled",
                        [
                            f"{when} ended OOMKilled (exit code {term.get('exitCode', 137)}) "
                            f"{_ago(now, parse_time(term.get('finishedAt')))}",
                            f"memory limit {limit}; {restarts} restarts",
                        ],
                    )
                )
                break
        if restarts > RESTARTS_MAX and not crashloop:
            finished = parse_time(last.get("finishedAt"))
            started = parse_time(_meta(pod).get("creationTimestamp"))
            recent = finished is not None and (now - finished).total_seconds() <= RESTARTS_WINDOW
            young = started is not None and (now - started).total_seconds() <= RESTARTS_WINDOW
            if recent or young:
                evidence = [
                    f"container {cname}: {restarts} restarts, the last {_ago(now, finished)}"
                ]
                if started is not None:
                    evidence.append(f"pod created {_ago(now, started)}")
                if last:
                    evidence.append(
                        f"last run ended: {last.get('reason', '?')} (exit code "
                        f"{last.get('exitCode', '?')})"
                    )
                out.append(
                    ("pods.restarts", f"{cname} restarted {restarts} times lately", evidence)
                )
    if status.get("phase") == "Pending" and not any(p[0] == "pods.image" for p in out):
        reason = ""
        for cond in status.get("conditions") or []:
            if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
                reason = f"{cond.get('reason', 'Unschedulable')}: {cond.get('message', '')}"
        scheduler = [
            f"{e.get('reason')}: {e.get('message', '')}"
            for e in events
            if (e.get("involvedObject") or {}).get("kind") == "Pod"
            and (e.get("involvedObject") or {}).get("name") == name
            and e.get("reason") == "FailedScheduling"
        ]
        if scheduler or reason:
            evidence = [f"event {line}" for line in scheduler[-2:]] or [f"condition {reason}"]
            out.append(("pods.pending", "Pending: the scheduler cannot place it", evidence))
        elif (
            not any(
                ((cs.get("state") or {}).get("waiting") or {}).get("reason") == "ContainerCreating"
                for cs in _container_statuses(pod)
            )
            or _age_seconds(pod, now) > 300
        ):
            out.append(
                (
                    "pods.pending",
                    "Pending",
                    [
                        "phase Pending since "
                        + _ago(now, parse_time(_meta(pod).get("creationTimestamp")))
                    ],
                )
            )
    return out


def _age_seconds(pod: Mapping[str, Any], now: datetime.datetime) -> float:
    created = parse_time(_meta(pod).get("creationTimestamp"))
    return 0.0 if created is None else (now - created).total_seconds()


_POD_FIXES = {
    "pods.crashloop": (
        CRITICAL,
        "read its log (above, or `tradewise logs {component}`): a bad setting, a missing Secret "
        "key or a dependency down; fix it and `tradewise deploy`, or `tradewise rollback` to "
        "the last good release",
    ),
    "pods.image": (
        CRITICAL,
        "check that the tag exists in the registry (`tradewise build TAG --push`) and that the "
        "cluster may pull from it (imagePullSecrets); `tradewise rollback` meanwhile",
    ),
    "pods.pending": (
        CRITICAL,
        "free or add capacity (the cluster autoscaler, more nodes) or lower the requests in "
        "tradewise.yaml (components.{component}.resources); `tradewise scale` down meanwhile",
    ),
    "pods.oomkilled": (
        WARNING,
        "raise components.{component}.resources.limits.memory in tradewise.yaml and deploy, "
        "or, for a leak, {restart} while it is found",
    ),
    "pods.restarts": (
        CRITICAL,
        "read its log (`tradewise logs {component}`) and events (`kubectl describe pod`): "
        "failing liveness probes, OOM kills or a dependency that drops",
    ),
}


def check_pods(
    pods: Sequence[Mapping[str, Any]],
    events: Sequence[Mapping[str, Any]],
    logs: Mapping[str, list[str]],
    now: datetime.datetime,
) -> list[DoctorFinding]:
    """Crash loops, image pulls, Pending (with the scheduler's reason), OOM kills, restarts."""
    out = []
    for pod in pods:
        if _meta(pod).get("deletionTimestamp"):
            continue
        for check, message, evidence in _pod_problems(pod, events, now):
            severity, fix = _POD_FIXES[check]
            if check != "pods.image" and check != "pods.pending":
                evidence = evidence + _log_evidence(logs, _name(pod))
            out.append(
                DoctorFinding(
                    severity,
                    check,
                    f"Pod/{_name(pod)}",
                    message,
                    tuple(evidence),
                    fix.format(
                        component=_component(pod) or "COMPONENT",
                        restart=restart_hint(pod),
                    ),
                )
            )
    return out


def _selected(selector: Mapping[str, str], pod: Mapping[str, Any]) -> bool:
    labels = _meta(pod).get("labels") or {}
    return all(labels.get(k) == v for k, v in selector.items())


def check_services(
    services: Sequence[Mapping[str, Any]],
    endpoints: Sequence[Mapping[str, Any]],
    pods: Sequence[Mapping[str, Any]],
) -> list[DoctorFinding]:
    """Every Service with a selector has at least one ready endpoint.

    From its Endpoints object (ready ``addresses`` vs ``notReadyAddresses``); without one, from
    the Ready condition of the pods its selector picks.
    """
    by_name = {_name(e): e for e in endpoints}
    out = []
    for svc in services:
        selector = (svc.get("spec") or {}).get("selector") or {}
        if not selector:
            continue
        name = _name(svc)
        chosen = [p for p in pods if _selected(selector, p)]
        ep = by_name.get(name)
        if ep is not None:
            subsets = ep.get("subsets") or []
            ready = [a for s in subsets for a in s.get("addresses") or []]
            not_ready = [a for s in subsets for a in s.get("notReadyAddresses") or []]
            if ready:
                continue

            def who(a: Mapping[str, Any]) -> str:
                return str((a.get("targetRef") or {}).get("name") or a.get("ip") or "?")

            evidence = [
                f"Endpoints/{name}: 0 ready, {len(not_ready)} not ready"
                + (f" ({', '.join(who(a) for a in not_ready)})" if not_ready else "")
            ]
        else:
            if ready_pods(chosen):
                continue
            evidence = ["no Endpoints object; judged by the pods' Ready condition"]
        selector_text = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
        if chosen:
            evidence.append(
                f"{len(chosen)} pods match {selector_text}, none ready: "
                + ", ".join(sorted(_name(p) for p in chosen))
            )
        else:
            evidence.append(f"no pod matches {selector_text}")
        component = _component(svc) or "COMPONENT"
        out.append(
            DoctorFinding(
                CRITICAL,
                "services.endpoints",
                f"Service/{name}",
                "has no ready endpoints: nothing answers behind it",
                tuple(evidence),
                "see the pod findings above; `tradewise logs "
                f"{component}`; a readiness probe failing on every pod (the API's is "
                "/api/health/serving) or a selector matching no pod",
            )
        )
    return out


def _condition(hpa: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for cond in (hpa.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return dict(cond)
    return None


def check_hpas(hpas: Sequence[Mapping[str, Any]]) -> list[DoctorFinding]:
    """``AbleToScale`` and ``ScalingActive`` true; not stuck at ``maxReplicas``."""
    out = []
    for hpa in hpas:
        name = _name(hpa)
        spec = hpa.get("spec") or {}
        status = hpa.get("status") or {}
        target = (spec.get("scaleTargetRef") or {}).get("name", "?")
        conditions = status.get("conditions") or []
        if not conditions:
            out.append(
                DoctorFinding(
                    WARNING,
                    "hpa.conditions",
                    f"HorizontalPodAutoscaler/{name}",
                    "has no status conditions: the autoscaler has not evaluated it",
                    (f"target Deployment/{target}; status {dict(status) or 'empty'}",),
                    "check that the HPA controller runs and that metrics-server answers "
                    "(`kubectl top pods`); a new HPA gets its conditions within a minute",
                )
            )
        for kind in ("AbleToScale", "ScalingActive"):
            cond = _condition(hpa, kind)
            if cond is not None and cond.get("status") == "False":
                out.append(
                    DoctorFinding(
                        CRITICAL,
                        "hpa.conditions",
                        f"HorizontalPodAutoscaler/{name}",
                        f"{kind} is False: it does not scale Deployment/{target}",
                        (f"{kind}=False {cond.get('reason', '')}: {cond.get('message', '')}",),
                        "install or repair metrics-server (the metrics API) and, for the p95 and "
                        "queue metrics, prometheus-adapter with tradewise's rules; "
                        "`tradewise scale` by hand meanwhile"
                        if kind == "ScalingActive"
                        else "check that the target exists and that its scale subresource "
                        "answers; the HPA's events say more (`kubectl describe hpa`)",
                    )
                )
        high = spec.get("maxReplicas")
        current = status.get("currentReplicas")
        desired = status.get("desiredReplicas")
        limited = _condition(hpa, "ScalingLimited") or {}
        at_ceiling = high is not None and current is not None and current >= high
        wants_more = (desired is not None and high is not None and desired >= high) or (
            limited.get("status") == "True" and limited.get("reason") == "TooManyReplicas"
        )
        if at_ceiling and wants_more:
            evidence = [f"current {current}, desired {desired}, maxReplicas {high}"]
            if limited:
                evidence.append(
                    f"ScalingLimited={limited.get('status')} {limited.get('reason', '')}: "
                    f"{limited.get('message', '')}"
                )
            out.append(
                DoctorFinding(
                    WARNING,
                    "hpa.ceiling",
                    f"HorizontalPodAutoscaler/{name}",
                    f"stuck at its ceiling of {high} replicas: more load is not absorbed",
                    tuple(evidence),
                    "`tradewise scale traffic peak` (or a higher autoscaling.max in "
                    "tradewise.yaml and deploy); check what drives the load",
                )
            )
    return out


def check_metrics(
    served: bool | None,
    pod_metrics: Sequence[Mapping[str, Any]],
    pods: Sequence[Mapping[str, Any]],
    hpas: Sequence[Mapping[str, Any]],
) -> list[DoctorFinding]:
    """The metrics API serves pod CPU/memory, and no container is near its limits."""
    if served is None:
        return []
    if not served:
        return [
            DoctorFinding(
                CRITICAL if hpas else WARNING,
                "metrics.api",
                "APIService/v1beta1.metrics.k8s.io",
                "the metrics API (metrics.k8s.io) is not served"
                + (f": {len(hpas)} HPAs cannot read CPU or memory" if hpas else ""),
                ("GET /apis/metrics.k8s.io/v1beta1: not among the served API groups",),
                "install metrics-server (`kubectl top pods` works once it serves)",
            )
        ]
    out = []
    usage = {_name(m): m for m in pod_metrics}
    running = [p for p in pods if (p.get("status") or {}).get("phase") == "Running"]
    missing = sorted(_name(p) for p in running if _name(p) not in usage)
    if missing:
        out.append(
            DoctorFinding(
                WARNING,
                "metrics.api",
                "APIService/v1beta1.metrics.k8s.io",
                f"no CPU/memory metrics for {len(missing)} running pods",
                (", ".join(missing[:10]) + (" ..." if len(missing) > 10 else ""),),
                "metrics-server scrapes every 15-60 s: new pods appear after a minute; "
                "else check metrics-server's log",
            )
        )
    by_pod = {_name(p): p for p in pods}
    for name, metric in sorted(usage.items()):
        pod = by_pod.get(name)
        if pod is None:
            continue
        for c in metric.get("containers") or []:
            cname = c.get("name", "")
            use = c.get("usage") or {}
            limits = _limits(pod, cname)
            mem = memory_bytes(use.get("memory", "")) if use.get("memory") else None
            mem_limit = memory_bytes(limits["memory"]) if limits.get("memory") else None
            if mem is not None and mem_limit and mem / mem_limit >= NEAR_LIMIT:
                out.append(
                    DoctorFinding(
                        WARNING,
                        "metrics.usage",
                        f"Pod/{name}",
                        f"{cname} uses {mem / mem_limit:.0%} of its memory limit",
                        (f"memory {_mib(mem)} of {limits['memory']} (metrics API)",),
                        f"an OOM kill is near: {restart_hint(pod)} for a leak, or raise "
                        "resources.limits.memory in tradewise.yaml",
                    )
                )
            cpu = cpu_milli(use.get("cpu")) if use.get("cpu") else None
            cpu_limit = cpu_milli(limits["cpu"]) if limits.get("cpu") else None
            if cpu is not None and cpu_limit and cpu / cpu_limit >= NEAR_LIMIT:
                out.append(
                    DoctorFinding(
                        WARNING,
                        "metrics.usage",
                        f"Pod/{name}",
                        f"{cname} uses {cpu / cpu_limit:.0%} of its CPU limit (throttled)",
                        (f"cpu {cpu:.0f}m of {limits['cpu']} (metrics API)",),
                        "scale out (`tradewise scale api N`, or let the HPA: check hpa.*) or "
                        "raise resources.limits.cpu",
                    )
                )
    return out


def check_release(releases: Sequence[rel.Release], environment: str) -> list[DoctorFinding]:
    """The newest release is ``deployed``."""
    newest = rel.latest(releases)
    if newest is None:
        return [
            DoctorFinding(
                WARNING,
                "release.deployed",
                f"environment {environment}",
                "no release recorded: tradewise has not deployed here",
                ("no Secret tradewise-release.vN in the namespace",),
                f"`tradewise deploy {environment} --tag TAG`",
            )
        ]
    if newest.status == rel.DEPLOYED:
        return []
    running = rel.current(releases)
    evidence = [
        f"revision {newest.revision} ({newest.tag or 'latest'}) {newest.status} at "
        f"{newest.time} by {newest.user}: {newest.note or newest.change_cause}"
    ]
    evidence.append(
        f"revision {running.revision} ({running.tag or 'latest'}) is the last deployed"
        if running
        else "no release is deployed"
    )
    if newest.status == rel.PENDING:
        return [
            DoctorFinding(
                WARNING,
                "release.deployed",
                f"release v{newest.revision}",
                "the newest release is still pending: a deploy runs, or was cut off",
                tuple(evidence),
                f"wait for the deploy, else `tradewise status {environment}` and deploy again",
            )
        ]
    return [
        DoctorFinding(
            CRITICAL,
            "release.deployed",
            f"release v{newest.revision}",
            f"the newest release is {newest.status}",
            tuple(evidence),
            f"`tradewise rollback {environment}` to the last good release, or fix and "
            f"`tradewise deploy {environment}`",
        )
    ]


# -- backups (backups.enabled) --------------------------------------------------------------------
DAY = 86400.0


def schedule_allowance(schedule: str) -> float:
    """Seconds a CronJob on ``schedule`` may go without a success: its period plus a day.

    The period is read from the cron fields: a day of month or month set: 31 days; a day of week
    set: 7 days; every hour (``*`` hours): an hour; else a day. So a daily schedule allows 2
    days, a weekly one 8.
    """
    fields = schedule.split()
    if len(fields) != 5:
        return 8 * DAY  # @weekly-like macros and the unknown: the most lenient common case
    _minute, hour, dom, month, dow = fields
    if dom != "*" or month != "*":
        period = 31 * DAY
    elif dow != "*":
        period = 7 * DAY
    elif hour == "*":
        period = 3600.0
    else:
        period = DAY
    return period + DAY


_BACKUP_JOBS = {
    "backups.recent": ("tradewise-db-backup", "backup", "backup"),
    "backups.verified": ("tradewise-db-verify", "verification", "verify"),
}


def check_backups(
    enabled: bool,
    cronjobs: Mapping[str, Mapping[str, Any] | None],
    now: datetime.datetime,
    environment: str,
) -> list[DoctorFinding]:
    """The newest backup and its verification are as recent as their schedules allow.

    Reads each CronJob's ``status.lastSuccessfulTime`` (and ``lastScheduleTime``): missing, or
    older than ``schedule_allowance``, is a warning (info while the CronJob itself is younger
    than that: nothing was due yet).
    """
    if not enabled:
        return []
    out: list[DoctorFinding] = []
    for check, (name, what, verb) in _BACKUP_JOBS.items():
        fix = (
            f"`tradewise db {verb} --env {environment}` now; if it fails, its Job's log says why "
            f"(`kubectl get jobs -l app.kubernetes.io/component=backup`)"
        )
        obj = cronjobs.get(name)
        if obj is None:
            out.append(
                DoctorFinding(
                    WARNING,
                    check,
                    f"CronJob/{name}",
                    f"backups.enabled is true but the {what} CronJob is not deployed",
                    (f"no CronJob {name} in the namespace",),
                    f"`tradewise deploy {environment}`",
                )
            )
            continue
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        schedule = str(spec.get("schedule") or "")
        allowed = schedule_allowance(schedule)
        success = parse_time(status.get("lastSuccessfulTime"))
        scheduled = parse_time(status.get("lastScheduleTime"))
        created = parse_time(_meta(obj).get("creationTimestamp"))
        evidence = [
            f"schedule {schedule!r} ({spec.get('timeZone') or 'UTC'}): at most "
            f"{int(allowed // 3600)}h between successes",
            "lastSuccessfulTime: "
            + (f"{status['lastSuccessfulTime']} ({_ago(now, success)})" if success else "none"),
            "lastScheduleTime: "
            + (f"{status['lastScheduleTime']} ({_ago(now, scheduled)})" if scheduled else "none"),
        ]
        if scheduled and (success is None or scheduled > success):
            evidence.append("the last scheduled run has not succeeded (yet)")
        if spec.get("suspend"):
            evidence.append("the CronJob is suspended (spec.suspend: true)")
        if success is not None and (now - success).total_seconds() <= allowed:
            continue
        if success is None:
            young = created is not None and (now - created).total_seconds() < allowed
            out.append(
                DoctorFinding(
                    INFO if young else WARNING,
                    check,
                    f"CronJob/{name}",
                    f"no successful {what} recorded"
                    + (" yet (the CronJob is new)" if young else ""),
                    (*evidence, f"created {_ago(now, created)}"),
                    fix,
                )
            )
            continue
        out.append(
            DoctorFinding(
                WARNING,
                check,
                f"CronJob/{name}",
                f"the last successful {what} is older than its schedule allows",
                tuple(evidence),
                fix,
            )
        )
    return out


# -- the application's checks (both kinds) ----------------------------------------------------
def check_app(
    app: AppSample | None, slo_p95_ms: float, slo_error_rate: float
) -> list[DoctorFinding]:
    """Readiness and failing dependencies, cache hit rate, queue backlog, p95 and error rate
    against the SLOs, from the app's own ``/api/performance/stats`` (cumulative since its
    processes started)."""
    if app is None:
        return []
    if app.stats is None:
        return [
            DoctorFinding(
                CRITICAL,
                "app.reachable",
                "the API",
                "the API does not answer",
                (f"{app.where}: {app.error or 'no answer'}",),
                "see the pod / process findings; `tradewise logs api`",
            )
        ]
    stats = app.stats
    where = f"{app.where} /api/performance/stats"
    out = []
    deps = stats.get("dependencies") or {}
    failing: dict[str, str] = {}
    if app.readiness_status is not None and app.readiness_status != 200:
        body = app.readiness or {}
        checks = body.get("checks") or (body.get("error") or {}).get("checks") or {}
        for name in body.get("failing") or (body.get("error") or {}).get("failing") or []:
            failing[name] = str((checks.get(name) or {}).get("error") or "down")
        if not failing:
            failing["?"] = f"HTTP {app.readiness_status}"
    for name in ("database", "redis"):
        if deps.get(name) is False and name not in failing:
            failing[name] = "down (dependencies in the app's stats)"
    for name, why in failing.items():
        severity = WARNING if name == "redis" else CRITICAL
        effect = (
            "the API answers uncached (slower); the queue may not take tasks"
            if name == "redis"
            else "analyses are not stored; readiness fails"
        )
        evidence = [f"{name}: {why}"]
        if app.readiness_status is not None:
            evidence.append(f"GET /api/health/ready: {app.readiness_status}")
        else:
            evidence.append(f"{where}: dependencies {deps}")
        out.append(
            DoctorFinding(
                severity,
                "app.readiness",
                f"dependency {name}",
                f"the API is not ready: {name} is down ({effect})",
                tuple(evidence),
                "PostgreSQL: `tradewise logs postgres`, its Service's endpoints, the "
                "DATABASE_URL in the Secret"
                if name == "database"
                else "Redis: `tradewise logs redis`, its Service's endpoints, REDIS_URL",
            )
        )
    cache = stats.get("cache") or {}
    lookups = int(cache.get("hits") or 0) + int(cache.get("misses") or 0)
    rate = float(cache.get("hit_rate") or 0.0)
    if cache.get("enabled") and lookups >= MIN_LOOKUPS and rate < HIT_RATE_MIN:
        out.append(
            DoctorFinding(
                WARNING,
                "app.cache",
                "the analysis cache",
                f"cache hit rate {rate:.0%} is below {HIT_RATE_MIN:.0%}",
                (f"{where}: {cache.get('hits')} hits, {cache.get('misses')} misses",),
                "check that Redis is up (app.readiness) and CACHE_TTL_SECONDS; the precompute "
                "schedule warms TRADEWISE_POPULAR_SYMBOLS (`tradewise logs precompute`)",
            )
        )
    queue = stats.get("task_queue_length")
    if isinstance(queue, int) and queue > QUEUE_MAX:
        out.append(
            DoctorFinding(
                WARNING,
                "app.queue",
                "the task queue",
                f"{queue} tasks wait in the queue (more than {QUEUE_MAX})",
                (f"{where}: task_queue_length {queue} (broker {stats.get('broker')})",),
                "`tradewise scale workers N` (or check the worker HPA: hpa.*) and the workers' "
                "log (`tradewise logs worker`)",
            )
        )
    requests = stats.get("requests") or {}
    total = int(requests.get("total") or 0)
    p95 = (stats.get("latency_ms") or {}).get("p95")
    if total >= MIN_REQUESTS and isinstance(p95, (int, float)) and p95 > slo_p95_ms:
        out.append(
            DoctorFinding(
                CRITICAL,
                "app.latency",
                "the API",
                f"p95 latency {p95:.0f} ms is above the SLO ({slo_p95_ms:.0f} ms)",
                (
                    f"{where}: p95 {p95:.0f} ms over {total} requests "
                    f"(analyses: {(stats.get('stock_analysis_latency_ms') or {}).get('p95')} ms)",
                ),
                "check the cache hit rate and the database (above), CPU (metrics.*), then "
                "`tradewise scale api N`",
            )
        )
    by_status = requests.get("by_status") or {}
    errors = sum(int(n) for s, n in by_status.items() if str(s).startswith("5"))
    if total >= MIN_REQUESTS and errors / total > slo_error_rate:
        share = errors / total
        out.append(
            DoctorFinding(
                CRITICAL if share > CRITICAL_ERROR_RATE else WARNING,
                "app.errors",
                "the API",
                f"error rate {share:.1%} is above the SLO ({slo_error_rate:.1%})",
                (f"{where}: {errors} of {total} requests answered 5xx ({dict(by_status)})",),
                "`tradewise logs api` for the failing requests; a dependency down (app.readiness) "
                "or the market data provider",
            )
        )
    return out


# -- whole diagnoses --------------------------------------------------------------------------
def diagnose_cluster(
    snap: ClusterSnapshot, slo_p95_ms: float, slo_error_rate: float
) -> DoctorReport:
    """Every cluster check, from what was read."""
    findings: list[DoctorFinding] = []
    checks = list(CLUSTER_CHECKS) + list(APP_CHECKS)
    if not snap.reachable:
        findings.append(
            DoctorFinding(
                CRITICAL,
                "cluster.reachable",
                f"context {snap.context or '-'}",
                "the cluster does not answer",
                (f"{snap.server}: {snap.error}",),
                f"`kubectl --context {snap.context} cluster-info`; VPN, credentials, or the "
                "context this environment names",
            )
        )
        return report(snap.environment, "kubernetes", ["cluster.reachable"], findings)
    if snap.expected_context and snap.context != snap.expected_context:
        findings.append(
            DoctorFinding(
                WARNING,
                "cluster.context",
                f"context {snap.context}",
                f"this is not the context environment {snap.environment} names",
                (
                    f"in use: {snap.context} at {snap.server}; "
                    f"the config names {snap.expected_context}",
                ),
                f"drop --context, or set environments.{snap.environment}.context",
            )
        )
    if not snap.namespace_exists:
        findings.append(
            DoctorFinding(
                CRITICAL,
                "cluster.context",
                f"Namespace/{snap.namespace}",
                "the namespace does not exist: nothing is deployed here",
                (f"GET namespace {snap.namespace} at {snap.server}: not found",),
                f"`tradewise deploy {snap.environment}` (or check --namespace)",
            )
        )
        return report(
            snap.environment, "kubernetes", ["cluster.reachable", "cluster.context"], findings
        )
    for what, why in sorted(snap.read_errors.items()):
        findings.append(
            DoctorFinding(
                WARNING,
                "cluster.context",
                what,
                f"could not read {what}: those checks are incomplete",
                (why,),
                "a role that may get/list/watch it (`kubectl auth can-i list pods`)",
            )
        )
    findings += check_release(snap.releases, snap.environment)
    findings += check_pods(snap.pods, snap.events, snap.logs, snap.now)
    findings += check_services(snap.services, snap.endpoints, snap.pods)
    findings += check_hpas(snap.hpas)
    findings += check_metrics(snap.metrics_served, snap.pod_metrics, snap.pods, snap.hpas)
    findings += check_app(snap.app, slo_p95_ms, slo_error_rate)
    if snap.backups_enabled:
        checks += BACKUP_CHECKS
        findings += check_backups(True, snap.cronjobs, snap.now, snap.environment)
    return report(snap.environment, "kubernetes", checks, findings)


def _not_running(proc: ProcessState, check: str, what: str, fix: str) -> DoctorFinding:
    """A process (or container) of a local or compose stack that is not running: critical,
    with its exit code and last log lines."""
    shown = f"exited with code {proc.exit_code}" if proc.exit_code is not None else "stopped"
    prefix = "container " if what == "container" else ""
    evidence = [f"{prefix}{proc.name} ({proc.component}): {shown}"]
    if proc.log_tail:
        evidence += ["last log lines:", *(f"  | {line}" for line in proc.log_tail[-LOG_LINES:])]
    return DoctorFinding(
        CRITICAL,
        check,
        f"{what} {proc.name}",
        f"{proc.name} is not running ({shown})",
        tuple(evidence),
        fix,
    )


def diagnose_local(snap: LocalSnapshot, slo_p95_ms: float, slo_error_rate: float) -> DoctorReport:
    """Every local check: processes and exit codes, ports, Redis, the database file, the app.

    A compose snapshot (``kind`` compose) goes to ``diagnose_compose``."""
    if snap.kind == "compose":
        return diagnose_compose(snap, slo_p95_ms, slo_error_rate)
    findings: list[DoctorFinding] = []
    checks = list(LOCAL_CHECKS) + list(APP_CHECKS)
    if not snap.processes:
        findings.append(
            DoctorFinding(
                CRITICAL,
                "local.processes",
                f"the local stack of {snap.environment}",
                "the local stack is not running",
                ("no process recorded in its state dir",),
                "`tradewise local up`",
            )
        )
    for proc in snap.processes:
        if proc.state != "running":
            findings.append(
                _not_running(
                    proc,
                    "local.processes",
                    "process",
                    f"read its log (`tradewise local logs {proc.name}`); `tradewise local up` "
                    "restarts what crashed",
                )
            )
    for what, (port, answers) in sorted(snap.ports.items()):
        if not answers:
            findings.append(
                DoctorFinding(
                    CRITICAL,
                    "local.ports",
                    f"port {port}",
                    f"nothing answers on 127.0.0.1:{port} ({what})",
                    (f"TCP connect to 127.0.0.1:{port} refused",),
                    f"`tradewise local up` (the {what} process is down; see local.processes)",
                )
            )
    if snap.redis_ping is not None and snap.redis_ping != "PONG":
        findings.append(
            DoctorFinding(
                CRITICAL,
                "local.redis",
                "redis",
                "Redis does not answer PING: no broker, no cache",
                (f"PING: {snap.redis_ping}",),
                "`tradewise local up` restarts it; `tradewise local logs redis`",
            )
        )
    if not snap.database_exists:
        if snap.processes:
            findings.append(
                DoctorFinding(
                    INFO,
                    "local.database",
                    snap.database_path,
                    "the database file does not exist yet (made on the first stored analysis)",
                    (f"{snap.database_path}: missing",),
                    "nothing to do; GET /api/stock-analysis?symbol=AAPL creates it",
                )
            )
    elif snap.database_check != "ok":
        findings.append(
            DoctorFinding(
                CRITICAL,
                "local.database",
                snap.database_path,
                "the database file is damaged",
                (f"PRAGMA quick_check: {snap.database_check}",),
                "`tradewise local down`, move the file away (the service makes a new one; "
                "analyses are recomputed), `tradewise local up`",
            )
        )
    findings += check_app(snap.app, slo_p95_ms, slo_error_rate)
    return report(snap.environment, "local", checks, findings)


def diagnose_compose(snap: LocalSnapshot, slo_p95_ms: float, slo_error_rate: float) -> DoctorReport:
    """Every compose check: containers (state, exit code, log tail), the ports of nginx, the
    API, Redis and PostgreSQL, Redis ``PING``, PostgreSQL ``SELECT 1``, then the app's.

    No container at all is one finding (the stack is not up), and nothing else is judged.
    """
    env = snap.environment
    up = f"`tradewise local up --env {env}`"
    findings: list[DoctorFinding] = []
    if not snap.processes:
        findings.append(
            DoctorFinding(
                CRITICAL,
                "compose.containers",
                f"the compose stack of {env}",
                "the compose stack is not up: it has no container",
                (f"{snap.compose_command} ps --all: no container",),
                up,
            )
        )
        return report(env, "compose", ["compose.containers"], findings)

    def start(service: str) -> str:
        return f"`{snap.compose_command} up -d {service}` (or {up})"

    have = {p.component for p in snap.processes}
    for service in snap.services:
        if service not in have:
            findings.append(
                DoctorFinding(
                    CRITICAL,
                    "compose.containers",
                    f"service {service}",
                    f"{service} has no container",
                    (f"{snap.compose_command} ps --all: no container of {service}",),
                    start(service),
                )
            )
    for proc in snap.processes:
        if proc.state != "running":
            findings.append(
                _not_running(
                    proc,
                    "compose.containers",
                    "container",
                    f"read its log (`tradewise local logs {proc.component} --env {env}`); "
                    + start(proc.component),
                )
            )
    for what, (port, answers) in sorted(snap.ports.items()):
        if not answers:
            findings.append(
                DoctorFinding(
                    CRITICAL,
                    "compose.ports",
                    f"port {port}",
                    f"nothing answers on 127.0.0.1:{port} ({what})",
                    (f"TCP connect to 127.0.0.1:{port} refused",),
                    f"{start(what)}; see compose.containers",
                )
            )
    if snap.redis_ping is not None and snap.redis_ping != "PONG":
        findings.append(
            DoctorFinding(
                CRITICAL,
                "compose.redis",
                "redis",
                "Redis does not answer PING: no broker, no cache",
                (f"PING: {snap.redis_ping}",),
                f"{start('redis')}; `tradewise local logs redis --env {env}`",
            )
        )
    if snap.database_check is not None and snap.database_check != "ok":
        findings.append(
            DoctorFinding(
                CRITICAL,
                "compose.database",
                snap.database_path,
                "PostgreSQL does not answer: analyses are not stored, readiness fails",
                (f"SELECT 1 on {snap.database_path}: {snap.database_check}",),
                f"{start('postgres')}; `tradewise local logs postgres --env {env}`; the "
                "DATABASE_URL in compose/docker-compose.yml (TW_POSTGRES_* variables)",
            )
        )
    findings += check_app(snap.app, slo_p95_ms, slo_error_rate)
    return report(env, "compose", list(COMPOSE_CHECKS) + list(APP_CHECKS), findings)
