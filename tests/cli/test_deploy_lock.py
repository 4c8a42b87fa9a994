"""One writer per environment (the release lock), SIGTERM mid-deploy, --rollback-timeout.

The emulator serves the cluster over real HTTP; the "other" deploy, and the one that gets SIGTERM,
is the real ``tradewise`` console script of this venv in its own process.
"""

from __future__ import annotations

import datetime
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from typer.testing import CliRunner, Result

from tests.k8s_emulator import Emulator
from tradewise_ops.cli.main import app
from tradewise_ops.core import lock as core_lock
from tradewise_ops.core import release as rel

pytest_plugins = ["tests.k8s_emulator.fixtures"]

ROOT = Path(__file__).resolve().parents[2]
CONFIG = str(ROOT / "tradewise.yaml")
TRADEWISE = str(Path(sys.executable).parent / "tradewise")
NS = "tradewise-ai"
API = "tradewise-api-deployment"
LEASE = "tradewise-lock-staging"


def run(*args: str) -> Result:
    return CliRunner().invoke(app, ["--config", CONFIG, *args])


def spawn(*args: str) -> subprocess.Popen[str]:
    """The real console script, in its own process (KUBECONFIG from the fixture)."""
    return subprocess.Popen(
        [TRADEWISE, "--config", CONFIG, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(os.environ, NO_COLOR="1"),
        text=True,
    )


def finish(proc: subprocess.Popen[str], timeout: float = 60) -> tuple[str, str]:
    try:
        return proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def records(emu: Emulator) -> dict[int, tuple[str, str]]:
    """revision -> (status, note), from the release records in the cluster."""
    out = {}
    for secret in emu.list("Secret", NS, "owner=tradewise"):
        meta = secret["metadata"]
        note = (meta.get("annotations") or {}).get("tradewise.io/note", "")
        out[int(meta["labels"]["tradewise.io/revision"])] = (
            meta["labels"]["tradewise.io/status"],
            note,
        )
    return out


def image_of(emu: Emulator, name: str) -> str:
    obj = emu.get("Deployment", NS, name)
    assert obj is not None, name
    return str(obj["spec"]["template"]["spec"]["containers"][0]["image"])


def put_lease(emu: Emulator, holder: str, seconds_ago: float, command: str) -> dict[str, Any]:
    then = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=seconds_ago)
    held = core_lock.LockHolder(holder, command, then, then, 30)
    return emu.put(core_lock.lease_object("staging", NS, held))


# -- two writers -------------------------------------------------------------------------------
def test_a_second_deploy_is_refused_naming_the_holder_then_waits_with_wait_for_lock(
    emulator: Emulator, kubeconfig: Path
) -> None:
    emulator.controllers.auto(delay=4)  # a slow controller: the first deploy holds on a while
    first = spawn("deploy", "staging", "--tag", "v1", "--timeout", "60s")
    try:
        # the first one is waiting for its rollout (it holds the lock and sends no write now)
        emulator.wait_for(lambda: any(r.watch for r in emulator.requests), 30, "the first wait")
        assert emulator.get("Lease", NS, LEASE) is not None
        writes_before = [r for r in emulator.requests if r.method != "GET"]
        refused = run("deploy", "staging", "--tag", "v2")
        assert refused.exit_code == 1, refused.stderr
        assert "staging is locked: held by " in refused.stderr
        assert f":{first.pid} since " in refused.stderr  # user@host:pid of the first
        assert "deploy staging --tag v1 --timeout 60s`" in refused.stderr  # its command
        assert "nothing was changed" in refused.stderr and "--wait-for-lock" in refused.stderr
        # refused before it changed anything: its only write was the lock's create (409)
        mine = [r for r in emulator.requests if r.method != "GET"][len(writes_before) :]
        assert [(r.method, r.status) for r in mine] == [("POST", 409)], mine
        waited = run("deploy", "staging", "--tag", "v2", "--wait-for-lock=60s", "--timeout", "60s")
        out, err = finish(first)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, err
    assert waited.exit_code == 0, waited.stderr
    assert "waiting up to 60s for the lock of staging: held by" in waited.stderr
    # one after the other: two deployed revisions in order, never both "deployed"
    assert {r: s for r, (s, _n) in records(emulator).items()} == {1: "superseded", 2: "deployed"}
    assert image_of(emulator, API).endswith(":v2")
    assert emulator.get("Lease", NS, LEASE) is None  # both gave it back


