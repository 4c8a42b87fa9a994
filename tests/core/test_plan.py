"""Deploy plans and diffs as data."""

from __future__ import annotations

from typing import Any

from tradewise_ops.core.plan import build_plan, changed_fields, object_diff
from tradewise_ops.core.release import ObjectRef


def _obj(kind: str, name: str, api: str = "v1", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": api,
        "kind": kind,
        "metadata": {"name": name, "namespace": "ns"},
        **({"spec": spec} if spec else {}),
    }


def served(api_version: str, kind: str) -> bool:
    return not api_version.startswith("monitoring.coreos.com")


def test_plan_actions_without_live_state() -> None:
    rendered = [
        _obj("ConfigMap", "cfg"),
        _obj("ServiceMonitor", "sm", "monitoring.coreos.com/v1"),
    ]
    plan = build_plan("staging", "ns", "v1", rendered, served, previous=[_obj("Service", "old")])
    assert [(i.action, str(i.ref)) for i in plan.items] == [
        ("apply", "ConfigMap/cfg"),
        ("skip", "ServiceMonitor/sm"),
        ("prune", "Service/old"),
    ]
    assert [o["kind"] for o in plan.to_apply] == ["ConfigMap"]
    assert plan.to_prune == [ObjectRef("v1", "Service", "old", "ns")]
    assert plan.changes and plan.counts() == {"apply": 1, "skip": 1, "prune": 1}


def test_plan_with_live_state() -> None:
    same = _obj("ConfigMap", "same", replicas=1)
    changed = _obj("Deployment", "api", "apps/v1", replicas=1)
    new = _obj("Service", "svc")
    live_same = {**same, "metadata": {**same["metadata"], "resourceVersion": "5"}}
    live = {
        ObjectRef.of(same): (live_same, live_same),
        ObjectRef.of(changed): (changed, _obj("Deployment", "api", "apps/v1", replicas=2)),
        ObjectRef.of(new): (None, new),
    }
    plan = build_plan("staging", "ns", None, [same, changed, new], served, live=live)
    actions = {str(i.ref): (i.action, i.reason) for i in plan.items}
    assert actions == {
        "ConfigMap/same": ("unchanged", ""),
        "Deployment/api": ("update", "spec.replicas"),
        "Service/svc": ("create", ""),
    }
    assert not build_plan("s", "ns", None, [same], served, live=live).changes


def test_changed_fields_ignore_server_bookkeeping() -> None:
    a = {"metadata": {"resourceVersion": "1", "generation": 1}, "spec": {"x": 1}, "status": {}}
    b = {
        "metadata": {"resourceVersion": "2", "generation": 2},
        "spec": {"x": 2},
        "status": {"r": 1},
    }
    assert changed_fields(a, b) == ["spec.x"]


def test_object_diff_is_kubectl_style() -> None:
    ref = ObjectRef("apps/v1", "Deployment", "api", "ns")
    live = {"metadata": {"name": "api", "managedFields": [{"m": 1}]}, "spec": {"replicas": 1}}
    after = {"metadata": {"name": "api"}, "spec": {"replicas": 2}}
    text = object_diff(ref, live, after)
    assert text.startswith(
        "diff -u -N /tmp/LIVE/apps.v1.Deployment.ns.api /tmp/MERGED/apps.v1.Deployment.ns.api\n"
    )
    assert "-  replicas: 1\n+  replicas: 2\n" in text and "managedFields" not in text
    assert object_diff(ref, after, after) == ""
    assert "-kind" not in object_diff(ref, live, None) and "-spec:" in object_diff(ref, live, None)


def _hpa(lo: int, hi: int, profile: str | None = None) -> dict:
    meta: dict = {"name": "tradewise-api-hpa", "namespace": "ns"}
    if profile:
        meta["annotations"] = {"tradewise.io/traffic-profile": profile}
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": meta,
        "spec": {"minReplicas": lo, "maxReplicas": hi},
    }


