"""Run the in-cluster backup CronJobs now: a Job from a CronJob's template, watched, its log read.

``tradewise db backup|verify|backups --env E`` create a Job from ``tradewise-db-backup`` or
``tradewise-db-verify`` (``core.backup.manual_job``: what ``kubectl create job --from=cronjob/``
makes), watch it until it succeeds or fails (bounded by a timeout; a Job still running then is
left running and named), and read the last JSON line its pod printed (``core.backup.result_line``)
through the gateway's pod-log call. Nothing else in the cluster changes.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tradewise_ops.core.backup import (
    BACKUP_CRONJOB,
    JOB_NAME_LABEL,
    LIST_SCRIPT,
    VERIFY_CRONJOB,
    check_dump_name,
    job_state,
    manual_job,
    require_enabled,
    result_line,
)
from tradewise_ops.core.units import format_duration
from tradewise_ops.errors import BadInputError, GoalMissedError, TradewiseError, UnreachableError

if TYPE_CHECKING:
    from tradewise_ops.adapters.kube import KubeGateway
    from tradewise_ops.core.config import Environment

LOG_TAIL = 200


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

    # -- the three commands -----------------------------------------------------------------
    def backup(self, timeout: float, on_progress: Callable[[str], None] | None = None) -> JobRun:
        """One backup now (``tradewise-db-backup``); ``GoalMissedError`` when the Job failed."""
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

    def list(
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