def test_the_lock_costs_two_requests_per_deploy(emulator: Emulator, kubeconfig: Path) -> None:
    """Target: at most 3 more per deploy. A create and a delete (a renewal every 10 s on top
    for a deploy that runs longer)."""
    emulator.controllers.auto(delay=0.01)
    for tag in ("v1", "v2"):
        emulator.reset_requests()
        result = run("deploy", "staging", "--tag", tag, "-o", "json")
        assert result.exit_code == 0, result.stderr
        lease = [(r.method, r.status) for r in emulator.requests if "/leases" in r.path]
        assert lease == [("POST", 201), ("DELETE", 200)]
        assert json.loads(result.stdout)["requests"] < len(emulator.requests)  # counted apart


def test_a_rollback_and_a_scale_are_refused_too(emulator: Emulator, kubeconfig: Path) -> None:
    emulator.controllers.auto(delay=0.01)
    assert run("deploy", "staging", "--tag", "v1").exit_code == 0
    assert run("deploy", "staging", "--tag", "v2").exit_code == 0
    put_lease(emulator, "ann@ci-7:4242", 2, "tradewise deploy staging --tag v3")
    back = run("rollback", "staging")
    assert back.exit_code == 1 and "held by ann@ci-7:4242" in back.stderr
    scale = run("scale", "api", "4", "--env", "staging", "--yes")
    assert scale.exit_code == 1 and "held by ann@ci-7:4242" in scale.stderr
    assert "`tradewise deploy staging --tag v3`" in scale.stderr
    assert image_of(emulator, API).endswith(":v2")


def test_a_lease_whose_holder_died_is_taken_over(emulator: Emulator, kubeconfig: Path) -> None:
    emulator.controllers.auto(delay=0.01)
    put_lease(emulator, "gone@old-runner:77", 90, "tradewise deploy staging --tag v0")
    result = run("deploy", "staging", "--tag", "v1")
    assert result.exit_code == 0, result.stderr
    assert "took over the lock of staging: it was held by gone@old-runner:77" in result.stderr
    assert "(its holder is gone)" in result.stderr
    assert emulator.get("Lease", NS, LEASE) is None


def test_unlock_breaks_a_lock_after_confirmation(emulator: Emulator, kubeconfig: Path) -> None:
    emulator.controllers.auto(delay=0.01)
    assert run("unlock", "staging").stdout.strip() == "staging is not locked"
    put_lease(emulator, "ann@ci-7:4242", 5, "tradewise deploy staging --tag v3")
    refused = run("unlock", "staging")  # stdin is not a terminal: it needs --yes
    assert refused.exit_code == 2 and "--yes" in refused.stderr
    assert "still renews it" in refused.stderr and "held by ann@ci-7:4242" in refused.stderr
    assert emulator.get("Lease", NS, LEASE) is not None
    done = run("unlock", "staging", "--yes", "-o", "json")
    assert done.exit_code == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["unlocked"] is True and doc["lock"]["holder"] == "ann@ci-7:4242"
    assert emulator.get("Lease", NS, LEASE) is None
    assert run("deploy", "staging", "--tag", "v1").exit_code == 0  # free again