def test_hold_scaling_keeps_a_profiles_bounds_unless_reset() -> None:
    from tradewise_ops.core.plan import hold_scaling

    rendered = [_hpa(3, 20)]
    live = {("HorizontalPodAutoscaler", "tradewise-api-hpa"): _hpa(10, 20, "high")}
    held, holds = hold_scaling(rendered, live)
    assert held[0]["spec"] == {"minReplicas": 10, "maxReplicas": 20}
    assert rendered[0]["spec"]["minReplicas"] == 3  # the rendered object is not changed
    assert [h.sentence() for h in holds] == ["keeps traffic profile high: min 10, max 20"]
    held, holds = hold_scaling(rendered, live, reset=True)
    assert held[0]["spec"]["minReplicas"] == 3
    assert holds[0].sentence() == "resets traffic profile high: min 10 -> 3, max 20"
    # no annotation (an HPA someone edited by hand, or none live): the config wins, nothing said
    for other in ({("HorizontalPodAutoscaler", "tradewise-api-hpa"): _hpa(7, 9)}, {}):
        held, holds = hold_scaling(rendered, other)
        assert held[0]["spec"]["minReplicas"] == 3 and holds == []


# -- release steps ---------------------------------------------------------------------------------
def _release(revision: int, status: str) -> Any:
    from tradewise_ops.core.release import Release

    return Release(revision, "staging", "ns", "v0", "t", "me", "c", status, ())


def _steps(plan: Any) -> list[tuple[str, str]]:
    return [(s.op, s.target) for s in plan.steps]


def test_release_steps_rolling_in_order() -> None:
    from tradewise_ops.core.plan import with_steps

    rendered = [
        _obj("ConfigMap", "cfg"),
        _obj("Deployment", "tradewise-api-deployment", "apps/v1"),
        _obj("StatefulSet", "db", "apps/v1"),
    ]
    previous = [_obj("Service", "old"), _obj("Deployment", "tradewise-api-deployment-blue")]
    plan = build_plan("staging", "ns", "v1", rendered, served, previous=previous)
    releases = [_release(1, "superseded"), _release(2, "deployed"), _release(3, "failed")]
    planned = with_steps(plan, 4, releases=releases)
    assert (planned.revision, planned.wait) == (4, True)
    assert _steps(planned) == [
        ("ensure-namespace", "Namespace/ns"),  # no Namespace rendered
        ("record", "revision 4"),
        ("apply", "ConfigMap/cfg"),
        ("apply", "Deployment/tradewise-api-deployment"),
        ("apply", "StatefulSet/db"),
        ("prune", "Service/old"),
        ("wait", "2 workloads"),
        ("prune", "Deployment/tradewise-api-deployment-blue"),  # an API Deployment: once ready
        ("finish", "revision 4"),
    ]
    finish = planned.steps[-1]
    assert finish.detail == "deployed; revision 2 superseded"
    assert planned.step_rows()[0] == [1, "ensure-namespace", "Namespace/ns", "created when missing"]
    assert plan.to_dict() == planned.to_dict()  # the steps add nothing to the JSON document
    # without waiting: no wait step, the late prune straight after the others
    assert [op for op, _t in _steps(with_steps(plan, 4, wait=False))][-3:] == [
        "prune",
        "prune",
        "finish",
    ]


def test_release_steps_blue_green_switches_after_the_wait() -> None:
    from dataclasses import replace

    from tradewise_ops.core.plan import release_steps

    rendered = [
        _obj("Namespace", "ns"),
        _obj("Service", "tradewise-api-service"),
        _obj("Deployment", "tradewise-api-deployment-green", "apps/v1"),
        _obj("HorizontalPodAutoscaler", "tradewise-api-hpa", "autoscaling/v2"),
    ]
    plan = build_plan("staging", "ns", "v2", rendered, served)
    plan = replace(plan, strategy="blue-green", slot="green", live_slot="blue")
    steps = release_steps(plan, 7, rolling_back_from=_release(6, "deployed"),
                          releases=[_release(6, "deployed")])  # fmt: skip
    assert [(s.op, s.target) for s in steps] == [
        ("apply", "Namespace/ns"),
        ("record", "revision 7"),
        ("apply", "Deployment/tradewise-api-deployment-green"),
        ("wait", "1 workloads"),
        ("switch", "Service/tradewise-api-service"),
        ("finish", "revision 7"),
    ]
    switch = steps[4]
    assert [o["kind"] for o in switch.objects] == ["Service", "HorizontalPodAutoscaler"]
    assert switch.phase == "switch" and steps[3].phase == "wait"
    assert steps[-1].supersede == ((6, "rolled-back"),)  # what a rollback replaces
