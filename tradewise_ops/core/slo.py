"""SLO verdicts of a load test: p95 latency and error rate against the objectives.

Pure: takes the numbers a run produced and the objectives (``tradewise.yaml`` ``slo`` or the
command line's overrides) and says which were met. A single failed request never fails a run by
itself: with one failure the error-rate objective is met whatever the volume.
"""

from __future__ import annotations

from dataclasses import dataclass

# a run with at most this many failures never misses the error-rate objective because of them
TOLERATED_FAILURES = 1


@dataclass(frozen=True)
class SloCheck:
    """One objective: what was wanted, what was measured, and whether it was met."""

    name: str
    objective: str
    actual: float | None
    threshold: float
    met: bool

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready mapping."""
        return {
            "name": self.name,
            "objective": self.objective,
            "actual": self.actual,
            "threshold": self.threshold,
            "met": self.met,
        }


@dataclass(frozen=True)
class Verdict:
    """The verdict of a run: met when every check is met."""

    checks: tuple[SloCheck, ...]
    requests: int
    failures: int

    @property
    def met(self) -> bool:
        """True when every objective was met (and at least one request completed)."""
        return self.requests > 0 and all(c.met for c in self.checks)

    def missed(self) -> list[SloCheck]:
        """The checks that were not met."""
        return [c for c in self.checks if not c.met]

    def sentence(self) -> str:
        """One line for people: ``SLOs met: ...`` or ``SLOs missed: ...``."""
        if self.requests == 0:
            return "SLOs missed: no request completed"
        parts = []
        for check in self.checks:
            parts.append(f"{check.objective} ({_actual(check)}) {'ok' if check.met else 'MISSED'}")
        return ("SLOs met: " if self.met else "SLOs missed: ") + "; ".join(parts)

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready mapping."""
        return {
            "met": self.met,
            "requests": self.requests,
            "failures": self.failures,
            "checks": [c.to_dict() for c in self.checks],
            "summary": self.sentence(),
        }


def _actual(check: SloCheck) -> str:
    if check.actual is None:
        return "no data"
    if check.name == "error_rate":
        return f"{check.actual * 100:.2f}%"
    return f"{check.actual:.0f} ms"


def evaluate(
    *,
    requests: int,
    failures: int,
    p95_ms: float | None,
    max_p95_ms: float,
    max_error_rate: float,
) -> Verdict:
    """The verdict of a run: ``p95 < max_p95_ms`` and ``error rate < max_error_rate``.

    ``p95_ms`` is the 95th percentile of every response time of the run (None when none
    completed). The error rate is ``failures / requests``; at most ``TOLERATED_FAILURES`` failures
    never miss the objective, so one failed request in a short run does not fail it.
    """
    if max_p95_ms <= 0:
        raise ValueError("max_p95_ms must be positive")
    if not 0 < max_error_rate <= 1:
        raise ValueError("max_error_rate must be in (0, 1]")
    rate = failures / requests if requests else None
    p95_check = SloCheck(
        name="p95",
        objective=f"p95 < {max_p95_ms:g} ms",
        actual=p95_ms,
        threshold=max_p95_ms,
        met=p95_ms is not None and p95_ms < max_p95_ms,
    )
    error_check = SloCheck(
        name="error_rate",
        objective=f"errors < {max_error_rate * 100:g}%",
        actual=rate,
        threshold=max_error_rate,
        met=rate is not None and (rate < max_error_rate or failures <= TOLERATED_FAILURES),
    )
    return Verdict(checks=(p95_check, error_check), requests=requests, failures=failures)
