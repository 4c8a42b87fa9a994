"""The pure parts of running the backup CronJobs now, and of doctor's backup checks."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from tradewise_ops.core.backup import check_dump_name, job_state, manual_job, result_line
from tradewise_ops.core.doctor import DAY, schedule_allowance
from tradewise_ops.errors import BadInputError

CRON = {
    "metadata": {"name": "tradewise-db-verify", "namespace": "ns", "uid": "u-1"},
    "spec": {
        "jobTemplate": {
            "metadata": {"labels": {"app": "x"}},
            "spec": {
                "template": {
                    "spec": {
                        "containers": [
                            {
                                "name": "pg-verify",
                                "command": ["sh", "-c", "verify"],
                                "env": [{"name": "BACKUP_DIR", "value": "/backups"}],
                            }
                        ]
                    }
                }
            },
        }
    },
}


def test_manual_job_is_what_kubectl_create_job_from_makes() -> None:
    now = datetime.datetime(2026, 3, 1, 9, 30, 0, 123456, tzinfo=datetime.UTC)
    job = manual_job(CRON, now, env={"BACKUP": "tradewise-x.dump", "BACKUP_DIR": "/b"})
    meta = job["metadata"]
    assert meta["name"] == "tradewise-db-verify-manual-20260301-093000-123456"
    assert len(meta["name"]) <= 63
    assert meta["annotations"] == {"cronjob.kubernetes.io/instantiate": "manual"}
    assert meta["ownerReferences"][0]["uid"] == "u-1" and meta["labels"] == {"app": "x"}
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert sorted(container["env"], key=lambda e: e["name"]) == [
        {"name": "BACKUP", "value": "tradewise-x.dump"},
        {"name": "BACKUP_DIR", "value": "/b"},
    ]
    # the CronJob itself is untouched
    spec: Any = CRON["spec"]
    tmpl = spec["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert tmpl["env"] == [{"name": "BACKUP_DIR", "value": "/backups"}]
    listing = manual_job(CRON, now, purpose="list", command=["sh", "-c", "ls"])
    assert listing["metadata"]["name"].startswith("tradewise-db-verify-list-")
    assert listing["spec"]["template"]["spec"]["containers"][0]["command"] == ["sh", "-c", "ls"]


def test_job_state_and_result_line() -> None:
    assert job_state({})[0] == "running"
    assert job_state({"status": {"active": 1}}) == ("running", "1 pod(s) active")
    assert job_state({"status": {"succeeded": 1}})[0] == "succeeded"
    failed = {
        "status": {
            "conditions": [
                {"type": "Failed", "status": "True", "reason": "DeadlineExceeded", "message": "m"}
            ]
        }
    }
    assert job_state(failed) == ("failed", "DeadlineExceeded: m")
    assert result_line(["x", '{"a": 1}', "{broken", "done"]) == {"a": 1}
    assert result_line(["nothing"]) is None


def test_dump_names_and_schedule_allowance() -> None:
    assert check_dump_name("tradewise-20260301T093000123456Z.dump")
    for bad in ("../x", "tradewise-20260301T093000Z.sqlite3", "x.dump"):
        with pytest.raises(BadInputError):
            check_dump_name(bad)
    assert schedule_allowance("0 2 * * *") == 2 * DAY
    assert schedule_allowance("0 3 * * 0") == 8 * DAY
    assert schedule_allowance("0 3 1 * *") == 32 * DAY
    assert schedule_allowance("15 * * * *") == 3600 + DAY
