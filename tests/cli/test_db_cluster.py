"""``tradewise db backup|backups|verify --env E`` against the emulator over real HTTP.

The emulator has no Job controller, so the test plays it: a player thread sees each Job the
command creates, runs the Job's own container command (as created: the CronJob's script, the
``BACKUP`` override, the listing command) with its plain env values against the session's
PostgreSQL and a shared directory standing in for the claim, creates the Job's pod, writes what
the script printed as the pod's log, and sets the Job's status from the exit code.
"""

from __future__ import annotations

import copy
import datetime
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner, Result

from tests.app_data import store_analyses
from tests.conftest import PG_BIN
from tests.k8s_emulator import Emulator
from tradewise_ops.cli.main import app
from tradewise_ops.core.backup import INSTANTIATE, NAME_RE
from tradewise_ops.core.config import load_config
from tradewise_ops.core.render import render_environment

pytest_plugins = ["tests.k8s_emulator.fixtures"]

ROOT = Path(__file__).resolve().parents[2]
NS = "tradewise-ai"


def run(config: Path, *args: str) -> Result:
    return CliRunner().invoke(app, ["--config", str(config), *args])


@pytest.fixture
def config(tmp_path: Path) -> Path:
    raw = yaml.safe_load((ROOT / "tradewise.yaml").read_text())
    raw["environments"]["staging"]["backups"] = {"enabled": True, "keep": 2}
    path = tmp_path / "tradewise.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture
def claim() -> Iterator[Path]:
    """The claim's stand-in: a directory the ``postgres`` user may write."""
    path = Path(tempfile.mkdtemp(prefix="tw-claim-"))
    os.chmod(path, 0o755)
    if os.geteuid() == 0:
        shutil.chown(path, "postgres", "postgres")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def deploy_cronjobs(emu: Emulator, config: Path) -> None:
    cfg = load_config(str(config))
    for obj in render_environment(cfg, "staging", tag="v1", k8s_version=cfg.kubernetes_version):
        if obj["kind"] in ("CronJob", "PersistentVolumeClaim"):
            emu.put(obj)


def set_status(emu: Emulator, job: dict[str, Any], status: dict[str, Any]) -> None:
    new = copy.deepcopy(job)
    new["status"] = status
    emu.store.replace(emu.resource("Job"), NS, job["metadata"]["name"], new, status_only=True)


Outcome = tuple[int, list[str]]  # exit code, log lines


class JobPlayer:
    """Plays the Job controller and the kubelet for each new Job: ``act(job)`` -> outcome, or
    None to leave the Job running."""

    def __init__(self, emu: Emulator, act: Callable[[dict[str, Any]], Outcome | None]) -> None:
        self.emu, self.act = emu, act
        self.before = {j["metadata"]["name"] for j in emu.list("Job", NS)}
        self.seen: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while not self.stop.wait(0.05):
            for job in self.emu.list("Job", NS):
                name = job["metadata"]["name"]
                if name in self.seen or name in self.before:
                    continue
                self.seen.append(name)
                set_status(self.emu, job, {"active": 1})
                outcome = self.act(job)
                if outcome is None:
                    continue
                code, lines = outcome
                container = job["spec"]["template"]["spec"]["containers"][0]
                self.emu.put(
                    {
                        "apiVersion": "v1",
                        "kind": "Pod",
                        "metadata": {
                            "name": f"{name}-x7k2p",
                            "namespace": NS,
                            "labels": {"job-name": name, "batch.kubernetes.io/job-name": name},
                        },
                        "spec": {"containers": [{"name": container["name"], "image": "pg"}]},
                        "status": {
                            "phase": "Succeeded" if code == 0 else "Failed",
                            "containerStatuses": [
                                {
                                    "name": container["name"],
                                    "ready": False,
                                    "restartCount": 0,
                                    "state": {"terminated": {"exitCode": code}},
                                }
                            ],
                        },
                    }
                )
                self.emu.write_log(NS, f"{name}-x7k2p", lines)
                job = self.emu.get("Job", NS, name) or job
                if code == 0:
                    status = {
                        "succeeded": 1,
                        "conditions": [{"type": "Complete", "status": "True"}],
                    }
                else:
                    status = {
                        "failed": 1,
                        "conditions": [
                            {
                                "type": "Failed",
                                "status": "True",
                                "reason": "BackoffLimitExceeded",
                                "message": "Job has reached the specified backoff limit",
                            }
                        ],
                    }
                set_status(self.emu, job, status)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)


