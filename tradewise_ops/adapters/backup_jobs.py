"""Run the in-cluster backup CronJobs now: a Job from a CronJob's template, watched, its log read.

``tradewise db backup|verify|backups --env E`` create a Job from ``tradewise-db-backup`` or
``tradewise-db-verify`` (``core.backup.manual_job``: what ``kubectl create job --from=cronjob/``
makes), watch it until it succeeds or fails (bounded by a timeout; a Job still running then is
left running and named), and read the last JSON line its pod printed (``core.backup.result_line``)
through the gateway's pod-log call. Nothing else in the cluster changes.

Before a backup Job, the claim's size (the live PVC's capacity, else its request) is compared
with what the backup CronJob holds at its peak, estimated from the newest backup Job's result
(``core.backup.claim_space`` decides); too small is refused before the Job is created.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tradewise_ops.core.backup import (
    BACKUP_CRONJOB,
    HELD_COMPONENTS,
    JOB_NAME_LABEL,
    LIST_SCRIPT,
    RESTORE_SCRIPT,
    VERIFY_CRONJOB,
    SpaceCheck,
    check_dump_name,
    claim_space,
    job_state,
    manual_job,
    refuse_claim_space,
    require_enabled,
    result_line,
)
from tradewise_ops.core.units import format_duration, memory_bytes
from tradewise_ops.errors import BadInputError, GoalMissedError, TradewiseError, UnreachableError

if TYPE_CHECKING:
    from tradewise_ops.adapters.kube import KubeGateway
    from tradewise_ops.core.config import Environment

LOG_TAIL = 200
PART_OF = "app.kubernetes.io/part-of=tradewise"
COMPONENT = "app.kubernetes.io/component"
CLAIM = "tradewise-backups"
BACKUP_JOBS = f"{COMPONENT}=backup"
RESULTS_READ = 3  # succeeded backup Jobs whose logs are read, newest first, for the last size


@dataclass
class JobRun:
    """One Job run to its end: its name, pod, outcome, log tail and the JSON line it printed."""

    job: str
    cronjob: str
    state: str = "running"  # running | succeeded | failed
    why: str = ""
    pod: str | None = None
    log: list[str] = field(default_factory=list)
    result: dict[str, Any] | None = None
    seconds: float = 0.0
    log_error: str | None = None  # why the pod's log could not be read

    @property
    def ok(self) -> bool:
        return self.state == "succeeded"

    def failure(self) -> str:
        """Why it failed, from the log when it says (the failed step, else its last line)."""
        if self.result and self.result.get("step"):
            return str(self.result["step"])
        lines = [ln.strip() for ln in self.log if ln.strip() and not ln.lstrip().startswith("{")]
        if lines:
            return lines[-1]
        unread = f" (its log: {self.log_error})" if self.log_error else ""
        return (self.why or "the Job failed") + unread

    def to_dict(self) -> dict[str, Any]:
        return {
            "job": self.job,
            "cronjob": self.cronjob,
            "state": self.state,
            "why": self.why,
            "pod": self.pod,
            "seconds": round(self.seconds, 1),
            "result": self.result,
            "log": self.log[-20:],
            "log_error": self.log_error,
        }


class ClusterBackups:
    """The backup CronJobs of one Kubernetes environment, run on demand."""

    def __init__(self, gw: KubeGateway, env: Environment) -> None:
        self.gw = gw
        self.env = env
        self.namespace = env.namespace

    def cronjob(self, name: str) -> dict[str, Any]:
        """The CronJob ``name``; ``BadInputError`` when backups are off or it is not deployed."""
        key = f"environments.{self.env.name}.backups.enabled"
        require_enabled(self.env.name, self.env.backups.enabled)
        found = self.gw.find("CronJob", name, namespace=self.namespace)
        if found is None:
            raise BadInputError(
                f"no CronJob {name} in {self.namespace} ({self.gw.where}): {key} is true in the "
                f"config but not deployed yet; run `tradewise deploy {self.env.name}`"
            )
        return found

    def run(
        self,
        cronjob: str,
        timeout: float,
        *,
        purpose: str = "manual",
        env: Mapping[str, str] | None = None,
        command: Sequence[str] | None = None,
        backoff_limit: int | None = None,
        on_progress: Callable[[str], None] | None = None,
        now: datetime.datetime | None = None,
    ) -> JobRun:
        """Create a Job from ``cronjob``, watch it to its end (or ``timeout`` s), read its log.

        ``GoalMissedError`` when it is still running after ``timeout`` (it goes on: named).
        """
        source = self.cronjob(cronjob)
        job = manual_job(
            source,
            now or datetime.datetime.now(datetime.UTC),
            purpose=purpose,
            env=env,
            command=command,
            backoff_limit=backoff_limit,
        )
        job["metadata"]["namespace"] = self.namespace
        started = time.monotonic()
        created = self.gw.create(job)
        run = JobRun(job=created["metadata"]["name"], cronjob=cronjob)
        say = on_progress or (lambda _msg: None)
        say(f"created Job {run.job} from CronJob {cronjob}")
        last = self._follow(run, created, started + timeout, say)
        run.seconds = time.monotonic() - started
        run.state, run.why = job_state(last)
        if run.state == "running":
            raise GoalMissedError(
                f"Job {run.job} did not finish within {format_duration(timeout)}; it goes on in "
                f"the cluster (kubectl -n {self.namespace} get job {run.job})"
            )
        self._read_log(run)
        say(f"Job {run.job} {run.state} after {format_duration(run.seconds)}")
        return run

    def _follow(
        self,
        run: JobRun,
        created: dict[str, Any],
        deadline: float,
        say: Callable[[str], None],
    ) -> dict[str, Any]:
        """Watch the Job until it is done or ``deadline``; its last seen state.

        Every change of its state is said once; a dropped watch is re-read and resumed.
        """
        last = created
        shown = ""
        rv = str(created["metadata"].get("resourceVersion") or "") or None
        while True:
            state, why = job_state(last)
            if state == "running" and why != shown:
                shown = why
                say(f"Job {run.job}: {why}")
            remaining = deadline - time.monotonic()
            if state != "running" or remaining <= 0:
                return last
            events = self.gw.watch(
                ["Job"], rv, timeout=min(remaining, 30.0), namespace=self.namespace
            )
            try:
                for event in events:
                    rv = event.resource_version or rv
                    if event.name == run.job and event.type != "DELETED":
                        last = event.obj
                        if job_state(last) != (state, why):
                            break
            finally:
                getattr(events, "close", lambda: None)()
            if job_state(last) == (state, why):  # the watch ended: read it once
                current = self.gw.find("Job", run.job, namespace=self.namespace)
                if current is None:
                    raise GoalMissedError(f"Job {run.job} was deleted before it finished")
                last = current

    def _read_log(self, run: JobRun) -> None:
        """The newest pod of the Job and the tail of its log (none readable: left empty)."""
        pods = self.gw.list("Pod", f"{JOB_NAME_LABEL}={run.job}", namespace=self.namespace)
        if not pods:
            return
        pods.sort(key=lambda p: p["metadata"].get("creationTimestamp") or "")
        run.pod = pods[-1]["metadata"]["name"]
        try:
            stream = self.gw.pod_log(run.pod, tail_lines=LOG_TAIL, namespace=self.namespace)
            run.log = list(stream.lines())
        except UnreachableError:
            raise
        except TradewiseError as exc:
            run.log_error = exc.message
            return
        run.result = result_line(run.log)

    # -- room in the claim -------------------------------------------------------------------
    def claim_capacity(self) -> int | None:
        """Bytes of the claim ``tradewise-backups``: its ``status.capacity`` (what was
        provisioned), else its request, else ``backups.storage``; None when none parses."""
        pvc = self.gw.find("PersistentVolumeClaim", CLAIM, namespace=self.namespace) or {}
        requests = ((pvc.get("spec") or {}).get("resources") or {}).get("requests") or {}
        for value in (
            ((pvc.get("status") or {}).get("capacity") or {}).get("storage"),
            requests.get("storage"),
            self.env.backups.storage,
        ):
            if value is not None and memory_bytes(value) is not None:
                return memory_bytes(value)
        return None

    def newest_backup(self) -> tuple[str, int] | None:
        """The name and bytes of the newest dump a backup Job reported (its pod's last JSON
        line), scheduled or manual; None when no succeeded backup Job's log says."""
        jobs = [
            j
            for j in self.gw.list("Job", BACKUP_JOBS, namespace=self.namespace)
            if any(
                o.get("kind") == "CronJob" and o.get("name") == BACKUP_CRONJOB
                for o in j["metadata"].get("ownerReferences") or []
            )
            and job_state(j)[0] == "succeeded"
        ]
        jobs.sort(
            key=lambda j: (j["metadata"].get("creationTimestamp") or "", j["metadata"]["name"]),
            reverse=True,
        )
        for job in jobs[:RESULTS_READ]:
            run = JobRun(job=job["metadata"]["name"], cronjob=BACKUP_CRONJOB)
            self._read_log(run)
            doc = run.result or {}
            if isinstance(doc.get("bytes"), int) and doc.get("name"):
                return str(doc["name"]), int(doc["bytes"])
        return None

    def claim_space(self) -> SpaceCheck | None:
        """Room in the claim for the next backup (``core.backup.claim_space``)."""
        capacity = self.claim_capacity()
        if capacity is None:
            return None
        return claim_space(capacity, self.env.backups.keep, self.newest_backup())

    # -- the three commands -----------------------------------------------------------------
    def backup(
        self,
        timeout: float,
        on_progress: Callable[[str], None] | None = None,
        *,
        force: bool = False,
    ) -> JobRun:
        """One backup now (``tradewise-db-backup``); ``GoalMissedError`` when the Job failed.

        First (unless ``force``) the claim's room: too small is ``BadInputError``, no Job."""
        if not force:
            self.cronjob(BACKUP_CRONJOB)
            refuse_claim_space(self.claim_space(), self.env.name, CLAIM)
        run = self.run(BACKUP_CRONJOB, timeout, on_progress=on_progress)
        if not run.ok:
            raise GoalMissedError(f"backup Job {run.job} failed: {run.failure()}")
        return run

    def verify(
        self,
        name: str | None,
        timeout: float,
        on_progress: Callable[[str], None] | None = None,
    ) -> JobRun:
        """Verify ``name`` (default: the newest dump) now (``tradewise-db-verify``).

        A failed Job is returned (the caller exits 1 naming why); a backup the claim does not
        hold is ``BadInputError``.
        """
        overrides = {"BACKUP": check_dump_name(name)} if name else None
        run = self.run(VERIFY_CRONJOB, timeout, env=overrides, on_progress=on_progress)
        if not run.ok and run.result and run.result.get("step") == "find the backup":
            lines = [ln for ln in run.log if ln.startswith("no backup")]
            said = lines[-1] if lines else run.failure()
            raise BadInputError(f"{said}: see `tradewise db backups --env {self.env.name}`")
        return run

    def index(
        self, timeout: float, on_progress: Callable[[str], None] | None = None
    ) -> list[dict[str, Any]]:
        """The claim's dumps, oldest first, with their verification marks (a short Job)."""
        run = self.run(
            VERIFY_CRONJOB,
            timeout,
            purpose="list",
            command=["sh", "-c", LIST_SCRIPT],
            on_progress=on_progress,
        )
        if not run.ok:
            raise GoalMissedError(f"listing Job {run.job} failed: {run.failure()}")
        if run.result is None or not isinstance(run.result.get("backups"), list):
            raise GoalMissedError(
                f"listing Job {run.job} printed no index (pod {run.pod or 'not found'})"
            )
        return [dict(b) for b in run.result["backups"] if isinstance(b, dict)]

    # -- restore ------------------------------------------------------------------------------
    def held_workloads(self) -> list[Held]:
        """The API, worker and precompute Deployments (every blue-green slot), their replicas
        now and their HPAs' floors: what a restore scales to 0 and back."""
        deployments = self.gw.list("Deployment", PART_OF, namespace=self.namespace)
        hpas = self.gw.list("HorizontalPodAutoscaler", PART_OF, namespace=self.namespace)
        floors = {
            (h.get("spec") or {}).get("scaleTargetRef", {}).get("name"): (h.get("spec") or {}).get(
                "minReplicas", 1
            )
            for h in hpas
        }
        held = []
        for d in sorted(deployments, key=lambda o: o["metadata"]["name"]):
            labels = d["metadata"].get("labels") or {}
            if labels.get(COMPONENT) not in HELD_COMPONENTS:
                continue
            name = d["metadata"]["name"]
            replicas = int((d.get("spec") or {}).get("replicas", 1) or 0)
            held.append(Held(name, replicas, floors.get(name)))
        return held

    def restore(
        self,
        name: str,
        timeout: float,
        ingress: Callable[[bool], dict[str, Any]],
        on_progress: Callable[[str], None] | None = None,
    ) -> RestoreOutcome:
        """Restore dump ``name`` over the live database, the service held meanwhile.

        Checks first (changing nothing): the name, the CronJob, the dump in the claim (a listing
        Job), the maintenance page. Then: maintenance on (``ingress(True)``, unless it was),
        the API and workers scaled to 0 and their pods gone (replicas recorded), a Job from the
        backup CronJob running ``RESTORE_SCRIPT`` (``pg_restore --single-transaction``), then
        replicas back and maintenance off. Any failure puts replicas and maintenance back and
        raises ``GoalMissedError`` saying what state the database is in.
        """
        from tradewise_ops.adapters.live import maintenance_is_on, maintenance_page_deployed

        say = on_progress or (lambda _msg: None)
        check_dump_name(name)
        self.cronjob(BACKUP_CRONJOB)
        names = [b.get("name") for b in self.index(min(timeout, 300.0), on_progress=say)]
        if name not in names:
            raise BadInputError(
                f"no backup {name} in the claim tradewise-backups: see `tradewise db backups "
                f"--env {self.env.name}`"
            )
        if not maintenance_page_deployed(self.gw):
            raise BadInputError(
                f"the maintenance page is not deployed in {self.env.name}: run "
                f"`tradewise deploy {self.env.name}` first (nothing changed)"
            )
        outcome = RestoreOutcome(name, maintenance_was_on=maintenance_is_on(self.gw))
        outcome.ingress_off = ingress(False)
        outcome.held = self.held_workloads()
        db_state = "the database was not touched"
        try:
            if not outcome.maintenance_was_on:
                self.gw.apply(ingress(True))
                say("maintenance on: the Ingress points at the maintenance page")
            for h in outcome.held:
                self.gw.scale("Deployment", h.name, 0, namespace=self.namespace)
            say("held: " + ", ".join(f"{h.name} ({h.replicas} -> 0)" for h in outcome.held))
            self._wait_drained(outcome.held, min(timeout, 300.0))
            db_state = (
                "the restore Job may still run: the database is as it was until its one "
                "transaction commits, then the backup's"
            )
            run = self.run(
                BACKUP_CRONJOB,
                timeout,
                purpose="restore",
                env={"BACKUP": name},
                command=["sh", "-c", RESTORE_SCRIPT],
                backoff_limit=0,
                on_progress=say,
            )
            outcome.run = run
            if not run.ok:
                db_state = "pg_restore ran in one transaction: the database is as it was"
                raise GoalMissedError(f"restore Job {run.job} failed: {run.failure()}")
            db_state = f"the database holds {name}"
        except TradewiseError as exc:
            problems = self._put_back(outcome, say)
            raise GoalMissedError(
                f"restore of {name} stopped: {exc.message}; {db_state}; "
                + ("; ".join(problems) if problems else "replicas and maintenance are back")
            ) from exc
        problems = self._put_back(outcome, say)
        if problems:
            raise GoalMissedError(f"{name} restored, but " + "; ".join(problems))
        return outcome

    def _wait_drained(self, held: Sequence[Held], timeout: float) -> None:
        """Until the held Deployments run no pod (``status.replicas`` 0), or ``GoalMissedError``."""
        deadline = time.monotonic() + timeout
        while True:
            left = []
            for h in held:
                obj = self.gw.get("Deployment", h.name, namespace=self.namespace)
                if int((obj.get("status") or {}).get("replicas") or 0):
                    left.append(h.name)
            if not left:
                return
            if time.monotonic() > deadline:
                raise GoalMissedError(f"pods still run after scaling to 0: {', '.join(left)}")
            time.sleep(0.2)

    def _put_back(self, outcome: RestoreOutcome, say: Callable[[str], None]) -> list[str]:
        """Replicas back to what they were, maintenance off (unless it was on): what failed."""
        problems = []
        for h in outcome.held:
            try:
                self.gw.scale("Deployment", h.name, h.replicas, namespace=self.namespace)
            except TradewiseError as exc:
                problems.append(f"{h.name} not scaled back to {h.replicas}: {exc.message}")
        if outcome.held:
            say("back: " + ", ".join(f"{h.name} {h.replicas}" for h in outcome.held))
        if not outcome.maintenance_was_on and outcome.ingress_off is not None:
            try:
                self.gw.apply(outcome.ingress_off)
                say("maintenance off: the Ingress points at the API")
            except TradewiseError as exc:
                problems.append(f"maintenance is still on: {exc.message}")
        return problems


@dataclass(frozen=True)
class Held:
    """A Deployment held during a restore: its replicas before, and its HPA's floor."""

    name: str
    replicas: int
    hpa_min: int | None = None


@dataclass
class RestoreOutcome:
    """What a restore did: the Deployments held and given back, the restore Job."""

    name: str
    maintenance_was_on: bool = False
    held: list[Held] = field(default_factory=list)
    run: JobRun | None = None
    ingress_off: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "maintenance_was_on": self.maintenance_was_on,
            "held": [
                {"deployment": h.name, "replicas": h.replicas, "hpa_min": h.hpa_min}
                for h in self.held
            ],
            "job": self.run.to_dict() if self.run else None,
        }
