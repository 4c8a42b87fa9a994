"""Canary releases as data: the canary objects, the analysis queries and the verdict of a step.

``deploy --strategy canary`` runs the new version in the slot that does not serve and gives it a
growing share of real traffic through ingress-nginx's canary Ingress: a second Ingress for the
same host and paths, annotated ``nginx.ingress.kubernetes.io/canary: "true"`` and
``canary-weight: "<percent>"``, sending that share to the Service ``tradewise-api-canary`` (which
selects the new slot only). No CRD, no mesh. Each step (``release.canary.steps``, e.g. 10, 25,
50, 100) holds its weight for ``release.canary.hold``, then is analysed from the real traffic:
the canary's error rate and p95 (and req/s) from Prometheus, over the app's
``flask_request_*`` series of its ``version`` (``release.canary.queries``, with ``$version``,
``$namespace`` and ``$window`` filled in), judged against the SLOs and against the stable
version (``judge``). After the last step the stable Service and HPA move to the new slot and the
canary objects go. Without Prometheus each step runs the blue-green verification load against
the canary's preview instead. Pure.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from string import Template
from typing import Any

from tradewise_ops.core.config import CanarySettings
from tradewise_ops.core.preview import preview_ingress, slot_service
from tradewise_ops.core.verify import VerifyPlan

CANARY = "canary"
CANARY_SERVICE = "tradewise-api-canary"
CANARY_INGRESS = "tradewise-ingress-canary"
CANARY_ANNOTATION = "nginx.ingress.kubernetes.io/canary"
WEIGHT_ANNOTATION = "nginx.ingress.kubernetes.io/canary-weight"
PUBLIC_PATHS = (
    ("/api/stock-analysis", "Exact"),
    ("/api/health", "Exact"),
    ("/api/openapi.json", "Exact"),
)
METRICS = ("error_rate", "p95_ms", "rps")


def canary_objects(
    rendered: Sequence[Mapping[str, Any]], slot: str, domain: str | None
) -> list[dict[str, Any]]:
    """The canary Service (selecting ``slot`` only) and the canary Ingress at weight 0, for the
    main Ingress's host and public paths."""
    service = slot_service(rendered, slot, name=CANARY_SERVICE)
    ingress = preview_ingress(
        rendered,
        domain,
        name=CANARY_INGRESS,
        service=CANARY_SERVICE,
        paths=PUBLIC_PATHS,
        annotations={CANARY_ANNOTATION: "true", WEIGHT_ANNOTATION: "0"},
        label=CANARY,
    )
    return [service, ingress]


def weight_patch(weight: int) -> dict[str, Any]:
    """The merge patch that sets the canary Ingress's weight."""
    return {"metadata": {"annotations": {WEIGHT_ANNOTATION: str(int(weight))}}}


def queries_for(
    settings: CanarySettings, version: str, namespace: str, window: str | None = None
) -> dict[str, str]:
    """``release.canary.queries`` for ``version`` in ``namespace`` over ``window``."""
    values = {"version": version, "namespace": namespace, "window": window or settings.window}
    return {name: Template(q).safe_substitute(values) for name, q in settings.queries.items()}


@dataclass(frozen=True)
class CanaryAnalysis:
    """How a step is judged from Prometheus: the queries of both versions, the SLOs, and how much
    worse than the stable version the canary may be."""

    prometheus_url: str
    canary_version: str
    stable_version: str
    canary_queries: Mapping[str, str]
    stable_queries: Mapping[str, str]
    p95_ms: float
    error_rate: float
    p95_percent: float = 25.0
    p95_floor_ms: float = 20.0
    error_rate_points: float = 1.0

    @property
    def slo(self) -> dict[str, float]:
        return {"p95_ms": self.p95_ms, "error_rate": self.error_rate}


@dataclass(frozen=True)
class CanaryPlan:
    """The steps of a canary: weights (percent, ending at 100), the hold of each, and either a
    Prometheus ``analysis`` or (without Prometheus) a ``verify`` load against the preview."""

    weights: tuple[int, ...]
    hold_seconds: float
    analysis: CanaryAnalysis | None = None
    verify: VerifyPlan | None = None
    domain: str | None = None

    def describe(self) -> str:
        """``then Prometheus: the canary's errors and p95 against the SLOs and v1``."""
        if self.analysis is not None:
            a = self.analysis
            return (
                f"then Prometheus at {a.prometheus_url}: {a.canary_version}'s errors < "
                f"{a.error_rate * 100:g}% and p95 < {a.p95_ms:g} ms, and no worse than "
                f"{a.stable_version}"
            )
        if self.verify is not None:
            return "then the verification load against the canary's preview (no Prometheus)"
        return "then nothing to judge by"

    def to_dict(self) -> dict[str, Any]:
        return {
            "weights": list(self.weights),
            "hold_seconds": self.hold_seconds,
            "analysis": None
            if self.analysis is None
            else {
                "prometheus_url": self.analysis.prometheus_url,
                "canary_version": self.analysis.canary_version,
                "stable_version": self.analysis.stable_version,
                "queries": dict(self.analysis.canary_queries),
                "slo": self.analysis.slo,
            },
            "verify": None if self.verify is None else self.verify.to_dict(),
        }


