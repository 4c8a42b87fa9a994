"""Releases decided by evidence, as data: preview and canary objects, the verification plan, the
steps a verified blue-green or canary plan takes, the canary verdict, the ``release`` config."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import yaml

from tradewise_ops.core import release as rel
from tradewise_ops.core.bluegreen import slotted
from tradewise_ops.core.canary import (
    CANARY_ANNOTATION,
    WEIGHT_ANNOTATION,
    CanaryAnalysis,
    CanaryPlan,
    Numbers,
    StepVerdict,
    canary_objects,
    canary_record,
    judge,
    queries_for,
)
from tradewise_ops.core.config import Slo, VerifySettings, load_config, parse_config
from tradewise_ops.core.plan import DeployPlan, FinishRelease, PruneObject, build_plan, with_steps
from tradewise_ops.core.preview import preview_objects
from tradewise_ops.core.release_steps import (
    PREVIOUS_REVISION,
    PREVIOUS_UNTIL,
    KeptSlot,
    iso_time,
    kept_slot,
    parse_time,
)
from tradewise_ops.core.render import render_environment
from tradewise_ops.core.verified_plan import (
    instant_steps,
    with_canary,
    with_retired,
    with_verification,
)
from tradewise_ops.core.verify import (
    CLUSTER,
    SKIP,
    URL,
    SmokeCheck,
    check_answer,
    smoke_checks,
    verify_plan,
)
from tradewise_ops.errors import BadInputError, ConfigError

ROOT = Path(__file__).resolve().parents[2]
NS = "tradewise-ai"


@pytest.fixture(scope="module")
def rendered() -> list[dict[str, Any]]:
    return render_environment(load_config(ROOT / "tradewise.yaml"), "staging", tag="v2")


def _by(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)


# -- preview and canary objects ------------------------------------------------------------------
def test_the_preview_selects_only_the_new_slot_on_its_own_host(rendered: list[Any]) -> None:
    service, ingress = preview_objects(
        rendered, "green", domain="staging.example.com", preview_host="preview"
    )
    main_svc = _by(rendered, "Service", "tradewise-api-service")
    assert service["metadata"]["name"] == "tradewise-api-preview"
    assert service["spec"]["selector"] == {
        **main_svc["spec"]["selector"],
        "tradewise.io/slot": "green",
    }
    assert service["spec"]["ports"] == main_svc["spec"]["ports"]
    assert "tradewise.io/slot" not in main_svc["spec"]["selector"]  # the rendered one untouched
    rule = ingress["spec"]["rules"][0]
    assert rule["host"] == "preview.staging.example.com"
    paths = {p["path"] for p in rule["http"]["paths"]}
    assert paths == {"/api/stock-analysis", "/api/health", "/api/health/ready", "/api/openapi.json"}
    assert {p["backend"]["service"]["name"] for p in rule["http"]["paths"]} == {
        "tradewise-api-preview"
    }
    main = _by(rendered, "Ingress", "tradewise-ingress")
    assert ingress["spec"]["ingressClassName"] == main["spec"]["ingressClassName"]
    assert ingress["spec"]["tls"] == [
        {
            "hosts": ["preview.staging.example.com"],
            "secretName": main["spec"]["tls"][0]["secretName"],
        }
    ]
    own = preview_objects(rendered, "blue", domain="x.io", preview_host="pv", tls_secret="pv-tls")
    assert own[1]["spec"]["tls"] == [{"hosts": ["pv.x.io"], "secretName": "pv-tls"}]
    assert len(preview_objects(rendered, "blue", domain=None, preview_host="pv")) == 1


def test_the_canary_ingress_shares_the_host_at_weight_0(rendered: list[Any]) -> None:
    service, ingress = canary_objects(rendered, "blue", "staging.tradewise.example.com")
    assert service["spec"]["selector"]["tradewise.io/slot"] == "blue"
    annotations = ingress["metadata"]["annotations"]
    assert annotations[CANARY_ANNOTATION] == "true" and annotations[WEIGHT_ANNOTATION] == "0"
    main = _by(rendered, "Ingress", "tradewise-ingress")
    assert ingress["spec"]["rules"][0]["host"] == main["spec"]["rules"][0]["host"]
    paths = [p["path"] for p in ingress["spec"]["rules"][0]["http"]["paths"]]
    assert "/api/health/ready" not in paths and "/api/stock-analysis" in paths


# -- verification ----------------------------------------------------------------------------------
def test_where_the_verification_runs() -> None:
    settings, slo = VerifySettings(), Slo(p95_ms=400, error_rate=0.02)
    given = verify_plan(settings, slo, namespace=NS, verify_url="http://127.0.0.1:9/")
    assert (given.mode, given.url, given.fallback_url) == (URL, "http://127.0.0.1:9", None)
    assert given.spec is not None and given.spec.host == "http://127.0.0.1:9"
    assert given.slo == {"p95_ms": 400, "error_rate": 0.02}
    host = verify_plan(settings, slo, namespace=NS, preview_host="preview.x.io")
    assert (host.mode, host.url) == (URL, "https://preview.x.io")
    assert host.fallback_url == f"http://tradewise-api-preview.{NS}.svc"
    inside = verify_plan(settings, slo, namespace=NS)
    assert (inside.mode, inside.url) == (CLUSTER, f"http://tradewise-api-preview.{NS}.svc")
    skipped = verify_plan(settings, slo, namespace=NS, skip_reason="--no-verify")
    assert skipped.mode == SKIP and skipped.spec is None and skipped.skipped
    own = verify_plan(VerifySettings(p95_ms=100), slo, namespace=NS)
    assert own.slo["p95_ms"] == 100 and own.slo["error_rate"] == 0.02
    with pytest.raises(BadInputError):
        verify_plan(settings, slo, namespace=NS, verify_url="ftp://x")


def test_smoke_answers_are_judged_by_status_and_shape() -> None:
    health, _ready, analysis = smoke_checks("MSFT")
    assert analysis.path == "/api/stock-analysis?symbol=MSFT"
    assert check_answer(health, 200, b'{"status":"ok"}') is None
    assert "answered 503" in str(check_answer(health, 503, b"{}"))
    assert "did not answer JSON" in str(check_answer(health, 200, b"<html>"))
    good = (
        b'{"symbol":"MSFT","price":{"close":1.0},"indicators":{},'
        b'"recommendation":{"action":"hold"}}'
    )
    assert check_answer(analysis, 200, good) is None
    assert "without price.close, recommendation.action" in str(
        check_answer(analysis, 200, b'{"symbol":"MSFT","indicators":{"x":1}}')
    )
    assert check_answer(SmokeCheck("x", "/x", 204), 204, b"") is None


def test_history_shows_the_verification_in_short() -> None:
    record = {
        "passed": False, "skipped": False, "p95_ms": 812.4, "error_rate": 0.0, "rps": 12.5,
        "slo": {"p95_ms": 500, "error_rate": 0.01}, "url": "http://x", "job": None,
        "load": {"total": {}}, "smoke": [], "problem": "SLOs missed", "reason": "",
    }  # fmt: skip
    assert rel.verification_cell(record) == "FAIL p95 812ms 0.00%"
    assert rel.verification_cell({**record, "passed": True}) == "pass p95 812ms 0.00%"
    assert rel.verification_cell({"skipped": True}) == "skipped"
    assert rel.verification_cell(None) == "-"
    assert rel.verification_cell({"kind": "load-test", "total": {}}) == "load"
    short = rel.verification_summary(record)
    assert short is not None and "load" not in short and short["problem"] == "SLOs missed"
    release = rel.Release(3, "prod", NS, "v3", "t", "u", "c", rel.FAILED, verification=record)
    entry = rel.history_entry(release)
    assert entry["verification"]["p95_ms"] == 812.4 and entry["status"] == "failed"
    assert rel.history_rows([release])[0][5] == "FAIL p95 812ms 0.00%"


# -- the steps -----------------------------------------------------------------------------------
def _plan(rendered: list[Any], live_slot: str | None) -> DeployPlan:
    objects = slotted(rendered, "green")
    previous = slotted(rendered, live_slot) if live_slot else rendered
    plan = build_plan("staging", NS, "v2", objects, lambda _a, _k: True, previous)
    plan = dataclasses.replace(plan, strategy="blue-green", slot="green", live_slot=live_slot)
    old = rel.Release(4, "staging", NS, "v1", "t", "u", "c", rel.DEPLOYED)
    return with_steps(plan, 5, releases=[old])


def _ops(plan: DeployPlan) -> list[str]:
    return [s.op for s in plan.steps]


def test_a_verified_blue_green_plan_previews_verifies_switches_and_keeps(
    rendered: list[Any],
) -> None:
    plan = _plan(rendered, "blue")
    verify = verify_plan(VerifySettings(), Slo(), namespace=NS, verify_url="http://127.0.0.1:1")
    preview = preview_objects(slotted(rendered, "green"), "green", domain="x.io", preview_host="p")
    verified = with_verification(plan, verify=verify, preview=preview, keep_seconds=900)
    ops = _ops(verified)
    tail = ["wait", "preview", "verify", "switch", "close-preview", "keep", "finish"]
    assert ops[-len(tail) :] == tail
    keep = verified.steps[-2]
    assert keep.target == "Deployment/tradewise-api-deployment-blue" and "15m" in keep.detail
    assert keep.revision == 4  # type: ignore[union-attr]  # the revision blue serves
    assert "prune" not in ops[ops.index("switch") :]  # blue is kept, not pruned
    # keep_previous 0: the old slot is deleted once the new one serves, as before
    at_once = with_verification(plan, verify=verify, preview=preview, keep_seconds=0)
    assert _ops(at_once)[-3:] == ["close-preview", "prune", "finish"]
    # --no-verify: no preview, no verify step
    skip = verify_plan(VerifySettings(), Slo(), namespace=NS, skip_reason="--no-verify")
    bare = _ops(with_verification(plan, verify=skip, preview=[], keep_seconds=900))
    assert (
        "preview" not in bare and "verify" not in bare and bare[-3:] == ["switch", "keep", "finish"]
    )


def test_idle_slots_are_retired_right_after_the_record(rendered: list[Any]) -> None:
    plan = _plan(rendered, "blue")
    kept = KeptSlot("green", "2026-01-01T00:00:00Z", 3)
    ops = _ops(with_retired(plan, [kept]))
    assert ops[ops.index("record") + 1] == "retire"
    retire = with_retired(plan, [kept]).steps[ops.index("record") + 1]
    assert "revision 3" in retire.detail and "2026-01-01T00:00:00Z" in retire.detail
    # a slot the plan prunes anyway is left to its prune
    pruned = dataclasses.replace(
        plan, steps=(*plan.steps, PruneObject(rel.ObjectRef("apps/v1", "Deployment",
                                                             "tradewise-api-deployment-green")))
    )  # fmt: skip
    assert "retire" not in _ops(with_retired(pruned, [kept]))


def test_an_instant_rollback_records_switches_keeps_and_finishes(rendered: list[Any]) -> None:
    plan = DeployPlan("staging", NS, "v1", (), tuple(rendered), strategy="blue-green",
                      slot="blue", live_slot="green", revision=7)  # fmt: skip
    switch = [o for o in slotted(rendered, "blue") if o["kind"] in ("Service",)]
    steps = instant_steps(
        plan, switch_objects=switch, leaving_revision=6, keep_seconds=60,
        supersede=[(6, rel.ROLLED_BACK)],
    ).steps  # fmt: skip
    assert [s.op for s in steps] == ["record", "switch", "keep", "finish"]
    assert steps[1].reclaim and "no longer a kept previous slot" in steps[1].detail  # type: ignore[union-attr]
    assert steps[2].target == "Deployment/tradewise-api-deployment-green"
    assert isinstance(steps[3], FinishRelease) and steps[3].supersede == ((6, "rolled-back"),)


def test_a_canary_plan_holds_each_weight_then_switches(rendered: list[Any]) -> None:
    plan = _plan(rendered, "blue")
    analysis = CanaryAnalysis("http://p:9090", "v2", "v1", {}, {}, 500, 0.01)
    canary = CanaryPlan((10, 50, 100), 30, analysis=analysis)
    objects = canary_objects(slotted(rendered, "green"), "green", "x.io")
    out = with_canary(plan, canary=canary, objects=objects, preview=[], keep_seconds=900)
    ops = _ops(out)
    tail = ["wait", "canary-open", "canary", "canary", "canary", "switch", "canary-close", "keep",
            "finish"]  # fmt: skip
    assert ops[-len(tail) :] == tail
    steps = [s for s in out.steps if s.op == "canary"]
    assert [s.detail.split(":")[0] for s in steps] == ["step 1/3", "step 2/3", "step 3/3"]
    assert "weight 10% for 30s, then Prometheus at http://p:9090" in steps[0].detail
    assert out.to_dict()["canary"]["weights"] == [10, 50, 100]


# -- the canary's verdict --------------------------------------------------------------------------
ANALYSIS = CanaryAnalysis("http://p", "v2", "v1", {}, {}, p95_ms=500, error_rate=0.01)


@pytest.mark.parametrize(
    ("canary", "stable", "breached"),
    [
        (Numbers(0.0, 40, 10), Numbers(0.0, 38, 30), []),
        (Numbers(0.0, 55, 10), Numbers(0.0, 40, 30), []),  # 37% worse but within 20 ms
        (Numbers(0.05, 40, 10), Numbers(0.0, 40, 30), ["errors 5.00% >= SLO 1%", "points"]),
        (Numbers(0.0, 600, 10), Numbers(0.0, 40, 30), ["p95 600 ms >= SLO 500 ms", "by more"]),
        (Numbers(0.0, 200, 10), Numbers(0.0, 100, 30), ["by more than 25%"]),
        (Numbers(None, None, None), Numbers(0.0, 40, 30), ["no request of v2"]),
        (Numbers(0.009, 40, 10), Numbers(0.0, 40, 30), []),
    ],
)
def test_judge(canary: Numbers, stable: Numbers, breached: list[str]) -> None:
    found = judge(canary, stable, ANALYSIS)
    assert len(found) == len(breached), found
    for want, got in zip(breached, found, strict=True):
        assert want in got


def test_queries_are_filled_per_version_and_the_record_keeps_every_step() -> None:
    settings = load_config(ROOT / "tradewise.yaml").environment("staging").release.canary
    queries = queries_for(settings, "v2", NS)
    assert 'version="v2"' in queries["error_rate"] and f'namespace="{NS}"' in queries["p95_ms"]
    assert "[1m]" in queries["rps"] and "$" not in queries["rps"]
    steps = [
        StepVerdict(1, 10, Numbers(0.0, 40, 5), Numbers(0.0, 40, 50)),
        StepVerdict(2, 50, Numbers(0.2, 40, 5), Numbers(0.0, 40, 50), ["errors 20.00% >= SLO 1%"]),
    ]
    record = canary_record(steps, 3, {"p95_ms": 500, "error_rate": 0.01}, "http://p")
    assert record["passed"] is False and record["step"]["weight"] == 50
    assert record["error_rate"] == 0.2 and len(record["steps"]) == 2
    assert canary_record(steps[:1], 1, {}, None)["passed"] is True
    assert canary_record(steps[:1], 3, {}, None)["passed"] is False  # not every step ran


# -- kept slots ----------------------------------------------------------------------------------
def test_a_kept_slot_knows_its_window() -> None:
    until = iso_time(1_000_000)
    assert parse_time(until) == 1_000_000 and parse_time("soon") is None
    dep = {"metadata": {"annotations": {PREVIOUS_UNTIL: until, PREVIOUS_REVISION: "4"}},
           "status": {"readyReplicas": 3}}  # fmt: skip
    kept = kept_slot("blue", dep)
    assert (kept.revision, kept.ready) == (4, 3)
    assert not kept.expired(999_999) and kept.expired(1_000_000)
    assert kept.left(999_990) == 10
    assert kept_slot("green", {"metadata": {}}).expired(0)  # no window: an idle slot


# -- the release config ---------------------------------------------------------------------------
def _config(release: Any) -> Any:
    raw = yaml.safe_load((ROOT / "tradewise.yaml").read_text(encoding="utf-8"))
    raw["defaults"]["release"] = release
    return parse_config(raw, source=Path("t.yaml"))


def test_release_settings_are_read_and_checked() -> None:
    env = _config({"keep_previous": "5m", "verify": {"users": 3, "p95_ms": 250}}).environment(
        "prod"
    )
    assert env.release.keep_previous_seconds == 300 and env.release.verify.users == 3
    assert env.release.verify.p95_ms == 250 and env.release.verify.error_rate is None
    assert _config({"keep_previous": 0}).environment("prod").release.keep_previous_seconds == 0
    for bad, says in (
        ({"canary": {"steps": [10, 50]}}, "must end at 100"),
        ({"canary": {"steps": [50, 10, 100]}}, "must go up"),
        ({"canary": {"steps": [0, 100]}}, "whole number >= 1"),
        ({"canary": {"hold": "0s"}}, "canary.hold"),
        ({"canary": {"window": "1 minute"}}, "Prometheus range"),
        ({"canary": {"queries": {"rps": "sum(x)"}}}, "$version"),
        ({"verify": {"endpoints": ["api/health"]}}, "starting with '/'"),
        ({"verify": {"endpoints": []}}, "at least one path"),
        ({"preview_host": "Pre view"}, "DNS label"),
        ({"surprise": 1}, "unknown key"),
    ):
        with pytest.raises(ConfigError, match=None) as err:
            _config(bad)
        assert says in err.value.message, (bad, err.value.message)


def test_monitoring_prometheus_url_is_an_http_url() -> None:
    raw = yaml.safe_load((ROOT / "tradewise.yaml").read_text(encoding="utf-8"))
    raw["environments"]["prod"]["monitoring"] = {"prometheus_url": "http://prom:9090/"}
    config = parse_config(raw, source=Path("t.yaml"))
    assert config.environment("prod").prometheus_url == "http://prom:9090"
    assert config.environment("staging").prometheus_url is None
    raw["environments"]["prod"]["monitoring"] = {"prometheus_url": "prom:9090"}
    with pytest.raises(ConfigError, match="prometheus_url"):
        parse_config(raw, source=Path("t.yaml"))
