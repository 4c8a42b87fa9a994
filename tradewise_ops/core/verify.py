"""Verifying a new version before traffic moves to it, as data: what to check, and the verdict.

A blue-green (or canary, without Prometheus) release verifies the new slot through its preview:
first the smoke checks (``SMOKE_CHECKS``: health, readiness, one analysis answer with the expected
shape), then a short load test (``release.verify`` in ``tradewise.yaml``) judged against the
environment's SLOs. ``verify_plan`` decides where the verification runs: at ``--verify-url``, at
the preview Ingress host (``https://preview.<domain>``: from this machine, or in the cluster when
that host does not answer), or, without a domain, in the cluster as the in-cluster load test
does, against the preview Service. ``verification_record`` is what the release record keeps
(``passed``, ``p95_ms``, ``error_rate``, ``rps``, ``slo``, the URL or Job, the smoke results and
the load summary that ``tradewise compare ENV@REV`` reads). Pure.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tradewise_ops.core.config import PerformanceTest, Slo, VerifySettings
from tradewise_ops.core.loadplan import (
    LoadSpec,
    TaskSpec,
    WaitSpec,
    check_host,
    performance_tasks,
)

URL = "url"  # the CLI loads a URL it can reach (--verify-url, or the preview host)
CLUSTER = "cluster"  # Locust Jobs in the cluster against the preview Service
SKIP = "skip"  # --no-verify
PREVIEW_SERVICE = "tradewise-api-preview"
PREVIEW_INGRESS = "tradewise-ingress-preview"
RECORD_VERSION = 1


@dataclass(frozen=True)
class SmokeCheck:
    """One request the new version must answer before any load: ``path``, the status wanted,
    and (``shape``) the JSON keys its answer must carry (dotted for nested ones)."""

    name: str
    path: str
    status: int = 200
    shape: tuple[str, ...] = ()


def smoke_checks(symbol: str = "AAPL") -> tuple[SmokeCheck, ...]:
    """Health, readiness (database and Redis answer), one analysis of ``symbol``."""
    return (
        SmokeCheck("health", "/api/health", 200, ("status",)),
        SmokeCheck("readiness", "/api/health/ready", 200, ("status", "checks")),
        SmokeCheck(
            "analysis",
            f"/api/stock-analysis?symbol={symbol}",
            200,
            ("symbol", "price.close", "indicators", "recommendation.action"),
        ),
    )


def check_answer(check: SmokeCheck, status: int, body: bytes) -> str | None:
    """Why an answer fails ``check`` (wrong status, not JSON, a key missing), or None."""
    if status != check.status:
        return f"{check.path} answered {status}, expected {check.status}"
    if not check.shape:
        return None
    try:
        doc = json.loads(body)
    except ValueError:
        return f"{check.path} did not answer JSON"
    missing = [key for key in check.shape if _lookup(doc, key) is None]
    if missing:
        return f"{check.path} answered without {', '.join(missing)}"
    return None


def _lookup(doc: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(doc, Mapping) or part not in doc:
            return None
        doc = doc[part]
    return doc


@dataclass(frozen=True)
class VerifyPlan:
    """Where and how a release is verified before traffic moves.

    ``mode``: ``url`` (this machine loads ``url``), ``cluster`` (Locust Jobs in the namespace
    load ``url``, the preview Service's cluster address) or ``skip`` (``--no-verify``).
    ``fallback_url``: in ``url`` mode at the preview host, the in-cluster address to load from
    Jobs when that host does not answer from here. ``image``: the Jobs' image.
    """

    mode: str
    url: str | None
    spec: LoadSpec | None
    p95_ms: float
    error_rate: float
    smoke: tuple[SmokeCheck, ...] = ()
    reason: str = ""  # why skipped, or where the URL came from
    fallback_url: str | None = None
    image: str | None = None

    @property
    def skipped(self) -> bool:
        return self.mode == SKIP

    @property
    def slo(self) -> dict[str, float]:
        return {"p95_ms": self.p95_ms, "error_rate": self.error_rate}

    def describe(self) -> str:
        """``smoke (health, readiness, analysis), then 10 users for 20s: p95 < 500 ms, ...``."""
        if self.spec is None:
            return f"skipped ({self.reason})"
        load = (
            f"{self.spec.users} users for {self.spec.duration_seconds:g}s "
            f"({', '.join(t.name for t in self.spec.tasks)})"
        )
        where = {URL: "from here", CLUSTER: "as Locust Jobs in the cluster"}[self.mode]
        if self.fallback_url:
            where += " (in the cluster when it does not answer from here)"
        return (
            f"smoke ({', '.join(c.name for c in self.smoke)}), then {load}, {where}: "
            f"p95 < {self.p95_ms:g} ms, errors < {self.error_rate * 100:g}%"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "url": self.url,
            "fallback_url": self.fallback_url,
            "slo": self.slo,
            "smoke": [c.path for c in self.smoke],
            "load": None
            if self.spec is None
            else {
                "users": self.spec.users,
                "seconds": self.spec.duration_seconds,
                "tasks": [t.name for t in self.spec.tasks],
            },
            "reason": self.reason,
        }


def objectives(settings: VerifySettings, slo: Slo) -> tuple[float, float]:
    """The verification's p95 (ms) and error-rate objectives: ``release.verify``'s, else
    ``slo``'s."""
    p95 = settings.p95_ms if settings.p95_ms is not None else slo.p95_ms
    rate = settings.error_rate if settings.error_rate is not None else slo.error_rate
    return p95, rate


def verify_spec(
    settings: VerifySettings, host: str, perf: PerformanceTest | None = None
) -> LoadSpec:
    """The verification load against ``host``: ``settings.endpoints`` (or the performance-test
    mix), ``users`` users from the start, as fast as answers come, for ``duration``."""
    if settings.mix:
        if perf is None:
            raise ValueError("release.verify.mix needs the performance_test settings")
        tasks = performance_tasks(perf)
    else:
        tasks = tuple(TaskSpec(name=e, paths=(e,), weight=1) for e in settings.endpoints)
    return LoadSpec(
        host=check_host(host),
        tasks=tasks,
        duration_seconds=settings.duration_seconds,
        users=settings.users,
        spawn_rate=max(settings.spawn_rate, float(settings.users)),
        wait=WaitSpec(),
        kind="load-test",
    )


def verify_plan(
    settings: VerifySettings,
    slo: Slo,
    *,
    namespace: str,
    service: str = PREVIEW_SERVICE,
    verify_url: str | None = None,
    preview_host: str | None = None,
    skip_reason: str | None = None,
    perf: PerformanceTest | None = None,
    image: str | None = None,
) -> VerifyPlan:
    """Where the release is verified: ``verify_url`` (given by the user) when set; else the
    preview Ingress host ``preview_host`` over https, falling back to Jobs in the cluster; else
    Jobs in the cluster against ``service``'s cluster address (their image:
    ``release.verify.image``, else ``image``). ``skip_reason`` (``--no-verify``): no
    verification, and the record says why."""
    p95, rate = objectives(settings, slo)
    image = settings.image or image
    if skip_reason is not None:
        return VerifyPlan(SKIP, None, None, p95, rate, reason=skip_reason)
    smoke = smoke_checks(settings.smoke_symbol)
    inside = f"http://{service}.{namespace}.svc"
    if verify_url is not None:
        url = check_host(verify_url)
        spec = verify_spec(settings, url, perf)
        return VerifyPlan(URL, url, spec, p95, rate, smoke, reason="--verify-url")
    if preview_host is not None:
        url = f"https://{preview_host}"
        spec = verify_spec(settings, url, perf)
        return VerifyPlan(
            URL, url, spec, p95, rate, smoke, "the preview host", fallback_url=inside, image=image
        )
    spec = verify_spec(settings, inside, perf)
    return VerifyPlan(CLUSTER, inside, spec, p95, rate, smoke, "no domain", image=image)


@dataclass
class SmokeResult:
    """One smoke check as it went: the status, the seconds, why it failed (None: passed)."""

    name: str
    path: str
    status: int | None
    seconds: float
    problem: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": self.path,
            "status": self.status,
            "ms": round(self.seconds * 1000, 1),
            "ok": self.problem is None,
            **({"problem": self.problem} if self.problem else {}),
        }


