"""Rollout evaluation as data: done means every replica updated, ready and available."""

from __future__ import annotations

from typing import Any

from tradewise_ops.core.rollout import evaluate, pods_of, summary_rows, workload_status


def _deployment(
    generation: int = 2,
    observed: int = 2,
    replicas: int = 3,
    updated: int = 3,
    ready: int = 3,
    available: int = 3,
    total: int | None = None,
    image: str = "img:v2",
    conditions: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "kind": "Deployment",
        "metadata": {"name": "api", "namespace": "ns", "generation": generation},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "api"}},
            "template": {"spec": {"containers": [{"name": "c", "image": image}]}},
        },
        "status": {
            "observedGeneration": observed,
            "replicas": replicas if total is None else total,
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "availableReplicas": available,
            "conditions": conditions or [],
        },
    }


def _pod(name: str, image: str = "img:v2", waiting: str | None = None, **status: Any) -> dict:
    cs: dict[str, Any] = {"name": "c", "image": image, "ready": waiting is None}
    if waiting:
        cs["state"] = {"waiting": {"reason": waiting, "message": f"{waiting} message"}}
    return {
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "ns", "labels": {"app": "api"}},
        "spec": {"containers": [{"name": "c", "image": image}]},
        "status": {"containerStatuses": [cs], **status},
    }


def test_done_only_when_all_counts_match_at_the_new_generation() -> None:
    assert workload_status(_deployment()).done
    assert not workload_status(_deployment(observed=1)).done
    assert not workload_status(_deployment(updated=2)).done
    assert not workload_status(_deployment(ready=2)).done  # not Helm's "enough pods"
    assert not workload_status(_deployment(available=2)).done
    assert not workload_status(_deployment(total=4)).done  # an old pod still terminating
    assert "old pods" in workload_status(_deployment(total=4)).state
    assert workload_status(_deployment(observed=1)).state == "waiting: new spec not observed yet"


def test_desired_is_the_live_replicas() -> None:
    hpa_scaled = _deployment(replicas=7, updated=7, ready=7, available=7)
    assert workload_status(hpa_scaled).desired == 7 and workload_status(hpa_scaled).done


def test_failing_pod_is_named_with_its_reason() -> None:
    status = workload_status(
        _deployment(updated=1, ready=2), [_pod("api-1", waiting="ImagePullBackOff")]
    )
    assert (status.failure, status.pod) == ("ImagePullBackOff", "api-1")
    assert "pod api-1" in status.line() and "ImagePullBackOff" in status.state


def test_old_failing_pods_of_another_image_do_not_count() -> None:
    old = _pod("api-old", image="img:broken", waiting="CrashLoopBackOff")
    status = workload_status(_deployment(ready=2), [old])
    assert status.failure is None
    assert pods_of(_deployment(), [old, _pod("api-new")]) == [_pod("api-new")]


def test_unschedulable_pod_and_failed_scheduling_event() -> None:
    pending = _pod(
        "api-2",
        conditions=[
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "cpu"}
        ],
    )
    assert workload_status(_deployment(ready=1), [pending]).failure == "FailedScheduling"
    plain = _pod("api-3")
    plain["status"]["containerStatuses"][0]["ready"] = False
    event = {
        "type": "Warning",
        "reason": "FailedScheduling",
        "message": "0/3 nodes",
        "involvedObject": {"kind": "Pod", "name": "api-3"},
    }
    status = workload_status(_deployment(ready=1), [plain], [event])
    assert (status.failure, status.pod, status.message) == (
        "FailedScheduling",
        "api-3",
        "0/3 nodes",
    )


def test_progress_deadline_exceeded() -> None:
    cond = [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]
    status = workload_status(_deployment(ready=1, conditions=cond))
    assert status.failure == "ProgressDeadlineExceeded" and not status.done


def test_evaluate_and_rows() -> None:
    state = evaluate([_deployment(), _deployment(ready=1)], [])
    assert not state.done and not state.failed
    rows = summary_rows(state)
    assert rows[0][1] == "3/3" and rows[1][4] == "waiting: 1/3 ready"


def test_a_deleted_workload_is_a_failure() -> None:
    gone = _deployment()
    gone["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    status = workload_status(gone)
    assert status.failure == "Deleted" and not status.done
