"""SLO verdicts: p95 and error rate strictly below the objectives; one failure tolerated."""

from __future__ import annotations

import pytest

from tradewise_ops.core.slo import Verdict, evaluate


def verdict(requests: int = 1000, failures: int = 0, p95: float | None = 120.0) -> Verdict:
    return evaluate(
        requests=requests, failures=failures, p95_ms=p95, max_p95_ms=500, max_error_rate=0.01
    )


def test_met_when_both_objectives_are_met() -> None:
    v = verdict()
    assert v.met and not v.missed()
    assert v.sentence() == "SLOs met: p95 < 500 ms (120 ms) ok; errors < 1% (0.00%) ok"
    assert v.to_dict()["met"] is True


def test_p95_must_be_strictly_below_the_objective() -> None:
    assert not verdict(p95=500.0).met
    assert verdict(p95=499.9).met
    v = verdict(p95=720.0)
    assert [c.name for c in v.missed()] == ["p95"]
    assert "p95 < 500 ms (720 ms) MISSED" in v.sentence()


def test_error_rate_must_be_strictly_below_the_objective() -> None:
    assert verdict(requests=1000, failures=9).met
    v = verdict(requests=1000, failures=10)
    assert [c.name for c in v.missed()] == ["error_rate"]
    assert "errors < 1% (1.00%) MISSED" in v.sentence()


def test_a_single_failed_request_does_not_fail_a_run() -> None:
    # 1 of 20 is 5%, far above 1%, but one failure alone never fails a run
    assert verdict(requests=20, failures=1).met
    assert not verdict(requests=20, failures=2).met


def test_no_completed_request_is_a_miss() -> None:
    v = verdict(requests=0, failures=0, p95=None)
    assert not v.met
    assert v.sentence() == "SLOs missed: no request completed"
    assert v.checks[0].actual is None


def test_objectives_are_checked() -> None:
    with pytest.raises(ValueError):
        evaluate(requests=1, failures=0, p95_ms=1, max_p95_ms=0, max_error_rate=0.01)
    with pytest.raises(ValueError):
        evaluate(requests=1, failures=0, p95_ms=1, max_p95_ms=5, max_error_rate=1.5)
