"""Scaling plans as data: the HPA-floor rule, profiles, emergency-down, and the status report."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from tradewise_ops.core import scaling
from tradewise_ops.core.config import Config, Profile, load_config
from tradewise_ops.core.scaling import (
    APPLIED_AT_ANNOTATION,
    EMERGENCY_DOWN,
    MANUAL,
    PROFILE_ANNOTATION,
    HpaBounds,
    LiveComponent,
)
from tradewise_ops.errors import BadInputError, NotFoundError

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 27, 14, 30, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def config() -> Config:
    return load_config(ROOT / "tradewise.yaml", environ={})


def live(
    api: int = 3,
    worker: int = 2,
    precompute: int | None = 1,
    api_hpa: HpaBounds | None = HpaBounds(3, 20),  # noqa: B008 - frozen
    worker_hpa: HpaBounds | None = HpaBounds(2, 10),  # noqa: B008
    precompute_profile: str | None = None,
) -> dict[str, LiveComponent]:
    return {
        "api": LiveComponent("api", api, api_hpa),
        "worker": LiveComponent("worker", worker, worker_hpa),
        "precompute": LiveComponent("precompute", precompute, None, precompute_profile),
    }


# -- parse_replicas ------------------------------------------------------------------------------
@pytest.mark.parametrize("text,expected", [("0", 0), ("8", 8), (" 50 ", 50), (7, 7)])
def test_parse_replicas_accepts_whole_numbers_up_to_the_cap(text: str, expected: int) -> None:
    assert scaling.parse_replicas(text, cap=50) == expected


@pytest.mark.parametrize(
    "text,fragment",
    [
        ("-1", "must be 0 or more, not -1"),
        ("2.5", "whole number like 5, not '2.5'"),
        ("ten", "whole number like 5, not 'ten'"),
        ("", "whole number"),
        ("+3", "whole number"),
        ("51", "above the cap of 50"),
    ],
)
def test_parse_replicas_rejects_with_one_sentence(text: str, fragment: str) -> None:
    with pytest.raises(BadInputError) as err:
        scaling.parse_replicas(text, cap=50, what="api replicas")
    assert fragment in err.value.message
    assert err.value.exit_code == 2
    assert "\n" not in err.value.message


def test_component_for_maps_command_words() -> None:
    assert scaling.component_for("api") == "api"
    assert scaling.component_for("workers") == "worker"
    with pytest.raises(BadInputError, match="unknown scaling target 'db'"):
        scaling.component_for("db")


# -- live state from dicts -----------------------------------------------------------------------
def test_live_component_reads_replicas_hpa_bounds_and_profile() -> None:
    dep = {
        "metadata": {
            "name": "tradewise-api-deployment",
            "annotations": {PROFILE_ANNOTATION: "high"},
        },
        "spec": {"replicas": 10},
    }
    hpa = {"spec": {"minReplicas": 10, "maxReplicas": 20}}
    got = scaling.live_component("api", dep, hpa)
    assert got == LiveComponent("api", 10, HpaBounds(10, 20), "high")


def test_live_component_without_spec_replicas_defaults_to_one_and_missing_is_none() -> None:
    assert scaling.live_component("api", {"spec": {}}, None).replicas == 1
    missing = scaling.live_component("api", None, {"spec": {"maxReplicas": 5}})
    assert not missing.exists
    assert missing.hpa == HpaBounds(1, 5)


# -- manual scaling: the HPA-floor rule ----------------------------------------------------------
def test_manual_scale_raises_the_hpa_floor_so_the_hpa_keeps_it(config: Config) -> None:
    env = config.environment("prod")
    plan = scaling.plan_manual(env, "api", 8, live(), NOW)
    step = plan.step("api")
    assert step.target == "tradewise-api-deployment"
    assert (step.replicas_before, step.replicas) == (3, 8)
    assert step.hpa == "tradewise-api-hpa"
    assert step.hpa_before == HpaBounds(3, 20)
    assert step.hpa_after == HpaBounds(8, 20)
    assert plan.warnings == ()
    assert any("floor set to 8" in n for n in plan.notes)
    assert plan.profile == MANUAL
    assert plan.annotations() == {
        PROFILE_ANNOTATION: "manual",
        APPLIED_AT_ANNOTATION: "2026-11-27T14:30:00Z",
    }
    # an HPA controller clamping to its bounds leaves the user's 8 in place ...
    assert scaling.settled_replicas(8, step.hpa_after) == 8
    # ... where the old bounds would have allowed it to drift (no load: towards the floor)
    assert scaling.settled_replicas(2, step.hpa_after) == 8


def test_manual_scale_lowers_the_floor_too(config: Config) -> None:
    env = config.environment("prod")
    plan = scaling.plan_manual(env, "api", 2, live(api=10, api_hpa=HpaBounds(10, 20)), NOW)
    assert plan.step("api").hpa_after == HpaBounds(2, 20)
    assert scaling.settled_replicas(2, plan.step("api").hpa_after) == 2


def test_manual_scale_above_the_ceiling_raises_it_with_a_warning(config: Config) -> None:
    env = config.environment("prod")
    plan = scaling.plan_manual(env, "worker", 14, live(), NOW)
    step = plan.step("worker")
    assert step.target == "tradewise-worker-deployment"
    assert step.hpa_after == HpaBounds(14, 14)
    assert len(plan.warnings) == 1
    assert "above tradewise-worker-hpa's ceiling of 10" in plan.warnings[0]
    assert plan.action == "scale workers 14"


def test_manual_scale_to_zero_leaves_the_hpa_alone(config: Config) -> None:
    env = config.environment("prod")
    plan = scaling.plan_manual(env, "worker", 0, live(), NOW)
    step = plan.step("worker")
    assert step.replicas == 0
    assert step.hpa_after == HpaBounds(2, 10)
    assert not step.changes_hpa
    assert any("scaled to 0" in n for n in plan.notes)
    # the controller leaves a target at zero alone
    assert scaling.settled_replicas(0, step.hpa_after) == 0


def test_manual_scale_without_hpa_only_changes_replicas(config: Config) -> None:
    env = config.environment("prod")
    plan = scaling.plan_manual(env, "api", 4, live(api_hpa=None), NOW)
    step = plan.step("api")
    assert step.hpa is None and step.hpa_after is None
    assert step.hpa_patch(plan.annotations()) is None
    assert plan.notes == ()


def test_manual_scale_of_a_missing_deployment_is_not_found(config: Config) -> None:
    env = config.environment("staging")
    state = live()
    state["api"] = LiveComponent("api", None)
    with pytest.raises(NotFoundError, match="tradewise-api-deployment does not exist in namespace"):
        scaling.plan_manual(env, "api", 4, state, NOW)


def test_hpa_patch_carries_bounds_and_annotations(config: Config) -> None:
    plan = scaling.plan_manual(config.environment("prod"), "api", 8, live(), NOW)
    assert plan.step("api").hpa_patch(plan.annotations()) == {
        "metadata": {"annotations": plan.annotations()},
        "spec": {"minReplicas": 8, "maxReplicas": 20},
    }


# -- traffic profiles ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name,api,workers", [("low", 2, 1), ("medium", 5, 2), ("high", 10, 4), ("peak", 15, 6)]
)
def test_profiles_from_the_guide(config: Config, name: str, api: int, workers: int) -> None:
    env = config.environment("prod")
    plan = scaling.plan_profile(env, config.profile(name), live(), NOW)
    assert plan.profile == name
    assert plan.step("api").replicas == api
    assert plan.step("worker").replicas == workers
    assert plan.step("api").hpa_after == HpaBounds(api, 20)
    assert plan.step("worker").hpa_after == HpaBounds(workers, 10)
    assert [s.component for s in plan.steps] == ["api", "worker"]
    assert plan.warnings == ()


def test_profile_restores_the_configured_ceiling(config: Config) -> None:
    env = config.environment("prod")
    state = live(api=3, api_hpa=HpaBounds(30, 30), worker_hpa=HpaBounds(2, 2))
    plan = scaling.plan_profile(env, config.profile("medium"), state, NOW)
    assert plan.step("api").hpa_after == HpaBounds(5, 20)
    assert plan.step("worker").hpa_after == HpaBounds(2, 10)


def test_profile_above_the_configured_ceiling_raises_it_with_a_warning(config: Config) -> None:
    env = config.environment("staging")  # api max 6, worker max 4
    plan = scaling.plan_profile(env, config.profile("high"), live(), NOW)
    assert plan.step("api").hpa_after == HpaBounds(10, 10)
    assert plan.step("worker").hpa_after == HpaBounds(4, 4)
    assert len(plan.warnings) == 1 and "configured ceiling of 6" in plan.warnings[0]


def test_profile_above_the_cap_is_bad_input(config: Config) -> None:
    env = config.environment("prod")
    huge = Profile(name="huge", api=80, workers=1)
    with pytest.raises(BadInputError, match="above the cap of 50"):
        scaling.plan_profile(env, huge, live(), NOW)


def test_unknown_profile_is_one_sentence_naming_the_choices(config: Config) -> None:
    with pytest.raises(BadInputError) as err:
        config.profile("extreme")
    assert err.value.message == (
        "unknown traffic profile 'extreme': use one of low, medium, high, peak"
    )


# -- emergency-down and its undo ---------------------------------------------------------------
def test_emergency_down_pins_floors_and_stops_precompute(config: Config) -> None:
    env = config.environment("prod")
    plan = scaling.plan_emergency_down(env, live(api=15, worker=6), NOW)
    assert plan.profile == EMERGENCY_DOWN
    assert plan.step("api").replicas == 3
    assert plan.step("api").hpa_after == HpaBounds(3, 3)
    assert plan.step("worker").replicas == 2
    assert plan.step("worker").hpa_after == HpaBounds(2, 2)
    pre = plan.step("precompute")
    assert (pre.target, pre.replicas_before, pre.replicas, pre.hpa) == (
        "tradewise-precompute-deployment",
        1,
        0,
        None,
    )
    # the pinned HPA cannot scale back up into the overload
    assert scaling.settled_replicas(12, plan.step("api").hpa_after) == 3
    assert plan.maintenance is False
    assert any("scale traffic" in n for n in plan.notes)


def test_emergency_down_overrides_and_maintenance(config: Config) -> None:
    env = config.environment("prod")
    plan = scaling.plan_emergency_down(
        env, live(), NOW, overrides={"api": 1, "worker": 0}, maintenance=True
    )
    assert plan.step("api").hpa_after == HpaBounds(1, 1)
    assert plan.step("worker").replicas == 0
    assert not plan.step("worker").changes_hpa
    assert plan.maintenance is True
    assert plan.to_dict()["maintenance"] is True
    assert any("tradewise maintenance off prod" in n for n in plan.notes)
    with pytest.raises(BadInputError, match="--maintenance needs a Kubernetes environment"):
        scaling.plan_emergency_down(config.environment("local"), live(), NOW, maintenance=True)


def test_emergency_down_without_precompute(config: Config) -> None:
    plan = scaling.plan_emergency_down(config.environment("prod"), live(precompute=None), NOW)
    assert [s.component for s in plan.steps] == ["api", "worker"]
    assert any(n.startswith("precompute not touched") for n in plan.notes)


def test_a_profile_undoes_emergency_down(config: Config) -> None:
    env = config.environment("prod")
    down = scaling.plan_emergency_down(env, live(), NOW)
    after = {
        s.component: LiveComponent(s.component, s.replicas, s.hpa_after, down.profile)
        for s in down.steps
    }
    up = scaling.plan_profile(env, config.profile("medium"), after, NOW)
    assert up.step("api").hpa_after == HpaBounds(5, 20)
    assert up.step("worker").hpa_after == HpaBounds(2, 10)
    pre = up.step("precompute")
    assert (pre.replicas_before, pre.replicas) == (0, 1)
    assert any("precompute back to 1" in n for n in up.notes)


def test_a_profile_leaves_precompute_alone_when_emergency_did_not_stop_it(config: Config) -> None:
    plan = scaling.plan_profile(
        config.environment("prod"), config.profile("low"), live(precompute_profile="high"), NOW
    )
    assert [s.component for s in plan.steps] == ["api", "worker"]


def test_local_plans_use_processes_and_floor_one(config: Config) -> None:
    env = config.environment("local")
    state = {
        "api": LiveComponent("api", 2),
        "worker": LiveComponent("worker", 1),
        "precompute": LiveComponent("precompute", 1),
    }
    down = scaling.plan_emergency_down(env, state, NOW)
    assert [(s.target, s.replicas) for s in down.steps] == [
        ("api processes", 1),
        ("worker processes", 1),
        ("precompute processes", 0),
    ]
    assert all(s.hpa is None for s in down.steps)
    up = scaling.plan_manual(env, "worker", 3, state, NOW)
    assert up.step("worker").replicas == 3 and up.step("worker").hpa is None
    # workers may go to 0 locally; the API needs one process to serve
    assert scaling.plan_manual(env, "worker", 0, state, NOW).step("worker").replicas == 0
    with pytest.raises(BadInputError, match="needs at least 1 API process, not 0"):
        scaling.plan_manual(env, "api", 0, state, NOW)
    with pytest.raises(BadInputError, match="needs at least 1 API process"):
        scaling.plan_emergency_down(env, state, NOW, overrides={"api": 0})


def test_plan_as_data_and_rows(config: Config) -> None:
    plan = scaling.plan_manual(config.environment("prod"), "api", 8, live(), NOW)
    data = plan.to_dict()
    assert data["action"] == "scale api 8"
    assert data["environment"] == "prod"
    assert data["steps"][0]["hpa_after"] == {"min": 8, "max": 20}
    columns, rows = plan.rows()
    assert columns == ["COMPONENT", "TARGET", "REPLICAS", "HPA MIN", "HPA MAX"]
    assert rows == [["api", "tradewise-api-deployment", "3 -> 8", "3 -> 8", "20 (unchanged)"]]


# -- status ---------------------------------------------------------------------------------------
def _dep(name: str, component: str, replicas: int | None, ready: int, profile: str | None) -> dict:
    ann = {PROFILE_ANNOTATION: profile, APPLIED_AT_ANNOTATION: "2026-11-27T14:20:00Z"}
    return {
        "metadata": {
            "name": name,
            "labels": {"app.kubernetes.io/component": component},
            "annotations": ann if profile else {},
        },
        "spec": {} if replicas is None else {"replicas": replicas},
        "status": {"updatedReplicas": ready, "readyReplicas": ready, "availableReplicas": ready},
    }


API_HPA = {
    "metadata": {
        "name": "tradewise-api-hpa",
        "labels": {"app.kubernetes.io/component": "api"},
        "annotations": {PROFILE_ANNOTATION: "high"},
    },
    "spec": {
        "scaleTargetRef": {"kind": "Deployment", "name": "tradewise-api-deployment"},
        "minReplicas": 10,
        "maxReplicas": 20,
        "metrics": [
            {
                "type": "Resource",
                "resource": {
                    "name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": 70},
                },
            },
            {
                "type": "Resource",
                "resource": {
                    "name": "memory",
                    "target": {"type": "Utilization", "averageUtilization": 80},
                },
            },
            {
                "type": "Pods",
                "pods": {
                    "metric": {"name": "tradewise_http_p95_seconds"},
                    "target": {"type": "AverageValue", "averageValue": "500m"},
                },
            },
        ],
    },
    "status": {
        "currentReplicas": 10,
        "desiredReplicas": 10,
        "lastScaleTime": "2026-11-27T14:25:00Z",
        "currentMetrics": [
            {
                "type": "Resource",
                "resource": {"name": "cpu", "current": {"averageUtilization": 45}},
            },
            {
                "type": "Pods",
                "pods": {
                    "metric": {"name": "tradewise_http_p95_seconds"},
                    "current": {"averageValue": "320m"},
                },
            },
        ],
    },
}

WORKER_HPA = {
    "metadata": {"name": "tradewise-worker-hpa"},
    "spec": {
        "scaleTargetRef": {"kind": "Deployment", "name": "tradewise-worker-deployment"},
        "maxReplicas": 10,
        "metrics": [
            {
                "type": "External",
                "external": {
                    "metric": {"name": "tradewise_queue_depth"},
                    "target": {"type": "AverageValue", "averageValue": "5"},
                },
            }
        ],
    },
    "status": {},
}


def _event(kind: str, name: str, reason: str, when: str, message: str) -> dict:
    return {
        "involvedObject": {"kind": kind, "name": name},
        "reason": reason,
        "message": message,
        "lastTimestamp": when,
        "type": "Normal",
    }


def test_hpa_metrics_pair_current_with_target() -> None:
    assert scaling.hpa_metrics(API_HPA) == [
        {"type": "Resource", "name": "cpu", "current": "45%", "target": "70%"},
        {"type": "Resource", "name": "memory", "current": None, "target": "80%"},
        {"type": "Pods", "name": "tradewise_http_p95_seconds", "current": "320m", "target": "500m"},
    ]
    assert scaling.hpa_metrics(WORKER_HPA) == [
        {"type": "External", "name": "tradewise_queue_depth", "current": None, "target": "5"}
    ]


def test_status_report_and_tables() -> None:
    env = load_config(ROOT / "tradewise.yaml", environ={}).environment("prod")
    deps = [
        _dep("tradewise-worker-deployment", "worker", 4, 3, "high"),
        _dep("tradewise-api-deployment", "api", 10, 10, "high"),
        _dep("tradewise-precompute-deployment", "precompute", None, 1, None),
    ]
    events = [
        _event(
            "HorizontalPodAutoscaler",
            "tradewise-api-hpa",
            "SuccessfulRescale",
            "2026-11-27T14:25:00Z",
            "New size: 10; reason: cpu resource utilization",
        ),
        _event("Pod", "tradewise-api-x", "Pulled", "2026-11-27T14:26:00Z", "pulled"),
        _event(
            "Deployment",
            "tradewise-api-deployment",
            "ScalingReplicaSet",
            "2026-11-27T14:24:00Z",
            "Scaled up replica set x to 10",
        ),
        _event("Deployment", "someone-else", "ScalingReplicaSet", "2026-11-27T14:27:00Z", "x"),
    ]
    report = scaling.status_report(env, deps, [WORKER_HPA, API_HPA], events)
    assert report["environment"] == "prod" and report["namespace"] == "tradewise-ai"
    assert report["profile"] == {
        "name": "high",
        "applied_at": "2026-11-27T14:20:00Z",
        "by_component": {"worker": "high", "api": "high"},
    }
    assert [d["name"] for d in report["deployments"]] == [
        "tradewise-api-deployment",
        "tradewise-precompute-deployment",
        "tradewise-worker-deployment",
    ]
    worker = report["deployments"][2]
    assert (worker["desired"], worker["updated"], worker["ready"], worker["available"]) == (
        4,
        3,
        3,
        3,
    )
    assert report["deployments"][1]["desired"] == 1  # no spec.replicas: Kubernetes' default
    api_hpa, worker_hpa = report["hpas"]
    assert (api_hpa["min"], api_hpa["max"], api_hpa["current"], api_hpa["desired"]) == (
        10,
        20,
        10,
        10,
    )
    assert api_hpa["last_scale_time"] == "2026-11-27T14:25:00Z"
    assert (worker_hpa["min"], worker_hpa["current"], worker_hpa["last_scale_time"]) == (
        1,
        None,
        None,
    )
    assert [e["reason"] for e in report["events"]] == ["ScalingReplicaSet", "SuccessfulRescale"]

    assert scaling.status_summary(report, NOW) == [
        "environment: prod (namespace tradewise-ai)",
        "traffic profile: high",
        "applied: 2026-11-27T14:20:00Z (10m ago)",
    ]
    tables = scaling.status_tables(report, NOW)
    assert [t.title for t in tables] == ["Deployments", "Autoscalers", "Recent scaling events"]
    assert tables[0].columns == ["NAME", "DESIRED", "UP-TO-DATE", "READY", "AVAILABLE", "PROFILE"]
    assert tables[0].rows[2] == ["tradewise-worker-deployment", 4, 3, 3, 3, "high"]
    assert tables[1].rows[0] == [
        "tradewise-api-hpa",
        10,
        20,
        10,
        10,
        "cpu 45%/70%, memory <unknown>/80%, tradewise_http_p95_seconds 320m/500m",
        "5m ago",
    ]
    assert tables[1].rows[1][-1] == "never"
    assert tables[2].rows[0][:4] == [
        "6m",
        "Normal",
        "Deployment/tradewise-api-deployment",
        "ScalingReplicaSet",
    ]


def test_profile_in_effect_mixed_and_none() -> None:
    mixed = scaling.profile_in_effect(
        [
            _dep("tradewise-api-deployment", "api", 8, 8, "manual"),
            _dep("tradewise-worker-deployment", "worker", 4, 4, "high"),
        ]
    )
    assert mixed["name"] == "mixed"
    assert mixed["by_component"] == {"api": "manual", "worker": "high"}
    none = scaling.profile_in_effect([_dep("tradewise-api-deployment", "api", 3, 3, None)])
    assert none["name"] is None
    # a Deployment without the component label is recognised by its name
    unlabelled = {
        "metadata": {
            "name": "tradewise-worker-deployment",
            "annotations": {PROFILE_ANNOTATION: "low"},
        }
    }
    assert scaling.profile_in_effect([unlabelled])["by_component"] == {"worker": "low"}


def test_status_summary_shows_mixed_and_missing_profiles() -> None:
    env = load_config(ROOT / "tradewise.yaml", environ={}).environment("prod")
    report = scaling.status_report(
        env,
        [
            _dep("tradewise-api-deployment", "api", 8, 8, "manual"),
            _dep("tradewise-worker-deployment", "worker", 4, 4, "high"),
        ],
        [],
        [],
    )
    summary = scaling.status_summary(report, NOW)
    assert summary[1] == "traffic profile: mixed (api=manual, worker=high)"
    assert summary[-1] == "recent scaling events: none"
    # no HPAs, no events: no empty tables
    assert [t.title for t in scaling.status_tables(report, NOW)] == ["Deployments"]
    empty = scaling.status_report(env, [], [], [])
    assert scaling.status_summary(empty, NOW)[1].startswith("traffic profile: none recorded")


def test_scaling_events_keep_the_latest_and_accept_event_time() -> None:
    events = [
        _event("Deployment", "d", "ScalingReplicaSet", f"2026-11-27T14:{m:02d}:00Z", str(m))
        for m in range(15)
    ]
    events.append(
        {
            "regarding": {"kind": "HorizontalPodAutoscaler", "name": "h"},
            "reason": "SuccessfulRescale",
            "note": "New size: 4",
            "eventTime": "2026-11-27T14:29:30.123456Z",
        }
    )
    got = scaling.scaling_events(events, limit=3)
    assert [e["message"] for e in got] == ["13", "14", "New size: 4"]
    assert scaling.scaling_events(events, limit=0) == []


@pytest.mark.parametrize(
    "ts,expected",
    [
        ("2026-11-27T14:29:15Z", "45s"),
        ("2026-11-27T14:20:00Z", "10m"),
        ("2026-11-27T13:00:00Z", "90m"),
        ("2026-11-26T14:30:00Z", "24h"),
        ("2026-11-20T14:30:00Z", "7d"),
        (None, "-"),
        ("not a time", "-"),
        (datetime(2026, 11, 27, 14, 29, 0, tzinfo=UTC), "60s"),
    ],
)
def test_age(ts: object, expected: str) -> None:
    assert scaling.age(ts, NOW) == expected


# -- predictive scaling: the CronJobs rendered from config.schedules --------------------------
@pytest.fixture(scope="module")
def prod_objects(config: Config) -> list[dict]:
    from tradewise_ops.core.render import render_environment

    return render_environment(config, "prod", tag="v1.0")


def _of_kind(objects: list[dict], kind: str) -> list[dict]:
    return [o for o in objects if o["kind"] == kind]


def test_each_schedule_is_a_cronjob_running_scale_traffic(
    config: Config, prod_objects: list[dict]
) -> None:
    cronjobs = {c["metadata"]["name"]: c for c in _of_kind(prod_objects, "CronJob")}
    assert len(config.schedules) == 2
    # one CronJob per schedule, and the early-close twin of the step that follows the close
    assert set(cronjobs) == {f"tradewise-scale-{s.name}" for s in config.schedules} | {
        "tradewise-scale-after-close-early-close"
    }
    for s in config.schedules:
        cj = cronjobs[f"tradewise-scale-{s.name}"]
        assert cj["metadata"]["namespace"] == "tradewise-ai"
        assert cj["spec"]["schedule"] == s.cron
        assert cj["spec"]["timeZone"] == s.timezone
        assert cj["spec"]["concurrencyPolicy"] == "Forbid"
        pod = cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] == "tradewise-scaler"
        assert pod["restartPolicy"] in ("Never", "OnFailure")
        (container,) = pod["containers"]
        command = list(container.get("command", [])) + list(container.get("args", []))
        # the in-cluster run must not stop at the prod confirmation prompt: --yes
        assert command == [
            "tradewise",
            "scale",
            "traffic",
            s.profile,
            "--schedule",
            s.name,
            "--env",
            "prod",
            "--yes",
            "--wait-for-lock=8m",
        ]
        env_vars = {e["name"]: e.get("value") for e in container.get("env", [])}
        assert env_vars.get("TRADEWISE_NAMESPACE") == "tradewise-ai"
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
    by_schedule = {s.name: s for s in config.schedules}
    assert by_schedule["market-open"].profile == "high"
    assert by_schedule["market-open"].cron == "15 9 * * 1-5"
    assert by_schedule["market-open"].timezone == "America/New_York"
    assert by_schedule["after-close"].profile == "low"


def test_the_scaler_role_is_least_privilege(prod_objects: list[dict]) -> None:
    assert _of_kind(prod_objects, "ClusterRole") == []
    assert _of_kind(prod_objects, "ClusterRoleBinding") == []
    (role,) = [
        r for r in _of_kind(prod_objects, "Role") if r["metadata"]["name"] == "tradewise-scaler"
    ]
    granted: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        assert "resourceNames" not in rule or rule["resourceNames"]
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                granted.setdefault((group, resource), set()).update(rule["verbs"])
    needed = scaling.SCALER_PERMISSIONS
    # everything `scale traffic` needs is granted ...
    for key, verbs in needed.items():
        assert verbs <= granted.get(key, set()), key
    # ... and nothing beyond those resources, no wildcard, no verb that lists, writes whole
    # objects, creates or deletes
    assert set(granted) <= set(needed)
    for key, verbs in granted.items():
        assert "*" not in verbs and "*" not in key[1], key
        if key == ("coordination.k8s.io", "leases"):
            continue  # the release lock, checked below
        assert verbs <= {"get", "patch"}, (key, verbs)
    # the lock: only create is unnamed (RBAC cannot name what does not exist yet); reading,
    # taking over and releasing are limited to this environment's Lease
    lease_rules = [r for r in role["rules"] if r["resources"] == ["leases"]]
    assert {tuple(r["verbs"]) for r in lease_rules if "resourceNames" not in r} == {("create",)}
    named = [r for r in lease_rules if "resourceNames" in r]
    assert [r["resourceNames"] for r in named] == [["tradewise-lock-prod"]]
    assert set(named[0]["verbs"]) == {"get", "update", "delete"}
    (binding,) = [
        b
        for b in _of_kind(prod_objects, "RoleBinding")
        if b["metadata"]["name"] == "tradewise-scaler"
    ]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "tradewise-scaler",
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "tradewise-scaler", "namespace": "tradewise-ai"}
    ]
    accounts = {a["metadata"]["name"]: a for a in _of_kind(prod_objects, "ServiceAccount")}
    assert "tradewise-scaler" in accounts
    # only the scaler gets a token; the workloads' own account does not
    assert accounts["tradewise"].get("automountServiceAccountToken") is False


def test_the_scaling_objects_validate(config: Config, prod_objects: list[dict]) -> None:
    from tradewise_ops.core.validate import validate

    ours = {"CronJob", "Role", "RoleBinding", "ServiceAccount", "HorizontalPodAutoscaler"}
    findings = [f for f in validate(prod_objects, config.kubernetes_version) if f.kind in ours]
    assert findings == []
    # the oldest supported version has CronJob.spec.timeZone too (GA in 1.27)
    assert [f for f in validate(prod_objects, "1.27") if f.kind in ours] == []
    assert {"CronJob", "Role", "RoleBinding"} <= {o["kind"] for o in prod_objects}


def test_no_schedules_no_cronjobs_no_scaler(config: Config) -> None:
    import dataclasses

    from tradewise_ops.core.render import render_environment

    objects = render_environment(dataclasses.replace(config, schedules=()), "prod", tag="v1.0")
    assert _of_kind(objects, "CronJob") == []
    assert [
        r for r in _of_kind(objects, "Role") if r["metadata"]["name"] == "tradewise-scaler"
    ] == []


def test_local_status_report(config: Config) -> None:
    env = config.environment("local")
    report = scaling.local_status_report(
        env, {"api": 2, "worker": 1, "precompute": 1}, "low", "2026-11-27T14:00:00Z"
    )
    assert report["profile"] == {
        "name": "low",
        "applied_at": "2026-11-27T14:00:00Z",
        "by_component": {"api": "low", "worker": "low"},
    }
    assert [(d["name"], d["desired"]) for d in report["deployments"]] == [
        ("api processes", 2),
        ("worker processes", 1),
        ("precompute processes", 1),
    ]
    assert report["hpas"] == [] and report["events"] == []
    assert scaling.status_summary(report, NOW)[:3] == [
        "environment: local",
        "traffic profile: low",
        "applied: 2026-11-27T14:00:00Z (30m ago)",
    ]
    none = scaling.local_status_report(env, {"api": 1}, None, "2026-11-27T14:00:00Z")
    assert none["profile"]["applied_at"] is None


def test_status_warns_when_an_hpa_floor_drifted_from_its_profile(config: Config) -> None:
    env = config.environment("prod")
    # API_HPA records "high" (floor 10) and has a floor of 10; a reset one has 3
    reset = {
        **API_HPA,
        "spec": {**API_HPA["spec"], "minReplicas": 3},
    }
    ok = scaling.status_report(env, [], [API_HPA], [], profiles=config.profiles)
    assert ok["warnings"] == []
    drifted = scaling.status_report(env, [], [reset], [], profiles=config.profiles)
    assert drifted["warnings"] == [
        "tradewise-api-hpa has a floor of 3, not the 10 of profile high recorded on it "
        "(reset since?): re-apply it with `tradewise scale traffic high`"
    ]
    assert scaling.status_summary(drifted, NOW)[-1].startswith("warning: tradewise-api-hpa")
    # manual and emergency-down records are not profiles: no check
    manual = {
        **reset,
        "metadata": {**reset["metadata"], "annotations": {PROFILE_ANNOTATION: MANUAL}},
    }
    assert scaling.status_report(env, [], [manual], [], profiles=config.profiles)["warnings"] == []
