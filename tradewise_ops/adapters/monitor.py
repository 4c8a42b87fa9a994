"""Watching a namespace (or the local stack) into a monitoring timeline.

``ClusterWatcher`` composes the gateway's watches (``KubeGateway.watch``: one connection per kind,
resumed from the last resourceVersion when dropped) of HPAs, Deployments, Pods and Events; it never
polls the Kubernetes API. ``LocalWatcher`` samples the local stack's process counts and scrapes the
app's ``/metrics`` (metrics scraping, by plain HTTP). Both feed a ``MonitorSession``: the
timeline builder behind a lock (a load test adds its samples from another thread) and the
``--record`` file, written a line per record and flushed, so an interrupted run leaves it whole.

``BackgroundMonitor`` is one monitoring run of an environment (the right watcher, its session, its
connections) and its summary as data (``summary``: the analysis, the tables, the HTML report);
``LoadMonitor`` runs one beside a load test and puts the load's intervals on the same time axis.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

from tradewise_ops.core.timeline import (
    WATCHED_KINDS,
    AppScrape,
    ClusterView,
    EventRecord,
    ProcessSample,
    Record,
    TimelineBuilder,
    WarningRecord,
    app_load_sample,
    record_to_json,
)
from tradewise_ops.errors import BadInputError, TradewiseError, UnreachableError

if TYPE_CHECKING:
    from tradewise_ops.core.config import Environment, Slo

Listener = Callable[[list[Record]], None]
# after the load stops, watch a little longer: pods asked for during the load come up after it
SETTLE_SECONDS = 2.0


class Messages(Protocol):
    """Where a monitoring run says what it sees (the CLI's ``Terminal`` is one)."""

    def info(self, message: str) -> None: ...
    def step(self, message: str) -> None: ...
    def warn(self, message: str) -> None: ...
    def debug(self, message: str) -> None: ...


class MonitorSession:
    """One monitoring run's timeline: thread-safe, optionally recorded as JSON lines."""

    def __init__(
        self,
        record_path: str | Path | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.builder = TimelineBuilder()
        self.clock = clock
        self.lock = threading.RLock()
        self.started = clock()
        self.listeners: list[Listener] = []
        self._file: IO[str] | None = None
        self.record_path = Path(record_path) if record_path else None
        if self.record_path is not None:
            try:
                self._file = self.record_path.open("w", encoding="utf-8")
            except OSError as exc:
                raise BadInputError(
                    f"cannot write the record file {self.record_path}: {exc.strerror}"
                ) from None

    def observe(
        self, kind: str, event_type: str, obj: dict[str, Any], listed: bool = False
    ) -> list[Record]:
        """Fold a watch event in (seen now)."""
        with self.lock:
            added = self.builder.observe(kind, event_type, obj, self.clock(), listed=listed)
            self._emit(added)
        return added

    def add(self, record: Record) -> list[Record]:
        """Add a sample (load, processes)."""
        with self.lock:
            added = self.builder.add(record)
            self._emit(added)
        return added

    def snapshot(self) -> tuple[ClusterView, list[EventRecord], list[WarningRecord]]:
        """The current view, events and warnings (copies, safe to read outside the lock)."""
        with self.lock:
            view = self.builder.view.copy()
            return view, list(self.builder.events), list(self.builder.warnings)

    def records(self) -> list[Record]:
        """Every record so far."""
        with self.lock:
            return list(self.builder.records)

    def close(self) -> None:
        """Close the record file."""
        with self.lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def _emit(self, added: list[Record]) -> None:
        if not added:
            return
        if self._file is not None:
            for record in added:
                self._file.write(json.dumps(record_to_json(record)) + "\n")
            self._file.flush()
        for listener in self.listeners:
            listener(added)


class _Background(ABC):
    """``start``/``stop`` for a watcher whose ``run(seconds, stop)`` blocks: run it in a thread."""

    error: BaseException | None
    _thread: threading.Thread | None
    _stop: threading.Event

    @abstractmethod
    def run(self, seconds: float, stop: threading.Event | None = None) -> None:
        """Watch or sample for ``seconds``, or until ``stop`` is set."""

    def start(self, seconds: float) -> None:
        """Run in a background thread (an error is kept in ``error``) until ``stop()``."""
        self._stop.clear()

        def target() -> None:
            try:
                self.run(seconds, self._stop)
            except BaseException as exc:  # noqa: BLE001 - reported by the caller
                self.error = exc

        self._thread = threading.Thread(target=target, name="tradewise-monitor", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the background run and wait for it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None


class ClusterWatcher(_Background):
    """Watches a namespace's HPAs, Deployments, Pods and Events through the gateway."""

    def __init__(self, gateway: Any, session: MonitorSession) -> None:
        self.gateway = gateway
        self.session = session
        self.error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._objects: dict[tuple[str, str], dict[str, Any]] = {}  # the last of each object
        self._relisting: set[str] = set()  # kinds being re-listed after a 410 Gone

    def prime(self) -> None:
        """List what exists now, Events last (as history: they start no scale-up).

        Raises the gateway's ``UnreachableError`` (exit 3) when the cluster does not answer.
        """
        for kind in WATCHED_KINDS:
            items, _ = self.gateway.list_with_version(kind)
            for obj in items:
                self._remember(kind, "ADDED", obj)
                self.session.observe(kind, "ADDED", obj, listed=kind == "Event")

    def _remember(self, kind: str, event_type: str, obj: dict[str, Any]) -> None:
        name = str((obj.get("metadata") or {}).get("name", ""))
        if kind == "Event":
            return
        if event_type == "DELETED":
            self._objects.pop((kind, name), None)
        else:
            self._objects[(kind, name)] = obj

    def _handle(self, kind: str, event_type: str, obj: dict[str, Any]) -> None:
        """One watch event.

        After a 410 Gone the gateway re-lists a kind and sends it as SYNC events; what was
        deleted while the watch was away is in no event. So, at the first SYNC of a kind, one list
        of that kind says which of the objects we know are gone.
        """
        if event_type == "SYNC":
            if kind not in self._relisting and kind != "Event":
                self._relisting.add(kind)
                self._drop_vanished(kind)
        else:
            self._relisting.discard(kind)
        self._remember(kind, event_type, obj)
        self.session.observe(kind, "MODIFIED" if event_type == "SYNC" else event_type, obj)

    def _drop_vanished(self, kind: str) -> None:
        names = {str((o.get("metadata") or {}).get("name", "")) for o in self.gateway.list(kind)}
        for (k, name), obj in list(self._objects.items()):
            if k == kind and name not in names:
                del self._objects[(k, name)]
                self.session.observe(kind, "DELETED", obj)

    def run(self, seconds: float, stop: threading.Event | None = None) -> None:
        """Watch until ``seconds`` have passed or ``stop`` is set; Ctrl-C propagates.

        The gateway's watch lists again (unchanged objects add nothing) and then follows every
        change; a dropped connection resumes from the last resourceVersion.
        """
        stop = stop or self._stop
        deadline = time.monotonic() + seconds
        while not stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0.05:
                return
            for event in self.gateway.watch(WATCHED_KINDS, None, remaining, stop=stop):
                self._handle(event.kind, event.type, event.obj)
                if time.monotonic() >= deadline:
                    return


class LocalWatcher(_Background):
    """Samples the local stack: processes per component and the app's ``/metrics``.

    Running processes come from the stack's own records (``counts``: its state file and process
    table), the wanted ones from what it should run (``wanted``: what ``local up`` started, the
    last ``local scale`` or ``tradewise scale``), read again at every sample, so a scale made
    from another terminal while this runs shows as a scale-up or a scale-down. ``wanted``
    given here is used for a stack that cannot say (or none).
    """

    def __init__(
        self,
        stack: Any,
        session: MonitorSession,
        url: str,
        wanted: dict[str, int] | None = None,
        interval: float = 1.0,
        timeout: float = 3.0,
    ) -> None:
        self.stack = stack
        self.session = session
        self.url = url.rstrip("/")
        self.wanted = wanted or {}
        self.interval = interval
        self.timeout = timeout
        self._previous: AppScrape | None = None
        self._app_down = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def prime(self) -> None:
        """The first sample; ``UnreachableError`` (exit 3) when the app does not answer."""
        self.sample(first=True)

    def sample(self, first: bool = False) -> None:
        """Count processes and scrape the app once."""
        counts = self.stack.counts() if self.stack is not None else {}
        wanted = dict(self.wanted)
        if self.stack is not None and hasattr(self.stack, "wanted"):
            wanted.update(self.stack.wanted())
        now = self.session.clock()
        for component, running in sorted(counts.items()):
            self.session.add(
                ProcessSample(
                    t=now,
                    component=component,
                    running=int(running),
                    wanted=wanted.get(component),
                )
            )
        try:
            scrape = scrape_app(self.url, self.session.clock(), self.timeout)
        except UnreachableError as exc:
            if first:
                raise
            if not self._app_down:
                self._app_down = True
                self.session.add(WarningRecord(t=now, code="app-down", message=exc.message))
            return
        self._app_down = False
        self.session.add(app_load_sample(self._previous, scrape))
        self._previous = scrape

    def run(self, seconds: float, stop: threading.Event | None = None) -> None:
        """Sample every ``interval`` until ``seconds`` have passed or ``stop`` is set."""
        stop = stop or self._stop
        deadline = time.monotonic() + seconds
        while not stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            if stop.wait(min(self.interval, remaining)):
                return
            self.sample()


def scrape_app(url: str, t: float, timeout: float = 3.0) -> AppScrape:
    """``GET {url}/metrics``: requests, 5xx answers, the latency histogram and the queue length."""
    target = f"{url.rstrip('/')}/metrics"
    try:
        with urllib.request.urlopen(target, timeout=timeout) as response:  # noqa: S310
            text = response.read().decode("utf-8", "replace")
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise UnreachableError(
            f"the app's metrics at {target} do not answer: {reason}",
            hint="is the stack up? `tradewise local up`",
        ) from None
    return parse_metrics(text, t)


def parse_metrics(text: str, t: float) -> AppScrape:
    """An ``AppScrape`` from the Prometheus text exposition of the app."""
    from prometheus_client.parser import text_string_to_metric_families

    requests = errors = 0.0
    buckets: dict[float, float] = {}
    queue: int | None = None
    with contextlib.suppress(ValueError):
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "flask_request_total":
                    requests += sample.value
                    if str(sample.labels.get("status", "")).startswith("5"):
                        errors += sample.value
                elif sample.name == "flask_request_duration_seconds_bucket":
                    bound = float(sample.labels["le"])
                    buckets[bound] = buckets.get(bound, 0.0) + sample.value
                elif sample.name == "tradewise_task_queue_length" and sample.value >= 0:
                    queue = int(sample.value)
    return AppScrape(
        t=t, requests=requests, errors=errors, buckets=tuple(sorted(buckets.items())), queue=queue
    )


def line_listener(messages: Messages, start: ClusterView | None = None) -> Listener:
    """A session listener saying each notable change, warning and event, a line each.

    What a run whose stderr is not a terminal shows instead of the live table: an HPA's or a
    Deployment's replicas, a local component's processes, a pod's restart
    (``core.monitor_report.change_line``), notable Events and the seed's alerts. ``start``: the
    view the run began from (after ``prime``), so that only what changes since is said. A metric
    that moves while the replicas stay is a ``debug`` line (``--verbose``).
    """
    from tradewise_ops.core.monitor_report import change_line, hpa_line
    from tradewise_ops.core.timeline import HpaSample

    last: dict[tuple[str, str], Record] = {}
    if start is not None:
        for table in (start.hpas, start.deployments, start.pods, start.processes):
            for key, sample in table.items():
                last[(sample.type, key)] = sample

    def lines(records: list[Record]) -> None:
        for r in records:
            if isinstance(r, EventRecord):
                if r.notable and not r.listed:
                    messages.info(f"event {r.reason} {r.object_kind}/{r.object_name}: {r.message}")
                continue
            if isinstance(r, WarningRecord):
                messages.warn(r.message)
                continue
            key = (r.type, _object_key(r))
            if not key[1]:
                continue
            before = last.get(key)
            last[key] = r
            line = change_line(before, r)
            if line is not None:
                messages.info(line)
            elif isinstance(r, HpaSample) and not r.deleted:
                messages.debug(hpa_line(r))

    return lines


def _object_key(record: Record) -> str:
    """Which object a sample is of (empty for load samples: not an object)."""
    if isinstance(record, ProcessSample):
        return record.component
    return str(getattr(record, "name", "") or "")


@dataclass
class MonitorSummary:
    """The end of a monitoring run: ``data`` (the ``-o json`` document), ``tables`` as data
    (``columns``, ``rows``, ``title``; empty ones left out) and the verdict's ``sentence``."""

    data: dict[str, Any]
    tables: list[dict[str, Any]]
    sentence: str

    @property
    def failed(self) -> bool:
        """True when a scale-up or a recovery missed its SLO."""
        return self.data["verdict"] == "fail"


class BackgroundMonitor:
    """A monitoring session for an environment: the cluster's watches, or the local stack."""

    def __init__(self, env: Environment, record: Path | None) -> None:
        self.env = env
        self.started = time.time()
        self.gateway: Any = None
        self.session = MonitorSession(record)
        self.watcher: ClusterWatcher | LocalWatcher
        try:
            if env.is_kubernetes:
                from tradewise_ops.adapters.kube import KubeGateway

                self.gateway = KubeGateway.from_environment(env)
                self.watcher = ClusterWatcher(self.gateway, self.session)
                self.where = f"namespace {self.gateway.namespace} at {self.gateway.where}"
            else:
                from tradewise_ops.adapters.local import stack_for

                stack = stack_for(env)
                url = env.target_url or stack.url
                self.watcher = LocalWatcher(stack, self.session, url)
                self.where = f"the {env.name} stack at {url}"
        except BaseException:
            self.session.close()
            raise

    def prime(self) -> None:
        """The current state; ``UnreachableError`` when there is nothing to watch."""
        self.watcher.prime()

    def run(self, seconds: float) -> None:
        """Watch in this thread for ``seconds`` (Ctrl-C propagates)."""
        self.watcher.run(seconds)

    def start(self, seconds: float) -> None:
        """Watch in a background thread."""
        self.watcher.start(seconds)

    def stop(self) -> None:
        """Stop watching; re-raise what the background watch failed with."""
        self.watcher.stop()
        if self.watcher.error is not None:
            raise self.watcher.error

    def close(self) -> None:
        """Close the record file and the connections."""
        self.session.close()
        if self.gateway is not None:
            self.gateway.close()

    def summary(
        self,
        slo: Slo,
        *,
        interrupted: bool,
        report: Path | None = None,
        load: dict[str, Any] | None = None,
        title: str | None = None,
    ) -> MonitorSummary:
        """The analysis of the timeline so far, as data and tables.

        Writes the HTML report (replicas, events and, with ``load``, the load over time) to
        ``report`` when given; ``BadInputError`` when it cannot be written.
        """
        from tradewise_ops.core.monitor_report import (
            combined_html,
            combined_report,
            deployment_rows,
            event_data,
            event_rows,
            hpa_rows,
            process_rows,
            state_data,
            summary_tables,
            verdict_sentence,
        )
        from tradewise_ops.core.timeline import analyze

        records = self.session.records()
        analysis = analyze(records, slo, end=time.time())
        sentence = verdict_sentence(analysis, slo)
        view, events, _ = self.session.snapshot()
        news = [e for e in events if e.notable and not e.listed]
        record_path = self.session.record_path
        data: dict[str, Any] = {
            "environment": self.env.name,
            "watched": self.where,
            "interrupted": interrupted,
            "records": len(records),
            "record_file": str(record_path) if record_path else None,
            "sentence": sentence,
            **analysis.to_dict(),
            "state": state_data(view),
            "events": event_data(news),
        }
        if report is not None:
            doc = combined_report(
                records,
                analysis,
                slo,
                title=title or f"tradewise monitor: {self.env.name}",
                load=load,
            )
            try:
                report.write_text(combined_html(doc), encoding="utf-8")
            except OSError as exc:
                raise BadInputError(f"cannot write the report {report}: {exc.strerror}") from None
            data["report_file"] = str(report)
        tables = summary_tables(analysis)
        if view.processes:
            tables.append(process_rows(view))
        else:
            tables += [hpa_rows(view), deployment_rows(view)]
        tables.append(event_rows(news, self.session.started))
        return MonitorSummary(data, [t for t in tables if t["rows"]], sentence)


class LoadMonitor:
    """Watches the environment while a load test runs; joins both on one time axis at the end.

    ``on_interval`` takes the load runner's intervals; ``finish`` stops watching, writes
    ``monitor.html`` (load and replicas over time, scale-up latencies) and ``timeline.jsonl``
    into the load test's report directory, and keeps the scaling summary (``summary``).
    """

    def __init__(
        self,
        env: Environment,
        slo: Slo,
        duration: float,
        report_dir: Path | None,
        messages: Messages,
    ) -> None:
        self.slo = slo
        self.report_dir = report_dir
        self.messages = messages
        self.data: dict[str, Any] = {}
        self.summary: MonitorSummary | None = None
        record = report_dir / "timeline.jsonl" if report_dir is not None else None
        self.mon = BackgroundMonitor(env, record)
        try:
            self.mon.prime()
            self.mon.session.listeners.append(
                line_listener(messages, self.mon.session.snapshot()[0])
            )
            # a generous bound: finish() stops it long before
            self.mon.start(duration * 2 + 600)
        except BaseException:
            self.mon.close()
            raise
        messages.step(f"monitoring {self.mon.where} during the load")

    def on_interval(self, interval: Any) -> None:
        """Add a load-test interval (``core.loadreport.Interval``) to the timeline."""
        from tradewise_ops.core.timeline import LoadSample

        row = interval.row()
        self.mon.session.add(
            LoadSample(
                t=time.time(),
                rps=row["rps"],
                p95_ms=row["p95_ms"],
                error_rate=row["error_rate"],
                users=row["users"],
                source="load-test",
            )
        )

    def abandon(self) -> None:
        """Stop watching and close, keeping nothing (the load test failed)."""
        self.mon.watcher.stop()
        self.mon.close()

    def finish(self, load: dict[str, Any], interrupted: bool) -> dict[str, Any]:
        """Stop watching; the scaling summary as data (check ``breached`` for a missed SLO)."""
        try:
            if not interrupted:
                time.sleep(SETTLE_SECONDS)
            self.mon.stop()
        except TradewiseError as exc:  # the load test's result still counts
            self.messages.warn(f"monitoring stopped before the load did: {exc.message}")
            interrupted = True
        finally:
            self.mon.close()
        report = self.report_dir / "monitor.html" if self.report_dir is not None else None
        kind = load.get("kind", "load-test")
        self.summary = self.mon.summary(
            self.slo,
            interrupted=interrupted,
            report=report,
            load=load,
            title=f"tradewise {kind} with monitoring: {self.mon.env.name}",
        )
        self.data = self.summary.data
        return self.data

    @property
    def breached(self) -> bool:
        """True when a scale-up or a recovery missed its SLO (after ``finish``)."""
        return self.summary is not None and self.summary.failed
