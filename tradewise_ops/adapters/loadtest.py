"""The load generator: Locust in a child process, its intervals streamed back (``LoadRunner``).

``import locust`` monkey-patches a process with gevent, so Locust never runs in the CLI's own
process: ``LoadRunner.run`` starts ``python -m tradewise_ops.adapters._locust_child``, hands it
the spec on stdin and reads one JSON line per interval from its stdout. This module itself
imports no Locust and no gevent.

Stopping: ``LoadRunner.stop()`` (or Ctrl-C while ``run`` is in the main thread, or a
``KeyboardInterrupt`` such as the CLI's ``Terminated`` on SIGTERM) sends SIGTERM to the generator,
which stops every user at once and still reports the last partial interval and its totals;
``run`` then returns a result marked ``aborted``. A second one kills it.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any, Protocol

from tradewise_ops.core.loadplan import LoadSpec
from tradewise_ops.core.loadreport import Interval
from tradewise_ops.errors import TradewiseError, UnreachableError

CHILD_MODULE = "tradewise_ops.adapters._locust_child"


class LoadGeneratorError(TradewiseError):
    """The load generator failed to start or died (exit 1); the message carries its last words."""

    exit_code = 1


@dataclass
class RunResult:
    """What the generator reported: the intervals, how it stopped, Locust's own totals."""

    started_at: float
    intervals: list[Interval]
    stopped_by: str
    aborted: bool
    errors: list[dict[str, Any]] = field(default_factory=list)
    locust_requests: int = 0
    locust_failures: int = 0
    cpu_seconds: float = 0.0
    worker_cpu_seconds: float = 0.0
    ran_seconds: float = 0.0

    def generator(self) -> dict[str, Any]:
        """Facts about the generator for the report (CPU used, Locust's own counts)."""
        seconds = max(self.ran_seconds, 1e-9)
        cpu = self.cpu_seconds + self.worker_cpu_seconds
        return {
            "cpu_seconds": round(cpu, 3),
            "cpu_percent": round(100.0 * cpu / seconds, 1),
            "locust_requests": self.locust_requests,
            "locust_failures": self.locust_failures,
        }


def probe(url: str, timeout: float = 5.0, insecure: bool = False) -> int:
    """GET ``url`` once; the HTTP status (any status means the target answers).

    A refused connection, a timeout, a DNS or TLS failure raise ``UnreachableError`` naming the
    URL. Runs before any load is sent.
    """
    context = ssl._create_unverified_context() if insecure else None
    headers = {"User-Agent": "tradewise-preflight"}
    parts = urllib.parse.urlsplit(url)
    if parts.username is not None:  # user:password@ is basic auth (as Locust sends it), not a host
        pair = (
            f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
        )
        headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
        url = urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise UnreachableError(
            f"target {url} does not answer: {reason}",
            hint="check --host (or the environment's url) and that the service is running",
        ) from None