def test_a_pending_release_of_a_gone_deploy_shows_as_interrupted(
    emulator: Emulator, kubeconfig: Path
) -> None:
    emulator.controllers.auto(delay=0.01)
    assert run("deploy", "staging", "--tag", "v1").exit_code == 0
    # a deploy that was SIGKILLed after recording revision 2: pending, its holder gone
    emulator.put(
        rel.to_secret(
            rel.Release(
                2, "staging", NS, "v2", "2026-01-01T00:00:00Z", "bob", "tradewise deploy",
                rel.PENDING, holder="bob@laptop:99",
            )
        )
    )  # fmt: skip
    shown = run("history", "staging", "-o", "json")
    assert [r["status"] for r in json.loads(shown.stdout)] == ["deployed", "interrupted"]
    assert json.loads(shown.stdout)[1]["note"] == "bob@laptop:99 stopped without finishing"
    assert "interrupted" in run("history", "staging").stdout
    status = json.loads(run("status", "staging", "-o", "json").stdout)
    assert status["latest_release"]["status"] == "interrupted" and status["lock"] is None
    # while its holder still holds the lock, it is pending (running), not interrupted
    put_lease(emulator, "bob@laptop:99", 1, "tradewise deploy staging --tag v2")
    status = json.loads(run("status", "staging", "-o", "json").stdout)
    assert status["latest_release"]["status"] == "pending"
    assert status["lock"]["holder"] == "bob@laptop:99"
    emulator.store.delete(emulator.resource("Lease"), NS, LEASE)
    again = run("deploy", "staging", "--tag", "v3")
    assert again.exit_code == 0, again.stderr
    assert "revision 2 (v2) was interrupted: bob@laptop:99 stopped without finishing" in (
        again.stderr
    )