@dataclass
class Verification:
    """The outcome of verifying a release: smoke results, the load's numbers, the verdict."""

    url: str | None
    passed: bool
    smoke: list[SmokeResult] = field(default_factory=list)
    p95_ms: float | None = None
    error_rate: float | None = None
    rps: float | None = None
    requests: int = 0
    slo: Mapping[str, float] = field(default_factory=dict)
    job: str | None = None  # the Locust master Job, when it ran in the cluster
    load: Mapping[str, Any] | None = None  # core.compare.load_summary of the load report
    problem: str = ""  # the first failed smoke check, or the SLOs missed
    skipped: bool = False
    reason: str = ""
    mode: str = URL

    def sentence(self) -> str:
        """``verification passed at URL: p95 120 ms (< 500), errors 0.00% (< 1%), 85.3 req/s``."""
        if self.skipped:
            return f"verification skipped ({self.reason})"
        where = f"job {self.job}" if self.job else (self.url or "?")
        verdict = "passed" if self.passed else "FAILED"
        text = f"verification {verdict} at {where}"
        if self.p95_ms is not None or self.error_rate is not None:
            text += ": " + numbers_text(self.p95_ms, self.error_rate, self.rps, self.slo)
        if self.problem:
            text += f" ({self.problem})"
        return text

    def to_record(self) -> dict[str, Any]:
        """What the release record keeps (``verification``)."""
        return verification_record(self)