class LoadRunner:
    """Runs a ``LoadSpec`` with Locust in a child process and streams its intervals back."""

    def __init__(self, python: str | None = None, grace_seconds: float = 30.0) -> None:
        self.python = python or sys.executable
        self.grace_seconds = grace_seconds
        self._proc: subprocess.Popen[bytes] | None = None
        self._stop_requested = False

    def command(self) -> list[str]:
        """The child's command line."""
        return [self.python, "-m", CHILD_MODULE]

    @property
    def stopped(self) -> bool:
        """Whether ``stop`` (or Ctrl-C) stopped the last run."""
        return self._stop_requested

    def stop(self) -> None:
        """Stop the load at once (SIGTERM to the generator); ``run`` returns what ran."""
        self._stop_requested = True
        proc = self._proc
        if proc is not None and proc.poll() is None:
            try:
                proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass

    def run_steps(
        self,
        spec: LoadSpec,
        on_step: Callable[[str, list[Interval]], bool],
        on_interval: Callable[[Interval], None] | None = None,
    ) -> RunResult:
        """Run a staged ``spec`` step by step; ``on_step`` judges each stage once it has ended.

        ``on_step(stage, intervals)`` gets a stage's intervals when the first interval of the
        next stage arrives (and the last stage's at the end of the run); when it returns False,
        the generator stops there: the result says ``stopped_by="step"`` and is not aborted.
        ``tradewise capacity`` steps the load up this way until the SLO breaks.
        """
        current: list[Interval] = []
        halted = [False]

        def take(interval: Interval) -> None:
            if on_interval is not None:
                on_interval(interval)
            if halted[0]:
                return
            if current and interval.stage != current[0].stage:
                finished = list(current)
                current.clear()
                if not on_step(finished[0].stage or "", finished):
                    halted[0] = True
                    self._halt()
                    return
            current.append(interval)

        result = self.run(spec, on_interval=take)
        if halted[0]:
            result.stopped_by = "step"
        elif current and not result.aborted:
            on_step(current[0].stage or "", list(current))
        return result

    def _halt(self) -> None:
        """Stop the generator like ``stop`` does, without marking the run aborted."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            try:
                proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass

    def run(
        self,
        spec: LoadSpec,
        on_interval: Callable[[Interval], None] | None = None,
        on_start: Callable[[int], None] | None = None,
    ) -> RunResult:
        """Run ``spec`` to its end (or until stopped) and return the result.

        ``on_interval`` is called with each ``Interval`` as it arrives (about once a second);
        ``on_start`` with the generator's pid once the load starts. Ctrl-C in the main thread
        stops the load and returns a result with ``aborted=True``; a second Ctrl-C kills the
        generator and raises ``KeyboardInterrupt``.
        """
        self._stop_requested = False
        stderr: IO[bytes] = tempfile.TemporaryFile()
        env = dict(os.environ)
        env.setdefault("PYTHONUNBUFFERED", "1")
        proc = subprocess.Popen(
            self.command(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            start_new_session=True,  # Ctrl-C reaches the CLI, which stops the child itself
            env=env,
        )
        self._proc = proc
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write((json.dumps(spec.to_wire()) + "\n").encode())
            proc.stdin.flush()
        except BrokenPipeError:
            pass  # it died at once: its exit code and stderr tell why, below

        interrupts = {"n": 0}
        previous = None
        in_main = threading.current_thread() is threading.main_thread()

        def on_sigint(signum: int, frame: Any) -> None:
            interrupts["n"] += 1
            if interrupts["n"] == 1:
                self.stop()
            else:
                proc.kill()
                raise KeyboardInterrupt

        if in_main:
            previous = signal.signal(signal.SIGINT, on_sigint)
        watchdog = threading.Timer(
            spec.duration_seconds + self.grace_seconds + 30 * max(spec.workers, 1), proc.kill
        )
        watchdog.daemon = True
        watchdog.start()
        intervals: list[Interval] = []
        started_at = time.time()
        done: dict[str, Any] | None = None
        error: str | None = None
        try:
            while True:
                try:
                    for raw in proc.stdout:
                        try:
                            msg = json.loads(raw)
                        except ValueError:
                            continue
                        kind = msg.get("type")
                        if kind == "started":
                            started_at = float(msg.get("t0", started_at))
                            if on_start is not None:
                                on_start(proc.pid)
                        elif kind == "interval":
                            interval = Interval.from_message(msg)
                            intervals.append(interval)
                            if on_interval is not None:
                                on_interval(interval)
                        elif kind == "done":
                            done = msg
                        elif kind == "error":
                            error = str(msg.get("message"))
                    break
                except KeyboardInterrupt:
                    # raised here rather than held by ``on_sigint``: SIGTERM (the CLI's handler
                    # raises ``errors.Terminated``), or the second Ctrl-C. The first stops the
                    # load and keeps reading its last interval and totals, as Ctrl-C does.
                    interrupts["n"] += 1
                    if interrupts["n"] > 1:
                        proc.kill()
                        raise
                    self.stop()
            proc.wait(timeout=10)
        finally:
            watchdog.cancel()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if in_main:
                signal.signal(signal.SIGINT, previous)
            self._proc = None
            try:
                proc.stdin.close()
            except OSError:
                pass
        aborted = self._stop_requested or interrupts["n"] > 0
        if done is None:
            stderr.seek(0)
            tail = stderr.read().decode(errors="replace").strip().splitlines()[-8:]
            stderr.close()
            if aborted and intervals:
                return RunResult(started_at, intervals, "signal", True)
            reason = error or f"the load generator exited with code {proc.returncode}"
            raise LoadGeneratorError(
                reason + ("\n" + "\n".join(tail) if tail else ""),
                hint="run with TRADEWISE_LOCUST_LOG=INFO for Locust's own log",
            )
        stderr.close()
        return RunResult(
            started_at=started_at,
            intervals=intervals,
            stopped_by=str(done.get("stopped_by", "duration")),
            aborted=aborted,
            errors=list(done.get("errors", [])),
            locust_requests=int(done.get("locust_requests", 0)),
            locust_failures=int(done.get("locust_failures", 0)),
            cpu_seconds=float(done.get("cpu_seconds", 0.0)),
            worker_cpu_seconds=float(done.get("worker_cpu_seconds", 0.0)),
            ran_seconds=float(done.get("ran_seconds", 0.0)),
        )


class ClusterGateway(Protocol):
    """What ``run_in_cluster`` needs of ``adapters.kube.KubeGateway``."""

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]: ...

    def get(self, kind: str, name: str) -> dict[str, Any]: ...

    def list(self, kind: str, label_selector: str | None = None) -> list[dict[str, Any]]: ...

    def delete(self, kind: str, name: str) -> bool: ...


@dataclass
class ClusterRun:
    """An in-cluster run: where it ran and the master's summary (``compact_summary``)."""

    run_id: str
    namespace: str
    master_job: str
    worker_job: str
    summary: dict[str, Any]
    aborted: bool = False