def _as_postgres(argv: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


def script_runner(
    postgres_server: Any, postgres_url: str, claim: Path
) -> Callable[[dict[str, Any]], Outcome]:
    """Run the Job's container command as the pod would, against the session's PostgreSQL."""
    dbname = postgres_url.rsplit("/", 1)[1]

    def act(job: dict[str, Any]) -> Outcome:
        container = job["spec"]["template"]["spec"]["containers"][0]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["PATH"] = f"{PG_BIN}:{env.get('PATH', '')}"
        env.update({e["name"]: e["value"] for e in container.get("env") or [] if "value" in e})
        env.update(
            PGHOST=postgres_server.host,
            PGPORT=str(postgres_server.port),
            PGUSER="postgres",
            PGDATABASE=dbname,
            BACKUP_DIR=str(claim),
            SCRATCH=str(claim / ".scratch"),
        )
        done = subprocess.run(
            _as_postgres(list(container["command"])),
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        return done.returncode, (done.stderr + done.stdout).splitlines()

    return act


@pytest.fixture
def cluster(emulator: Emulator, kubeconfig: Path, config: Path) -> Emulator:
    deploy_cronjobs(emulator, config)
    return emulator


@pytest.fixture
def played(
    cluster: Emulator, postgres_server: Any, postgres_url: str, claim: Path
) -> Iterator[JobPlayer]:
    store_analyses(postgres_url)
    player = JobPlayer(cluster, script_runner(postgres_server, postgres_url, claim))
    try:
        yield player
    finally:
        player.close()


def jobs(emu: Emulator) -> list[dict[str, Any]]:
    return sorted(emu.list("Job", NS), key=lambda j: j["metadata"]["name"])


def test_backup_runs_the_cronjob_now_and_prints_its_result(
    played: JobPlayer, config: Path, claim: Path
) -> None:
    result = run(config, "db", "backup", "--env", "staging", "-o", "json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    (job,) = jobs(played.emu)
    meta = job["metadata"]
    assert meta["name"] == doc["job"]
    assert meta["name"].startswith("tradewise-db-backup-manual-")
    assert meta["annotations"][INSTANTIATE] == "manual"
    cron = played.emu.get("CronJob", NS, "tradewise-db-backup")
    assert cron is not None
    (owner,) = meta["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"]) == (
        "CronJob",
        "tradewise-db-backup",
        cron["metadata"]["uid"],
    )
    assert job["spec"] == cron["spec"]["jobTemplate"]["spec"] | {
        "template": job["spec"]["template"]
    }
    assert doc["state"] == "succeeded" and doc["pod"] == f"{meta['name']}-x7k2p"
    assert doc["result"], doc["log"]
    name = doc["result"]["name"]
    assert NAME_RE.match(name)
    assert doc["result"]["bytes"] == (claim / name).stat().st_size
    assert doc["result"]["tables"] >= 1
    assert f"created Job {meta['name']}" in result.stderr
    assert "succeeded" in result.stderr


def test_list_verify_named_and_failed_verification(
    played: JobPlayer, config: Path, claim: Path
) -> None:
    names = []
    for _ in range(2):
        result = run(config, "db", "backup", "--env", "staging", "-o", "json")
        assert result.exit_code == 0, result.stderr
        names.append(json.loads(result.stdout)["result"]["name"])
    listed = run(config, "db", "backups", "--env", "staging", "-o", "json")
    assert listed.exit_code == 0, listed.stderr
    index = json.loads(listed.stdout)
    assert [b["name"] for b in index] == sorted(names)
    assert all(b["verified"] is None and b["failed"] is None for b in index)
    assert index[0]["bytes"] == (claim / names[0]).stat().st_size
    list_job = jobs(played.emu)[-1]
    assert list_job["metadata"]["name"].startswith("tradewise-db-verify-list-")

    # the older one, by name: the BACKUP override reaches the script
    older = min(names)
    verified = run(config, "db", "verify", older, "--env", "staging", "-o", "json")
    assert verified.exit_code == 0, verified.stderr
    doc = json.loads(verified.stdout)
    assert doc["result"]["name"] == older and doc["result"]["ok"] is True
    assert doc["result"]["rows"] >= 5
    job = played.emu.get("Job", NS, doc["job"])
    assert job is not None
    env = job["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "BACKUP", "value": older} in env

    # the newest, damaged: exit 1, naming the step that failed
    newest = claim / max(names)
    data = newest.read_bytes()
    newest.write_bytes(data[: len(data) - 300])
    bad = run(config, "db", "verify", "--env", "staging")
    assert bad.exit_code == 1, bad.stderr
    assert "verification failed: checksum" in bad.stderr
    assert max(names) in bad.stderr

    marks = json.loads(run(config, "db", "backups", "--env", "staging", "-o", "json").stdout)
    by_name = {b["name"]: b for b in marks}
    assert by_name[older]["verified"] and by_name[older]["failed"] is None
    assert by_name[max(names)]["verified"] is None
    assert "checksum" in by_name[max(names)]["failed"]


def test_verify_unknown_or_malformed_backup_is_bad_input(played: JobPlayer, config: Path) -> None:
    malformed = run(config, "db", "verify", "../etc/passwd", "--env", "staging")
    assert malformed.exit_code == 2
    assert "not an in-cluster backup name" in malformed.stderr
    assert jobs(played.emu) == []  # refused before any Job
    unknown = run(config, "db", "verify", "tradewise-20200101T000000Z.dump", "--env", "staging")
    assert unknown.exit_code == 2, unknown.stderr
    assert "no backup tradewise-20200101T000000Z.dump" in unknown.stderr


def test_backups_not_enabled_or_not_deployed(
    emulator: Emulator, kubeconfig: Path, config: Path
) -> None:
    plain = run(ROOT / "tradewise.yaml", "db", "backup", "--env", "staging")
    assert plain.exit_code == 2
    assert "environments.staging.backups.enabled" in plain.stderr
    for args in (("backups",), ("verify",)):
        result = run(ROOT / "tradewise.yaml", "db", *args, "--env", "staging")
        assert result.exit_code == 2 and "backups.enabled" in result.stderr
    missing = run(config, "db", "backup", "--env", "staging")  # enabled, never deployed
    assert missing.exit_code == 2
    assert "tradewise deploy staging" in missing.stderr
    assert emulator.list("Job", NS) == []


def test_backup_job_that_fails_or_hangs(cluster: Emulator, config: Path) -> None:
    def fail(job: dict[str, Any]) -> Outcome:
        return 1, ['pg_dump: error: connection to server at "postgres-service" failed']

    player = JobPlayer(cluster, fail)
    try:
        failed = run(config, "db", "backup", "--env", "staging")
    finally:
        player.close()
    assert failed.exit_code == 1
    assert "backup Job tradewise-db-backup-manual-" in failed.stderr
    assert "connection to server" in failed.stderr

    hang = JobPlayer(cluster, lambda job: None)
    try:
        started = time.monotonic()
        slow = run(config, "db", "backup", "--env", "staging", "--timeout", "1s")
        elapsed = time.monotonic() - started
    finally:
        hang.close()
    assert slow.exit_code == 1
    assert "did not finish within" in slow.stderr and "goes on in the cluster" in slow.stderr
    assert elapsed < 15
    (left,) = hang.seen  # left running, named
    assert left in slow.stderr
    job = cluster.get("Job", NS, left)
    assert job is not None and job["status"] == {"active": 1}


# -- doctor: the latest backup and its verification ---------------------------------------------
def set_cron_status(emu: Emulator, name: str, status: dict[str, Any]) -> None:
    obj = emu.get("CronJob", NS, name)
    assert obj is not None
    new = copy.deepcopy(obj)
    new["status"] = status
    emu.store.replace(emu.resource("CronJob"), NS, name, new, status_only=True)


def backup_findings(config: Path) -> dict[str, dict[str, Any]]:
    result = run(config, "doctor", "--env", "staging", "-o", "json")
    assert result.exit_code in (0, 1), result.stderr  # the rest of staging is not deployed
    doc = json.loads(result.stdout)
    assert {"backups.recent", "backups.verified"} <= set(doc["checks"])
    return {f["check"]: f for f in doc["findings"] if f["check"].startswith("backups.")}


def _stamp(ago: datetime.timedelta) -> str:
    return (datetime.datetime.now(datetime.UTC) - ago).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_doctor_reads_the_last_backup_and_verification(cluster: Emulator, config: Path) -> None:
    # never ran, the CronJobs just created: said, as info
    fresh = backup_findings(config)
    assert fresh["backups.recent"]["severity"] == "info"
    assert "no successful backup recorded yet" in fresh["backups.recent"]["message"]
    assert "tradewise db backup --env staging" in fresh["backups.recent"]["fix"]

    # a backup 3 days ago (daily schedule: at most 2), its last run since not succeeded;
    # a verification 5 days ago (weekly: at most 8): fine
    set_cron_status(
        cluster,
        "tradewise-db-backup",
        {
            "lastSuccessfulTime": _stamp(datetime.timedelta(days=3)),
            "lastScheduleTime": _stamp(datetime.timedelta(hours=5)),
        },
    )
    set_cron_status(
        cluster,
        "tradewise-db-verify",
        {
            "lastSuccessfulTime": _stamp(datetime.timedelta(days=5)),
            "lastScheduleTime": _stamp(datetime.timedelta(days=5)),
        },
    )
    stale = backup_findings(config)
    assert set(stale) == {"backups.recent"}
    finding = stale["backups.recent"]
    assert finding["severity"] == "warning"
    assert "older than its schedule allows" in finding["message"]
    evidence = "\n".join(finding["evidence"])
    assert "'0 2 * * *'" in evidence and "at most 48h" in evidence
    assert "lastSuccessfulTime" in evidence and "(72h ago)" in evidence
    assert "the last scheduled run has not succeeded" in evidence

    # the verification 9 days ago: past the weekly allowance
    set_cron_status(
        cluster,
        "tradewise-db-verify",
        {"lastSuccessfulTime": _stamp(datetime.timedelta(days=9))},
    )
    set_cron_status(
        cluster,
        "tradewise-db-backup",
        {"lastSuccessfulTime": _stamp(datetime.timedelta(hours=20))},
    )
    late = backup_findings(config)
    assert set(late) == {"backups.verified"}
    assert "at most 192h" in "\n".join(late["backups.verified"]["evidence"])
    assert "tradewise db verify --env staging" in late["backups.verified"]["fix"]

    # not deployed although enabled
    cluster.store.delete(cluster.resource("CronJob"), NS, "tradewise-db-verify")
    gone = backup_findings(config)
    assert "not deployed" in gone["backups.verified"]["message"]


def test_doctor_without_backups_has_no_backup_checks(emulator: Emulator, kubeconfig: Path) -> None:
    result = run(ROOT / "tradewise.yaml", "doctor", "--env", "staging", "-o", "json")
    doc = json.loads(result.stdout)
    assert not any(c.startswith("backups.") for c in doc["checks"])


# -- restore: held, restored, given back ---------------------------------------------------------
HELD = (
    "tradewise-api-deployment",
    "tradewise-worker-deployment",
    "tradewise-precompute-deployment",
)


def count_rows(postgres_server: Any, postgres_url: str) -> int:
    dbname = postgres_url.rsplit("/", 1)[1]
    out = subprocess.run(
        _as_postgres(
            [
                str(PG_BIN / "psql"),
                "-h",
                postgres_server.host,
                "-p",
                str(postgres_server.port),
                "-U",
                "postgres",
                "-d",
                dbname,
                "-Atc",
                "SELECT count(*) FROM stock_analyses",
            ]
        ),
        capture_output=True,
        text=True,
        check=True,
    )
    return int(out.stdout.strip())


def replicas(emu: Emulator) -> dict[str, int]:
    out = {}
    for name in HELD:
        obj = emu.get("Deployment", NS, name)
        assert obj is not None, name
        out[name] = obj["spec"]["replicas"]
    return out


def maintenance_on(emu: Emulator) -> bool:
    ingress = emu.get("Ingress", NS, "tradewise-ingress")
    assert ingress is not None
    return ingress["metadata"].get("annotations", {}).get("tradewise.io/maintenance") == "on"


def test_restore_holds_the_service_restores_and_gives_it_back(
    emulator: Emulator,
    kubeconfig: Path,
    config: Path,
    postgres_server: Any,
    postgres_url: str,
    claim: Path,
) -> None:
    emulator.controllers.auto(delay=0.01)
    deployed = run(config, "deploy", "staging", "--tag", "v1", "--timeout", "20s")
    assert deployed.exit_code == 0, deployed.stderr
    store_analyses(postgres_url)
    script = script_runner(postgres_server, postgres_url, claim)
    during: dict[str, Any] = {}

    def act(job: dict[str, Any]) -> Outcome | None:
        if "-restore-" in job["metadata"]["name"] and during.get("hang"):
            return None  # the restore Job outlasts --timeout
        if "-restore-" in job["metadata"]["name"]:
            during["replicas"] = replicas(emulator)
            during["maintenance"] = maintenance_on(emulator)
            during["api_pods"] = [
                p
                for p in emulator.list("Pod", NS)
                if p["metadata"]["labels"].get("tradewise.emulator/owner") == HELD[0]
            ]
        return script(job)

    player = JobPlayer(emulator, act)
    try:
        backed = run(config, "db", "backup", "--env", "staging", "-o", "json")
        assert backed.exit_code == 0, backed.stderr
        name = json.loads(backed.stdout)["result"]["name"]
        store_analyses(postgres_url, ("GOOG", "AMZN"))  # written after the backup
        assert count_rows(postgres_server, postgres_url) == 7
        before = replicas(emulator)
        assert all(before.values())

        # no --yes and stdin not a terminal: exit 2, nothing changed
        emulator.reset_requests()
        asked = run(config, "db", "restore", name, "--env", "staging")
        assert asked.exit_code == 2 and "--yes" in asked.stderr
        assert [r for r in emulator.requests if r.method != "GET"] == []
        unknown = run(
            config, "db", "restore", "tradewise-20200101T000000Z.dump", "--env", "staging", "--yes"
        )
        assert unknown.exit_code == 2 and "no backup tradewise-20200101T000000Z.dump" in (
            unknown.stderr
        )
        assert replicas(emulator) == before and not maintenance_on(emulator)

        done = run(config, "db", "restore", name, "--env", "staging", "--yes", "-o", "json")
        assert done.exit_code == 0, done.stderr
        assert during["replicas"] == dict.fromkeys(HELD, 0)
        assert during["maintenance"] is True and during["api_pods"] == []
        assert count_rows(postgres_server, postgres_url) == 5  # the backup's rows
        assert replicas(emulator) == before and not maintenance_on(emulator)
        doc = json.loads(done.stdout)
        result = doc["job"]["result"]
        assert (result["name"], result["ok"]) == (name, True) and result["rows"] >= 5
        assert {h["deployment"]: h["replicas"] for h in doc["held"]} == before
        assert "checks" in doc["doctor"]
        assert "maintenance on" in done.stderr and "maintenance off" in done.stderr
        restore_job = emulator.get("Job", NS, doc["job"]["job"])
        assert restore_job is not None and restore_job["spec"]["backoffLimit"] == 0
        assert restore_job["metadata"]["name"].startswith("tradewise-db-backup-restore-")

        # a damaged dump: the Job fails, the database stays, the service comes back
        store_analyses(postgres_url, ("TSLA",))
        dump = claim / name
        data = dump.read_bytes()
        dump.write_bytes(data[: len(data) - 300])
        failed = run(config, "db", "restore", name, "--env", "staging", "--yes")
        assert failed.exit_code == 1
        assert "checksum" in failed.stderr
        assert "the database is as it was" in failed.stderr
        assert "replicas and maintenance are back" in failed.stderr
        assert count_rows(postgres_server, postgres_url) == 6
        assert replicas(emulator) == before and not maintenance_on(emulator)

        # a restore Job that outlasts --timeout: exit 1, named, the service given back
        dump.write_bytes(data)
        during["hang"] = True
        slow = run(config, "db", "restore", name, "--env", "staging", "--yes", "--timeout", "2s")
        assert slow.exit_code == 1
        assert "did not finish within" in slow.stderr
        assert "the restore Job may still run" in slow.stderr
        assert replicas(emulator) == before and not maintenance_on(emulator)
    finally:
        player.close()


# -- a backups claim too small for the database: refused before the Job ----------------------------
def test_backup_refused_when_the_claim_is_too_small(
    emulator: Emulator,
    kubeconfig: Path,
    tmp_path: Path,
    postgres_server: Any,
    postgres_url: str,
    claim: Path,
) -> None:
    raw = yaml.safe_load((ROOT / "tradewise.yaml").read_text())
    raw["environments"]["staging"]["backups"] = {"enabled": True, "keep": 2, "storage": "4Ki"}
    config = tmp_path / "small.yaml"
    config.write_text(yaml.safe_dump(raw))
    deploy_cronjobs(emulator, config)
    pvc = emulator.get("PersistentVolumeClaim", NS, "tradewise-backups")
    assert pvc is not None and pvc["spec"]["resources"]["requests"]["storage"] == "4Ki"
    store_analyses(postgres_url)
    player = JobPlayer(emulator, script_runner(postgres_server, postgres_url, claim))
    try:
        # no backup recorded yet: nothing to estimate from, so it runs
        first = run(config, "db", "backup", "--env", "staging", "-o", "json")
        assert first.exit_code == 0, first.stderr
        result = json.loads(first.stdout)["result"]
        size = result["bytes"]
        assert 3 * size > 4096  # keep 2 plus the new one, the size of this one each

        refused = run(config, "db", "backup", "--env", "staging")
        assert refused.exit_code == 2, refused.stderr
        message = " ".join(refused.stderr.split())
        assert "the backups volume tradewise-backups of staging (4.0 KiB) is too small" in message
        assert f"about {size / 1024:.1f} KiB each like the newest, {result['name']}" in message
        assert "environments.staging.backups.storage" in message and "no Job was created" in message
        assert len(jobs(emulator)) == 1  # the first backup's Job only

        # what was provisioned counts over the request: a 1Gi volume has room
        live = emulator.get("PersistentVolumeClaim", NS, "tradewise-backups")
        assert live is not None
        grown = copy.deepcopy(live)
        grown["status"] = {"phase": "Bound", "capacity": {"storage": "1Gi"}}
        emulator.store.replace(
            emulator.resource("PersistentVolumeClaim"),
            NS,
            "tradewise-backups",
            grown,
            status_only=True,
        )
        roomy = run(config, "db", "backup", "--env", "staging")
        assert roomy.exit_code == 0, roomy.stderr
        grown = copy.deepcopy(emulator.get("PersistentVolumeClaim", NS, "tradewise-backups"))
        grown["status"] = {"phase": "Bound", "capacity": {"storage": "4Ki"}}
        emulator.store.replace(
            emulator.resource("PersistentVolumeClaim"),
            NS,
            "tradewise-backups",
            grown,
            status_only=True,
        )
        again = run(config, "db", "backup", "--env", "staging")
        assert again.exit_code == 2 and len(jobs(emulator)) == 2
        forced = run(config, "db", "backup", "--env", "staging", "--force")
        assert forced.exit_code == 0, forced.stderr
        assert len(jobs(emulator)) == 3
    finally:
        player.close()