def numbers_text(
    p95_ms: float | None,
    error_rate: float | None,
    rps: float | None,
    slo: Mapping[str, float],
) -> str:
    """``p95 812 ms (SLO < 500 ms), errors 0.00% (SLO < 1%), 85.3 req/s``."""
    parts = []
    p95_text = "no data" if p95_ms is None else f"{p95_ms:.0f} ms"
    parts.append(f"p95 {p95_text} (SLO < {slo.get('p95_ms', 0):g} ms)")
    rate_text = "no data" if error_rate is None else f"{error_rate * 100:.2f}%"
    parts.append(f"errors {rate_text} (SLO < {slo.get('error_rate', 0) * 100:g}%)")
    if rps is not None:
        parts.append(f"{rps:.1f} req/s")
    return ", ".join(parts)


def verification_record(v: Verification) -> dict[str, Any]:
    """The release record's ``verification``: the verdict and its numbers first, then the
    smoke results and (``load``) the load summary ``compare`` reads."""
    doc: dict[str, Any] = {
        "v": RECORD_VERSION,
        "passed": None if v.skipped else v.passed,
        "skipped": v.skipped,
        "mode": v.mode,
        "url": v.url,
        "job": v.job,
        "p95_ms": None if v.p95_ms is None else round(v.p95_ms, 1),
        "error_rate": None if v.error_rate is None else round(v.error_rate, 5),
        "rps": None if v.rps is None else round(v.rps, 2),
        "requests": v.requests,
        "slo": dict(v.slo),
        "smoke": [s.to_dict() for s in v.smoke],
        "problem": v.problem,
        "reason": v.reason,
    }
    if v.load is not None:
        doc["load"] = dict(v.load)
    return doc


def skipped_record(reason: str, slo: Mapping[str, float]) -> dict[str, Any]:
    """The ``verification`` of a release deployed with ``--no-verify``."""
    return verification_record(
        Verification(url=None, passed=False, slo=dict(slo), skipped=True, reason=reason)
    )


def summarize_load(total: Mapping[str, Any]) -> tuple[float | None, float | None, float | None]:
    """``(p95_ms, error_rate, rps)`` of a load report's ``total``."""

    def num(key: str) -> float | None:
        value = total.get(key)
        return None if value is None else float(value)

    return num("p95_ms"), num("error_rate"), num("rps")