def run_in_cluster(
    gateway: ClusterGateway,
    objects: list[dict[str, Any]],
    *,
    timeout_seconds: float,
    poll_seconds: float = 2.0,
    on_progress: Callable[[dict[str, Any], dict[str, Any]], None] | None = None,
) -> ClusterRun:
    """Apply the Locust ConfigMap, Service and Jobs, wait for the master Job, read its summary.

    The summary is the master pod's termination message (the generator writes it there at the
    end); the per-interval lines stay in the master's log (``kubectl logs job/NAME``). Ctrl-C
    deletes both Jobs (their pods stop) and returns a run marked ``aborted`` with an empty
    summary. The ConfigMap and Service are deleted at the end; the Jobs stay for their logs
    (``ttlSecondsAfterFinished``).
    """
    jobs = [o for o in objects if o["kind"] == "Job"]
    master = next(o for o in jobs if o["metadata"]["name"].endswith("-master"))
    worker = next(o for o in jobs if o["metadata"]["name"].endswith("-worker"))
    run_id = master["metadata"]["labels"]["tradewise.io/run"]
    namespace = master["metadata"]["namespace"]
    master_name, worker_name = master["metadata"]["name"], worker["metadata"]["name"]
    hint = f"kubectl logs -n {namespace} job/{master_name}"
    for obj in objects:
        gateway.apply(obj)
    deadline = time.monotonic() + timeout_seconds
    try:
        while True:
            status = gateway.get("Job", master_name).get("status") or {}
            if status.get("succeeded"):
                break
            if status.get("failed"):
                raise LoadGeneratorError(f"the Locust master Job {master_name} failed", hint=hint)
            if time.monotonic() > deadline:
                raise LoadGeneratorError(
                    f"the Locust master Job {master_name} did not finish in {timeout_seconds:.0f}s",
                    hint=hint,
                )
            if on_progress is not None:
                workers = gateway.get("Job", worker_name).get("status") or {}
                on_progress(status, workers)
            time.sleep(poll_seconds)
    except KeyboardInterrupt:
        for name in (master_name, worker_name):
            gateway.delete("Job", name)
        _cleanup(gateway, objects)
        return ClusterRun(run_id, namespace, master_name, worker_name, {}, aborted=True)
    selector = f"tradewise.io/run={run_id},tradewise.io/locust-role=master"
    summary: dict[str, Any] | None = None
    for pod in gateway.list("Pod", label_selector=selector):
        for cs in (pod.get("status") or {}).get("containerStatuses") or []:
            message = ((cs.get("state") or {}).get("terminated") or {}).get("message")
            if message:
                try:
                    summary = dict(json.loads(message))
                except ValueError:
                    continue
    _cleanup(gateway, objects)
    if summary is None:
        raise LoadGeneratorError(
            f"the Locust master pod of {master_name} left no summary in its termination message",
            hint=hint,
        )
    return ClusterRun(run_id, namespace, master_name, worker_name, summary)


def _cleanup(gateway: ClusterGateway, objects: list[dict[str, Any]]) -> None:
    for obj in objects:
        if obj["kind"] in ("ConfigMap", "Service"):
            gateway.delete(obj["kind"], obj["metadata"]["name"])