# -- SIGTERM -----------------------------------------------------------------------------------
def test_sigterm_mid_wait_records_failed_releases_the_lock_exits_143(
    emulator: Emulator, kubeconfig: Path
) -> None:
    emulator.controllers.auto(delay=60)  # nothing becomes ready while we look
    proc = spawn("deploy", "staging", "--tag", "v1", "--timeout", "120s")
    try:
        emulator.wait_for(lambda: any(r.watch for r in emulator.requests), 30, "the wait")
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        out, err = finish(proc, timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err
    assert "terminated (SIGTERM): interrupted while waiting for the rollout" in err
    assert "revision 1 is recorded as failed" in err
    status, note = records(emulator)[1]
    assert status == "failed"
    assert note.startswith("SIGTERM: interrupted while waiting for the rollout")
    assert emulator.get("Lease", NS, LEASE) is None  # the lock was given back


def test_sigterm_mid_apply_names_what_was_and_was_not_applied(
    emulator: Emulator, kubeconfig: Path
) -> None:
    emulator.controllers.auto(delay=0.01)
    worker = "tradewise-worker-deployment"
    emulator.delay_next("PATCH", f"/deployments/{worker}$", 5)  # hold the apply there
    proc = spawn("deploy", "staging", "--tag", "v1", "--timeout", "60s")
    try:
        emulator.wait_for(
            lambda: bool(emulator.requests_matching("PATCH", f"/deployments/{worker}$")), 30
        )
        time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        out, err = finish(proc, timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err
    status, note = records(emulator)[1]
    assert status == "failed"
    assert note.startswith("SIGTERM: interrupted during apply: applied ")
    applied, not_applied = note.split("; not applied: ")
    assert f"Deployment/{API}" in applied and f"Deployment/{worker}" not in applied
    assert f"Deployment/{worker}" in not_applied
    assert "HorizontalPodAutoscaler/tradewise-worker-hpa" in not_applied
    assert emulator.get("Lease", NS, LEASE) is None


# -- --atomic's rollback has its own time budget ---------------------------------------------
def test_atomic_rollback_waits_up_to_rollback_timeout(emulator: Emulator, kubeconfig: Path) -> None:
    emulator.controllers.auto(delay=0.01)
    assert run("deploy", "staging", "--tag", "v1").exit_code == 0
    # the controller now acts 6 s after the first change it sees: v2 (1 s) times out, and the
    # rollback, applied 1-3 s in, must wait several seconds more
    emulator.controllers.auto(delay=6)
    result = run(
        "deploy", "staging", "--tag", "v2", "--atomic", "--timeout", "1s",
        "--rollback-timeout", "30s", "-o", "json",
    )  # fmt: skip
    assert result.exit_code == 1, result.stderr
    doc = json.loads(result.stdout)
    assert doc["timed_out"] is True  # v2 had 1 s
    assert doc["rolled_back"]["status"] == "deployed"  # the rollback had 30 s of its own
    assert "rolled back as revision 3 (v1) and is healthy" in result.stderr
    assert image_of(emulator, API).endswith(":v1")


def test_atomic_rollback_timeout_defaults_to_timeout(emulator: Emulator, kubeconfig: Path) -> None:
    emulator.controllers.auto(delay=0.01)
    assert run("deploy", "staging", "--tag", "v1").exit_code == 0
    emulator.controllers.auto(delay=6)
    result = run("deploy", "staging", "--tag", "v2", "--atomic", "--timeout", "1s", "-o", "json")
    doc = json.loads(result.stdout)
    assert doc["rolled_back"]["status"] == "failed"  # 1 s was not enough for it either
    assert doc["rolled_back"]["timed_out"] is True


def test_a_scale_with_wait_for_lock_waits_then_plans_from_what_the_holder_left(
    emulator: Emulator, kubeconfig: Path
) -> None:
    import threading

    emulator.controllers.auto(delay=0.01)
    assert run("deploy", "staging", "--tag", "v1").exit_code == 0
    put_lease(emulator, "ann@ci-7:4242", 1, "tradewise deploy staging --tag v2")

    def holder_finishes() -> None:  # what a deploy would do: change the API, then let go
        time.sleep(2.0)
        deployment = emulator.get("Deployment", NS, API)
        assert deployment is not None
        deployment["spec"]["replicas"] = 5  # staging starts at 2 (its HPA: 2-6)
        emulator.put(deployment)
        emulator.store.delete(emulator.resource("Lease"), NS, LEASE)

    other = threading.Thread(target=holder_finishes)
    other.start()
    try:
        result = run("scale", "api", "4", "--env", "staging", "--yes", "--wait-for-lock=30s",
                     "-o", "json")  # fmt: skip
    finally:
        other.join()
    assert result.exit_code == 0, result.stderr
    assert "waiting up to 30s for the lock of staging: held by ann@ci-7:4242" in result.stderr
    plan = json.loads(result.stdout)
    assert plan["applied"] is True
    api = next(s for s in plan["steps"] if s["component"] == "api")
    assert api["replicas_before"] == 5, plan  # planned again from what the holder left
    deployment = emulator.get("Deployment", NS, API)
    assert deployment is not None and deployment["spec"]["replicas"] == 4
    assert emulator.get("Lease", NS, LEASE) is None


def test_a_scale_with_wait_for_lock_gives_up_after_the_duration(
    emulator: Emulator, kubeconfig: Path
) -> None:
    emulator.controllers.auto(delay=0.01)
    assert run("deploy", "staging", "--tag", "v1").exit_code == 0
    put_lease(emulator, "ann@ci-7:4242", 1, "tradewise deploy staging --tag v2")
    before = emulator.get("Deployment", NS, API)
    assert before is not None
    result = run("scale", "api", "4", "--env", "staging", "--yes", "--wait-for-lock=2s")
    assert result.exit_code == 1, result.stderr
    assert "held by ann@ci-7:4242" in result.stderr and "nothing was changed" in result.stderr
    after = emulator.get("Deployment", NS, API)
    assert after is not None and after["spec"]["replicas"] == before["spec"]["replicas"]
    bad = run("scale", "api", "4", "--env", "staging", "--yes", "--wait-for-lock=soon")
    assert bad.exit_code == 2 and "--wait-for-lock" in bad.stderr