@dataclass(frozen=True)
class Numbers:
    """One version's numbers in a window: error rate (0-1), p95 (ms), req/s; None: no data."""

    error_rate: float | None = None
    p95_ms: float | None = None
    rps: float | None = None

    @classmethod
    def of(cls, values: Mapping[str, float | None]) -> Numbers:
        return cls(*(_finite(values.get(m)) for m in METRICS))

    def text(self) -> str:
        """``p95 120 ms, errors 0.00%, 12.3 req/s`` (``-`` where there is no data)."""
        p95 = "-" if self.p95_ms is None else f"{self.p95_ms:.0f} ms"
        errors = "-" if self.error_rate is None else f"{self.error_rate * 100:.2f}%"
        rps = "-" if self.rps is None else f"{self.rps:.1f}"
        return f"p95 {p95}, errors {errors}, {rps} req/s"

    def to_dict(self) -> dict[str, float | None]:
        return {
            "error_rate": None if self.error_rate is None else round(self.error_rate, 5),
            "p95_ms": None if self.p95_ms is None else round(self.p95_ms, 1),
            "rps": None if self.rps is None else round(self.rps, 2),
        }


def _finite(value: float | None) -> float | None:
    if value is None or math.isnan(value) or math.isinf(value):
        return None
    return float(value)


@dataclass
class StepVerdict:
    """How one canary step went: its weight, both versions' numbers, what was breached."""

    number: int
    weight: int
    canary: Numbers
    stable: Numbers = field(default_factory=Numbers)
    breaches: list[str] = field(default_factory=list)
    source: str = "prometheus"  # or "load" (the verification load, without Prometheus)

    @property
    def passed(self) -> bool:
        return not self.breaches

    def sentence(self, total: int) -> str:
        """``canary step 1/4 (10%): p95 ..., errors ...; stable ...: breached ...``."""
        head = f"canary step {self.number}/{total} ({self.weight}%): {self.canary.text()}"
        if self.source == "prometheus":
            head += f"; stable {self.stable.text()}"
        if self.breaches:
            return head + "; breached: " + "; ".join(self.breaches)
        return head + "; within the SLOs"

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.number,
            "weight": self.weight,
            "passed": self.passed,
            "source": self.source,
            "canary": self.canary.to_dict(),
            "stable": self.stable.to_dict(),
            "breaches": list(self.breaches),
        }


def judge(canary: Numbers, stable: Numbers, analysis: CanaryAnalysis) -> list[str]:
    """What the canary breached, in words (empty: the step passes).

    Against the SLOs: error rate below ``error_rate``, p95 below ``p95_ms``. Against the stable
    version (when it has data): error rate at most ``error_rate_points`` percentage points
    higher; p95 at most ``p95_percent`` % higher, unless within ``p95_floor_ms`` of it. A canary
    without any request in the window is a breach: there is nothing to judge it by.
    """
    out: list[str] = []
    if not canary.rps:
        return [f"no request of {analysis.canary_version} measured in the window"]
    if canary.error_rate is not None and canary.error_rate >= analysis.error_rate:
        out.append(f"errors {canary.error_rate * 100:.2f}% >= SLO {analysis.error_rate * 100:g}%")
    if canary.p95_ms is None:
        out.append("no p95 measured")
    elif canary.p95_ms >= analysis.p95_ms:
        out.append(f"p95 {canary.p95_ms:.0f} ms >= SLO {analysis.p95_ms:g} ms")
    if stable.error_rate is not None and canary.error_rate is not None:
        gap = (canary.error_rate - stable.error_rate) * 100
        if gap > analysis.error_rate_points:
            out.append(
                f"errors {gap:.2f} points above {analysis.stable_version}'s "
                f"(at most {analysis.error_rate_points:g})"
            )
    if stable.p95_ms is not None and canary.p95_ms is not None:
        limit = stable.p95_ms * (1 + analysis.p95_percent / 100)
        if canary.p95_ms > limit and canary.p95_ms - stable.p95_ms > analysis.p95_floor_ms:
            out.append(
                f"p95 {canary.p95_ms:.0f} ms over {analysis.stable_version}'s "
                f"{stable.p95_ms:.0f} ms by more than {analysis.p95_percent:g}%"
            )
    return out


def canary_record(
    steps: Sequence[StepVerdict], total: int, slo: Mapping[str, float], url: str | None
) -> dict[str, Any]:
    """The release record's ``verification`` of a canary: passed, the last step's canary
    numbers, the SLOs, where they came from, and every step."""
    last = steps[-1] if steps else None
    failed = next((s for s in steps if not s.passed), None)
    return {
        "v": 1,
        "passed": bool(steps) and failed is None and len(steps) == total,
        "skipped": False,
        "mode": CANARY,
        "url": url,
        "job": None,
        "p95_ms": None if last is None else last.canary.to_dict()["p95_ms"],
        "error_rate": None if last is None else last.canary.to_dict()["error_rate"],
        "rps": None if last is None else last.canary.to_dict()["rps"],
        "slo": dict(slo),
        "steps": [s.to_dict() for s in steps],
        "step": None if failed is None else failed.to_dict(),
        "problem": "" if failed is None else failed.sentence(total),
        "reason": "",
    }
