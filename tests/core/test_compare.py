"""``core.compare``: reading runs, comparability, the noise rule, thresholds, scaling facts."""

from __future__ import annotations

from typing import Any

import pytest

from tradewise_ops.core import release as rel
from tradewise_ops.core.compare import (
    BETTER,
    OK,
    REGRESSED,
    WITHIN_NOISE,
    against_baseline,
    beyond_noise,
    check_comparable,
    compare,
    load_summary,
    parse_ref,
    read_run,
    scaling_facts,
    spread,
    with_overrides,
)
from tradewise_ops.core.config import CompareThresholds
from tradewise_ops.errors import BadInputError, GoalMissedError

LIMITS = CompareThresholds()


def report(
    p95s: list[float],
    rpss: list[float] | None = None,
    errors: list[float] | None = None,
    *,
    endpoint: str = "/api/health",
    users: int = 4,
    kind: str = "load-test",
    total: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A load-test report as ``LoadReport.to_dict`` writes it (the parts compare reads)."""
    rpss = rpss or [100.0] * len(p95s)
    errors = errors or [0.0] * len(p95s)
    rows = [
        {
            "second": float(i + 1),
            "users": users,
            "requests": int(rps),
            "failures": int(rps * err),
            "rps": rps,
            "error_rate": err,
            "p50_ms": p95 / 2,
            "p95_ms": p95,
            "p99_ms": p95 * 1.2,
            "max_ms": p95 * 1.5,
            "stage": "",
        }
        for i, (p95, rps, err) in enumerate(zip(p95s, rpss, errors, strict=True))
    ]
    summary = total or {
        "requests": int(sum(rpss)),
        "failures": int(sum(r * e for r, e in zip(rpss, errors, strict=True))),
        "rps": sum(rpss) / len(rpss),
        "error_rate": sum(errors) / len(errors),
        "p50_ms": sorted(p95s)[len(p95s) // 2] / 2,
        "p95_ms": sorted(p95s)[len(p95s) // 2],
        "p99_ms": max(p95s),
    }
    return {
        "kind": kind,
        "target": "http://127.0.0.1:1",
        "users": users,
        "settings": {"wait": "0s", "interval_seconds": 1.0, "stages": [], "tasks": []},
        "total": summary,
        "endpoints": {endpoint: summary},
        "intervals": rows,
    }


def run(doc: dict[str, Any], label: str = "run") -> Any:
    return read_run(doc, label)


def row(result: Any, metric: str, scope: str = "total") -> Any:
    return next(r for r in result.rows if r.metric == metric and r.scope == scope)


# -- reading ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("doc", "says"),
    [
        ([1, 2], "not a JSON object"),
        ({"kind": "load-test"}, "no total, endpoints"),
        ({"kind": "x", "total": 3, "endpoints": {}}, "not a tradewise load report"),
    ],
)
def test_what_is_not_a_report_is_bad_input(doc: Any, says: str) -> None:
    with pytest.raises(BadInputError, match=says):
        read_run(doc, "x.json")


def test_steady_intervals_leave_out_the_ramp_and_the_partial_last_one() -> None:
    doc = report([10, 11, 12, 13])
    doc["intervals"][0]["users"] = 2  # still spawning
    doc["intervals"].append({**doc["intervals"][-1], "second": 4.3})  # partial
    steady = run(doc).steady("total")
    assert [r["second"] for r in steady] == [2.0, 3.0, 4.0]
    assert run(doc).steady("/api/health") == steady  # one endpoint: its series is the total


def test_ref_forms() -> None:
    assert parse_ref("prod@3") == ("prod", 3)
    assert parse_ref("out/report.json") is None
    assert parse_ref("prod@") is None
    with pytest.raises(BadInputError, match="from 1"):
        parse_ref("prod@0")


# -- comparability ----------------------------------------------------------------------------
def test_different_endpoints_and_users_are_named() -> None:
    a = run(report([10] * 4), "a.json")
    b = run(report([10] * 4, endpoint="/api/stats", users=8), "b.json")
    with pytest.raises(BadInputError) as caught:
        check_comparable(a, b)
    text = str(caught.value)
    assert "a.json and b.json cannot be compared" in text
    assert "only in BASE: /api/health; only in NEW: /api/stats" in text
    assert "different users (4 vs 8)" in text


def test_different_kinds_are_named() -> None:
    with pytest.raises(BadInputError, match="BASE is a load-test, NEW a performance-test"):
        check_comparable(run(report([1] * 3)), run(report([1] * 3, kind="performance-test")))


# -- the noise rule ---------------------------------------------------------------------------
def test_spread_is_median_and_p10_p90_by_nearest_rank() -> None:
    s = spread([float(x) for x in range(1, 21)])
    assert s is not None
    assert (s.median, s.low, s.high, s.count) == (10.5, 2.0, 18.0, 20)
    assert spread([1.0, 2.0]) is None  # too few intervals
    low, high = spread([10.0, 11.0, 12.0]), spread([30.0, 31.0, 32.0])
    assert low is not None and high is not None
    assert beyond_noise(low, high) and beyond_noise(high, low)
    wide = spread([5.0, 20.0, 40.0])
    assert low.width == 2 and wide is not None and wide.width == 35
    assert not beyond_noise(low, wide)  # medians 11 and 20: 9 apart, spreads 2 + 35


def test_a_shift_beyond_both_bands_regresses_with_both_numbers() -> None:
    base = run(report([50, 52, 55, 51, 53]), "base.json")
    new = run(report([150, 152, 149, 151, 155]), "new.json")
    result = compare(base, new, LIMITS)
    assert result.regressed
    p95 = row(result, "p95_ms")
    assert p95.verdict == REGRESSED
    assert "p95 151.0 ms vs 52.0 ms (+190.4%, threshold +10%" in result.sentence()
    assert "per-interval medians 52.0 ms -> 151.0 ms, noise 5.0 ms + 6.0 ms" in p95.sentence()
    assert p95.noise_text() == "+99.0 / 11.0"


def test_a_change_beyond_the_threshold_inside_a_noisy_run_is_within_noise() -> None:
    base = run(report([30, 90, 40, 200, 60]))  # median 60, spread 30-200
    new = run(report([70, 75, 72, 74, 71]))  # median 72: 12 apart, less than 170 + 5
    result = compare(base, new, LIMITS)
    assert row(result, "p95_ms").verdict == WITHIN_NOISE
    assert not result.regressed
    # two calm runs that drifted apart by less than their spreads together: noise as well
    calm = compare(run(report([49, 50, 52, 55, 53])), run(report([61, 70, 82, 66, 75])), LIMITS)
    assert row(calm, "p95_ms").verdict == WITHIN_NOISE  # medians 52 -> 70; spreads 6 + 21
    assert "within the run-to-run noise: total p95" in result.sentence()


def test_improvements_and_unjudged_metrics() -> None:
    base = run(report([100] * 5, [50.0] * 5))
    new = run(report([40] * 5, [120.0] * 5))
    result = compare(base, new, LIMITS)
    assert row(result, "p95_ms").verdict == BETTER
    assert row(result, "rps").verdict == BETTER
    assert row(result, "p99_ms").verdict == "not judged"  # p99_percent is null by default
    stricter = with_overrides(LIMITS, p99_percent=5.0)
    assert stricter.p99_percent == 5.0 and stricter.p95_percent == LIMITS.p95_percent
    with pytest.raises(BadInputError, match="--rps-percent must be 0 or more"):
        with_overrides(LIMITS, rps_percent=-1.0)


def test_error_rate_in_points_and_a_burst_counts_as_noise() -> None:
    base = run(report([10] * 6))
    steady = run(report([10] * 6, errors=[0.02] * 6))  # 2% every second: +2 points
    assert row(compare(base, steady, LIMITS), "error_rate").verdict == REGRESSED
    burst = run(report([10] * 6, errors=[0, 0, 0.12, 0, 0, 0]))  # +2 points from one second
    judged = row(compare(base, burst, LIMITS), "error_rate")
    assert judged.change == "+2.00 pt" and judged.verdict == WITHIN_NOISE


def test_without_intervals_the_thresholds_alone_decide_and_say_so() -> None:
    base = report([50, 50, 50])
    new = report([50, 50, 50], total={"requests": 10, "failures": 0, "rps": 5, "p95_ms": 99})
    new["intervals"] = []  # an in-cluster report: totals only
    result = compare(run(base, "a"), run(new, "b"), LIMITS)
    assert row(result, "p95_ms").verdict == REGRESSED
    assert "noise unknown" in row(result, "p95_ms").sentence()
    assert any("b has fewer than 3 steady intervals" in n for n in result.notes)


def test_per_endpoint_rows_use_each_endpoints_own_series() -> None:
    def two(p95_b: list[float]) -> dict[str, Any]:
        doc = report([20] * 4)
        doc["endpoints"] = {
            "/a": {"rps": 50, "p95_ms": 20, "error_rate": 0},
            "/b": {"rps": 50, "p95_ms": sorted(p95_b)[2], "error_rate": 0},
        }
        doc["endpoint_intervals"] = {
            "/a": doc["intervals"],
            "/b": [{**r, "p95_ms": p} for r, p in zip(doc["intervals"], p95_b, strict=True)],
        }
        return doc

    result = compare(run(two([20] * 4)), run(two([80, 81, 82, 83])), LIMITS)
    assert row(result, "p95_ms", "/b").verdict == REGRESSED
    assert row(result, "p95_ms", "/a").verdict == OK
    assert "/b p95 82.0 ms vs 20.0 ms" in result.sentence()


# -- scaling facts (--monitor) ----------------------------------------------------------------
MONITOR = {
    "scale_ups": [
        {"deployment": "tradewise-api-deployment", "to_replicas": 5, "total_seconds": 40.0},
        {"deployment": "tradewise-api-deployment", "to_replicas": 7, "total_seconds": 55.5},
    ],
    "state": {"deployments": [{"name": "tradewise-api-deployment", "desired": 6, "ready": 6}]},
}


def test_scaling_facts_from_monitor_data() -> None:
    facts = scaling_facts(MONITOR)
    assert facts == {
        "peak_replicas": {"tradewise-api-deployment": 7},
        "scale_ups": 2,
        "scale_up_seconds": 55.5,
    }
    assert scaling_facts({"scale_ups": [], "state": {}}) is None


def test_scaling_is_compared_when_both_runs_carry_it() -> None:
    slower = {
        "scale_ups": [
            {"deployment": "tradewise-api-deployment", "to_replicas": 10, "total_seconds": 90.0}
        ]
    }
    base = run({**report([10] * 4), "monitor": MONITOR})
    new = run({**report([10] * 4), "monitor": slower})
    result = compare(base, new, LIMITS)
    peak = row(result, "peak_replicas:tradewise-api-deployment", "scaling")
    assert (peak.base, peak.new, peak.change, peak.verdict) == (7, 10, "+3", REGRESSED)
    up = row(result, "scale_up_seconds", "scaling")
    assert up.verdict == REGRESSED and up.value(up.new) == "90.0 s"
    alone = compare(base, run(report([10] * 4)), LIMITS)
    assert "only one run carries --monitor data" in " ".join(alone.notes)


# -- release records and --baseline -----------------------------------------------------------
def test_load_summary_round_trips_through_a_release_record() -> None:
    doc = {**report([10, 12, 11]), "monitor": MONITOR, "generator": {"cpu_percent": 50}}
    summary = load_summary(doc)
    assert "generator" not in summary and summary["scaling"]["scale_up_seconds"] == 55.5
    release = rel.Release(
        revision=3, environment="prod", namespace="tradewise-ai", tag="v3", time="t",
        user="u", change_cause="c", status=rel.DEPLOYED, verification={"load": summary},
    )  # fmt: skip
    back = rel.from_secret(rel.to_secret(release))
    assert back.verification == {"load": summary}
    again = read_run(back.verification, "prod@3")
    assert again.total == doc["total"] and again.scaling == summary["scaling"]
    plain = rel.Release(**{**release.__dict__, "verification": None})
    assert rel.from_secret(rel.to_secret(plain)).verification is None


def test_against_baseline_states() -> None:
    base = run(report([50, 51, 52, 53]), "base.json")
    assert against_baseline(None, report([1] * 3), LIMITS).to_dict() is None
    bad = against_baseline(base, report([50] * 4, endpoint="/x"), LIMITS)
    assert bad.to_dict() is not None and bad.to_dict()["comparable"] is False  # type: ignore[index]
    with pytest.raises(BadInputError, match="different endpoints"):
        bad.raise_if_incomparable()
    worse = against_baseline(base, report([150, 151, 152, 153]), LIMITS)
    assert worse.to_dict()["regressed"] is True  # type: ignore[index]
    with pytest.raises(GoalMissedError, match="SLOs met; this run regressed against base.json"):
        worse.raise_if_regressed("SLOs met")
    same = against_baseline(base, report([50, 51, 52, 53]), LIMITS)
    same.raise_if_incomparable()
    same.raise_if_regressed("SLOs met")
    assert same.tail() == "; this run is within the thresholds of base.json"
