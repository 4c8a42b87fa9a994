"""Running the stress scenarios: the load, the app's metrics, the monitor, the report files.

Every scenario runs its load through ``LoadRunner`` (Locust in a child process) for at most its
bound, and stops early on Ctrl-C (the runner's own handling) or SIGTERM (``stop_on_sigterm``),
returning what ran so the caller can judge it. ``MetricsScraper`` reads the app's ``/metrics``
by plain HTTP (the environment's own URL: the local stack serves it; a cluster's Ingress does not,
and then the pool figures are missing, which the verdict says). ``DbStress`` samples the
database pools once a second while its load runs.
"""

from __future__ import annotations

import contextlib
import json
import signal
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tradewise_ops.adapters.loadtest import LoadRunner, RunResult, probe
from tradewise_ops.core.loadplan import LoadSpec
from tradewise_ops.core.loadreport import Interval
from tradewise_ops.core.stress import PoolScrape, parse_pool
from tradewise_ops.errors import BadInputError


# --------------------------------------------------------------------------------------------
# shared
# --------------------------------------------------------------------------------------------
class MetricsScraper:
    """``GET {url}/metrics`` by plain HTTP; None when the app does not serve it there."""

    def __init__(self, url: str, timeout: float = 3.0) -> None:
        self.url = url.rstrip("/") + "/metrics"
        self.timeout = timeout

    def text(self) -> str | None:
        """The exposition text, or None (not answered, not 200: not served at this URL)."""
        try:
            with urllib.request.urlopen(self.url, timeout=self.timeout) as response:  # noqa: S310
                if response.status != 200:
                    return None
                return str(response.read().decode("utf-8", "replace"))
        except (urllib.error.URLError, OSError, ValueError):
            return None

    def pool(self) -> PoolScrape | None:
        """The database pool figures now, or None when ``/metrics`` is not served here."""
        now = time.time()
        text = self.text()
        return None if text is None else parse_pool(text, now)


@contextlib.contextmanager
def stop_on_sigterm(stop: Callable[[], None]) -> Iterator[list[bool]]:
    """While inside, SIGTERM calls ``stop`` (once) instead of ending the process.

    Yields a one-item list that becomes ``[True]`` when SIGTERM came. Only the main thread can
    hold a signal; elsewhere this does nothing.
    """
    seen = [False]
    if threading.current_thread() is not threading.main_thread():
        yield seen
        return

    def on_term(signum: int, frame: Any) -> None:
        if not seen[0]:
            seen[0] = True
            stop()

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        yield seen
    finally:
        signal.signal(signal.SIGTERM, previous)


class Periodic:
    """Calls ``fn`` every ``interval`` seconds in a daemon thread until ``stop``."""

    def __init__(self, fn: Callable[[], None], interval: float = 1.0) -> None:
        self.fn = fn
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tradewise-stress", daemon=True)
        self.error: BaseException | None = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.fn()
            except Exception as exc:  # noqa: BLE001 - kept for the caller, sampling goes on
                self.error = exc

    def start(self) -> Periodic:
        """Start calling."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop calling and wait for the thread."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)


def prepare_dir(path: Path) -> None:
    """Create the report directory (``BadInputError`` when it cannot be)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInputError(
            f"--report {path}: cannot create the directory ({exc.strerror})"
        ) from None
    if not path.is_dir():
        raise BadInputError(f"--report {path} is not a directory")


def write_files(path: Path, files: dict[str, str]) -> None:
    """Write each ``name -> text`` into ``path``."""
    for name, text in files.items():
        (path / name).write_text(text, encoding="utf-8")


def json_text(doc: Any) -> str:
    """A JSON document as the report files hold it."""
    return json.dumps(doc, indent=2, default=str) + "\n"


# --------------------------------------------------------------------------------------------
# db
# --------------------------------------------------------------------------------------------
@dataclass
class DbRun:
    """What the db scenario's load and samples produced."""

    result: RunResult
    before: PoolScrape | None
    after: PoolScrape | None
    samples: list[PoolScrape] = field(default_factory=list)
    interrupted: bool = False


class DbStress:
    """The db scenario's side: the pool scrapes around and during the load, the load itself."""

    def __init__(self, target: str, runner: LoadRunner | None = None) -> None:
        self.target = target
        self.runner = runner or LoadRunner()
        self.scraper = MetricsScraper(target)

    def prepare(self) -> PoolScrape | None:
        """Check the target answers (``UnreachableError``, exit 3), then the pools before."""
        probe(self.target + "/api/health")
        return self.scraper.pool()

    def run(
        self,
        spec: LoadSpec,
        before: PoolScrape | None,
        on_interval: Callable[[Interval], None] | None = None,
    ) -> DbRun:
        """Run the load, sampling the pools once a second; Ctrl-C/SIGTERM stop it early."""
        samples: list[PoolScrape] = []

        def sample() -> None:
            scrape = self.scraper.pool()
            if scrape is not None:
                samples.append(scrape)

        sampler = Periodic(sample, 1.0).start() if before is not None else None
        try:
            with stop_on_sigterm(self.runner.stop) as term:
                result = self.runner.run(spec, on_interval=on_interval)
        finally:
            if sampler is not None:
                sampler.stop()
        after = self.scraper.pool() if before is not None else None
        return DbRun(result, before, after, samples, result.aborted or term[0])


# --------------------------------------------------------------------------------------------
# cpu
# --------------------------------------------------------------------------------------------
class LocalCpuSampler:
    """The local stack's API processes sampled as if an HPA watched them.

    Every second: the CPU each gunicorn worker used (``psutil``) as a percentage of the API's
    CPU request (``components.api.resources.requests.cpu``), averaged over the workers and over
    the last ``window`` samples (metrics-server averages too), against the HPA's CPU target; the
    processes running (ready) and wanted (what ``tradewise local scale`` set: desired). They
    join the monitor's timeline as an ``HpaSample`` named ``LOCAL_HPA`` and a
    ``DeploymentSample`` named ``LOCAL_DEPLOYMENT``, so the timeline analysis measures the
    scale-up (trigger -> rescale -> ready) of processes as it does for pods.
    """

    def __init__(self, env: Any, session: Any, stack: Any = None, window: int = 3) -> None:
        from tradewise_ops.adapters.local import LocalStack
        from tradewise_ops.core.units import cpu_millicores

        api = env.components["api"]
        self.stack = stack or LocalStack(env)
        self.session = session
        self.request_cores = (cpu_millicores(api.resources.cpu_request) or 1000) / 1000.0
        self.target = float(api.autoscaling.cpu_percent if api.autoscaling else 70)
        self.floor = int(env.local.api_processes)
        self.ceiling = int(env.max_replicas)
        self.window = window
        self._last: dict[int, tuple[float, float]] = {}  # pid -> (wall, cpu seconds)
        self._recent: list[float] = []
        self._periodic: Periodic | None = None

    def sample(self) -> None:
        """One sample: CPU, running and wanted API processes, into the session."""
        import psutil

        from tradewise_ops.core.stress import CPU_METRIC, LOCAL_DEPLOYMENT, LOCAL_HPA
        from tradewise_ops.core.timeline import DeploymentSample, HpaSample, MetricValue

        master = next((p.pid for p in self.stack.status() if p.component == "api"), None)
        children = []
        if master:
            try:
                children = psutil.Process(master).children()
            except psutil.Error:
                children = []
        now = time.monotonic()
        shares = []
        seen: dict[int, tuple[float, float]] = {}
        for child in children:
            try:
                times = child.cpu_times()
            except psutil.Error:
                continue
            used = times.user + times.system
            seen[child.pid] = (now, used)
            if child.pid in self._last:
                wall, before = self._last[child.pid]
                if now > wall:
                    shares.append((used - before) / (now - wall) / self.request_cores * 100.0)
        self._last = seen
        if shares:
            self._recent = (self._recent + [sum(shares) / len(shares)])[-self.window :]
        value = round(sum(self._recent) / len(self._recent), 1) if self._recent else None
        wanted = int(self.stack.wanted().get("api", self.floor))
        t = self.session.clock()
        cpu = MetricValue(CPU_METRIC, "Resource", value, self.target, "%")
        self.session.add(
            HpaSample(t, LOCAL_HPA, LOCAL_DEPLOYMENT, self.floor, self.ceiling, len(children),
                      wanted, (cpu,))
        )  # fmt: skip
        self.session.add(
            DeploymentSample(t, LOCAL_DEPLOYMENT, wanted, len(children), len(children),
                             len(children))
        )  # fmt: skip

    def start(self) -> LocalCpuSampler:
        """Sample now and then every second in a thread."""
        self.sample()
        self._periodic = Periodic(self.sample, 1.0).start()
        return self

    def stop(self) -> None:
        """Stop sampling."""
        if self._periodic is not None:
            self._periodic.stop()


@dataclass
class CpuRun:
    """What the cpu scenario produced: the load (climb and hold on one clock) and the monitor."""

    started_at: float
    intervals: list[Interval]
    climb_result: RunResult
    hold_result: RunResult | None
    crossed_users: int | None
    peak_cpu: float | None
    ready_at: float | None
    load_ended_at: float
    interrupted: bool
    scale_down: dict[str, Any] | None
    monitor: Any = None  # the LoadMonitor, finished by the caller


class CpuStress:
    """The cpu scenario's side: the monitor (and locally the CPU sampler), the climb, the hold,
    and with ``through_scale_down`` the wait for the floor after the load.

    The climb (``run_steps``) stops at the end of the step in which the API's CPU went above
    its target; the hold keeps those users until the scale-up it triggered is ready (then
    ``settle`` seconds more) or the bound. Ctrl-C or SIGTERM end whichever phase runs.
    """

    def __init__(
        self,
        env: Any,
        slo: Any,
        target: str,
        report_dir: Path | None,
        messages: Any,
        *,
        hpa: str,
        bound: float,
        settle: float = 3.0,
        runner: LoadRunner | None = None,
    ) -> None:
        self.env = env
        self.slo = slo
        self.target = target
        self.report_dir = report_dir
        self.messages = messages
        self.hpa = hpa
        self.bound = bound
        self.settle = settle
        self.runner = runner or LoadRunner()
        self.crossed = threading.Event()
        self.crossed_at: float | None = None
        self.peak: float | None = None
        self._early = False

    def _watch_cpu(self, records: list[Any]) -> None:
        from tradewise_ops.core.stress import cpu_above
        from tradewise_ops.core.timeline import HpaSample

        for record in records:
            if isinstance(record, HpaSample) and record.name == self.hpa:
                for metric in record.metrics:
                    if metric.name == "cpu" and metric.value is not None:
                        self.peak = max(self.peak or 0.0, metric.value)
            if cpu_above(record, self.hpa) is not None and not self.crossed.is_set():
                self.crossed_at = record.t
                self.crossed.set()
                self.messages.info(f"{self.hpa}: CPU above its target")

    def _ready_at(self, monitor: Any) -> float | None:
        """When the first scale-up of the API's HPA since the load began was ready."""
        from tradewise_ops.core.timeline import analyze

        analysis = analyze(monitor.mon.session.records(), self.slo)
        done = [u for u in analysis.scale_ups if u.hpa == self.hpa and u.ready_at is not None]
        return done[0].ready_at if done else None

    def run(
        self,
        climb: LoadSpec,
        through_scale_down: bool,
        on_interval: Callable[[Interval], None] | None = None,
    ) -> CpuRun:
        """Climb, hold, (wait for the floor); the monitor is returned unfinished."""
        from tradewise_ops.adapters.monitor import LoadMonitor
        from tradewise_ops.core.stress import cpu_hold_spec, shifted

        monitor = LoadMonitor(
            self.env, self.slo, self.bound * 2 + 3600, self.report_dir, self.messages
        )
        sampler = None
        try:
            monitor.mon.session.listeners.append(self._watch_cpu)
            if not self.env.is_kubernetes:
                sampler = LocalCpuSampler(self.env, monitor.mon.session).start()
                # a measured CPU share before any load (the first sample only sets the baseline of
                # the CPU times): the climb's crossing of the target is then seen as a crossing,
                # the trigger of the scale-up, as an HPA's metric shows it
                time.sleep(2.2)
            return self._phases(monitor, climb, through_scale_down, on_interval, cpu_hold_spec,
                                shifted)  # fmt: skip
        except BaseException:
            monitor.abandon()
            raise
        finally:
            if sampler is not None:
                sampler.stop()

    def _phases(
        self,
        monitor: Any,
        climb: LoadSpec,
        through_scale_down: bool,
        on_interval: Callable[[Interval], None] | None,
        hold_spec: Callable[..., LoadSpec],
        shifted: Callable[..., list[Interval]],
    ) -> CpuRun:
        began = time.monotonic()
        load_t0: list[float] = []  # when the climb's load began (epoch)

        def both(interval: Interval) -> None:
            if not load_t0:
                load_t0.append(time.time() - interval.end)
            monitor.on_interval(interval)
            if on_interval is not None:
                on_interval(interval)

        crossed_users: list[int] = []

        def users_at(t: float | None) -> int:
            """The users of the climb's step that ran at ``t`` (the one that crossed)."""
            if t is None or not load_t0:
                return climb.stages[0].users
            step = int(max(0.0, t - load_t0[0]) // climb.stages[0].duration_seconds)
            return climb.stages[min(step, len(climb.stages) - 1)].users

        def on_step(stage: str, intervals: list[Interval]) -> bool:
            if self.crossed.is_set():
                crossed_users.append(users_at(self.crossed_at))
                return False
            return True

        hold: RunResult | None = None
        ready_at: float | None = None
        with stop_on_sigterm(self.runner.stop) as term:
            first = self.runner.run_steps(climb, on_step, on_interval=both)
            intervals = list(first.intervals)
            interrupted = first.aborted or term[0]
            if not crossed_users and self.crossed.is_set() and not interrupted:
                crossed_users.append(users_at(self.crossed_at))
            remaining = self.bound - (time.monotonic() - began)
            if crossed_users and not interrupted and remaining >= 2:
                users = crossed_users[0]
                self.messages.step(
                    f"holding {users} users until the scale-up is ready (at most {remaining:.0f}s)"
                )
                hold_ready: list[float] = []

                def on_hold(interval: Interval) -> None:
                    both(interval)
                    if not hold_ready:
                        at = self._ready_at(monitor)
                        if at is not None:
                            hold_ready.append(at)
                    elif time.time() - hold_ready[0] >= self.settle and not self._early:
                        self._early = True
                        self.runner.stop()

                hold = self.runner.run(hold_spec(climb, users, remaining), on_interval=on_hold)
                intervals += shifted(hold.intervals, hold.started_at - first.started_at,
                                     len(intervals))  # fmt: skip
                interrupted = (hold.aborted and not self._early) or term[0]
                if self._early:
                    hold.aborted, hold.stopped_by = False, "scaled"
            ready_at = self._ready_at(monitor)
            load_ended = time.time()
            scale_down = None
            if through_scale_down and not interrupted:
                scale_down, stopped = self._wait_floor(monitor, load_ended, term)
                interrupted = interrupted or stopped
        return CpuRun(
            started_at=first.started_at,
            intervals=intervals,
            climb_result=first,
            hold_result=hold,
            crossed_users=crossed_users[0] if crossed_users else None,
            peak_cpu=self.peak,
            ready_at=ready_at,
            load_ended_at=load_ended,
            interrupted=interrupted,
            scale_down=scale_down,
            monitor=monitor,
        )

    def _wait_floor(
        self, monitor: Any, since: float, term: list[bool]
    ) -> tuple[dict[str, Any], bool]:
        """After the load: until the API is back at its floor, at most the behavior's window."""
        from tradewise_ops.core.render import HPA_BEHAVIOR
        from tradewise_ops.core.stress import scale_down_window

        view, _, _ = monitor.mon.session.snapshot()
        hpa = view.hpas.get(self.hpa)
        floor = hpa.min_replicas if hpa is not None else int(self.env.local.api_processes)
        deployment = hpa.target if hpa is not None else ""
        peak = max(floor, view.desired(deployment) or floor, view.ready(deployment))
        window = scale_down_window(HPA_BEHAVIOR, peak, floor)
        self.messages.step(
            f"load stopped: waiting for {deployment or 'the API'} to go from {peak} back to "
            f"{floor} replicas (at most {window:.0f}s, the HPA's scale-down behavior)"
        )
        seconds: float | None = None
        stopped = False
        try:
            while not term[0]:
                view, _, _ = monitor.mon.session.snapshot()
                desired = view.desired(deployment)
                if desired is not None and desired <= floor and view.ready(deployment) <= floor:
                    seconds = time.time() - since
                    break
                if time.time() - since > window:
                    break
                time.sleep(0.25)
            stopped = term[0]
        except KeyboardInterrupt:
            stopped = True
        return {
            "floor": floor,
            "from_replicas": peak,
            "seconds": None if seconds is None else round(seconds, 3),
            "window_seconds": window,
        }, stopped


# --------------------------------------------------------------------------------------------
# memory
# --------------------------------------------------------------------------------------------
def post_json(url: str, body: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
    """POST ``body`` as JSON; the JSON answer. ``UnreachableError`` when nothing answers,
    ``GoalMissedError`` naming the status when the app refuses."""
    from tradewise_ops.errors import GoalMissedError, UnreachableError

    data = json.dumps(body).encode()
    req = urllib.request.Request(
        url, data=data, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:  # noqa: S310
            return dict(json.loads(response.read() or b"{}"))
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", "replace")[:300]
        hint = (
            "the fault routes exist only where the service runs with TRADEWISE_FAULTS=memory, "
            "and a cluster's Ingress routes only the public paths (port-forward the API "
            "Service and set the environment's url to it)"
            if exc.code == 404
            else None
        )
        raise GoalMissedError(f"{url} answered {exc.code}: {detail}", hint=hint) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise UnreachableError(f"{url} does not answer: {getattr(exc, 'reason', exc)}") from None


def get_json(url: str, timeout: float = 10.0) -> dict[str, Any] | None:
    """GET a JSON document; None when it cannot be had (the caller tries again)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310
            return dict(json.loads(response.read() or b"{}"))
    except (urllib.error.URLError, OSError, ValueError):
        return None


class LocalPodSampler:
    """The local stack's API workers and Celery workers sampled as pods of two Deployments.

    Every ``interval``: each running gunicorn worker (children of the API master) and Celery
    worker process is a serving ``PodSample`` (``api-PID``, ``worker-PID``); one that is gone
    becomes a failed one (cause ``OOMKilled`` when it was a fault's target: it ended itself at
    its address-space limit, as the OOM killer ends a process at its cgroup limit), then a
    deleted one. With a ``DeploymentSample`` per group (wanted and running), the timeline
    analysis measures each recovery as it does for pods.
    """

    def __init__(self, env: Any, session: Any, stack: Any = None, interval: float = 0.5) -> None:
        from tradewise_ops.adapters.local import LocalStack

        self.stack = stack or LocalStack(env)
        self.session = session
        self.interval = interval
        self.faulted: set[int] = set()
        self._alive: dict[int, str] = {}
        self._periodic: Periodic | None = None

    def pids(self) -> dict[int, str]:
        """Running processes now: pid -> ``api`` | ``worker``."""
        import psutil

        out: dict[int, str] = {}
        for info in self.stack.status():
            if info.state != "running" or not info.pid:
                continue
            if info.component == "api":
                try:
                    out.update({c.pid: "api" for c in psutil.Process(info.pid).children()})
                except psutil.Error:
                    continue
            elif info.component == "worker":
                out[info.pid] = "worker"
        return out

    def sample(self) -> None:
        """One sample into the session."""
        from tradewise_ops.core.timeline import DeploymentSample, PodSample

        alive = self.pids()
        t = self.session.clock()
        for pid, component in alive.items():
            if pid not in self._alive:
                self.session.add(PodSample(t, f"{component}-{pid}", component, "Running", True, 0))
        for pid, component in self._alive.items():
            if pid not in alive:
                cause = "OOMKilled" if pid in self.faulted else "exited"
                name = f"{component}-{pid}"
                self.session.add(PodSample(t, name, component, "Failed", False, 0, cause))
                self.session.add(
                    PodSample(t, name, component, "Failed", False, 0, cause, deleted=True)
                )
        self._alive = alive
        wanted = self.stack.wanted()
        for component in ("api", "worker"):
            running = sum(1 for c in alive.values() if c == component)
            self.session.add(
                DeploymentSample(t, component, wanted.get(component), running, running, running)
            )

    def start(self) -> LocalPodSampler:
        """Sample now and then every ``interval`` in a thread."""
        self.sample()
        self._periodic = Periodic(self.sample, self.interval).start()
        return self

    def stop(self) -> None:
        """Stop sampling."""
        if self._periodic is not None:
            self._periodic.stop()


def limit_address_space(pids: list[int], headroom_mb: int) -> dict[str, Any]:
    """Give each process an address-space limit (``RLIMIT_AS``, as ``prlimit`` sets it)
    ``headroom_mb`` above what it maps now; what was set, per pid."""
    import psutil

    out: dict[str, Any] = {}
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            vms = proc.memory_info().vms
            limit = vms + headroom_mb * 2**20
            proc.rlimit(psutil.RLIMIT_AS, (limit, limit))
        except psutil.Error:
            continue
        out[str(pid)] = {"mapped_mb": round(vms / 2**20), "limit_mb": round(limit / 2**20)}
    return out


@dataclass
class MemoryRun:
    """What the memory scenario produced."""

    result: RunResult
    tasks: dict[str, str] | None
    limits: dict[str, Any] | None
    interrupted: bool
    monitor: Any = None
    error: BaseException | None = None


class MemoryStress:
    """The memory scenario's side: the monitor (locally the process sampler and the limits),
    a light load for the whole bound, the faults, and the wait for the kills and recoveries.

    Locally nothing restarts a killed Celery worker: ``tradewise local up`` does here, as the
    kubelet restarts an OOM-killed container (gunicorn restarts its own workers).
    """

    def __init__(
        self,
        env: Any,
        slo: Any,
        target: str,
        report_dir: Path | None,
        messages: Any,
        *,
        targets: tuple[str, ...],
        bound: float,
        step_mb: int,
        step_seconds: float,
        symbols: tuple[str, ...],
        settle: float = 2.0,
        runner: LoadRunner | None = None,
    ) -> None:
        self.env = env
        self.slo = slo
        self.target = target.rstrip("/")
        self.report_dir = report_dir
        self.messages = messages
        self.targets = targets
        self.bound = bound
        self.step_mb = step_mb
        self.step_seconds = step_seconds
        self.symbols = symbols
        self.settle = settle
        self.runner = runner or LoadRunner()
        self._stop = threading.Event()
        self._early = False
        self.task_ids: list[str] = []
        self.tasks: dict[str, str] | None = None
        self.limits: dict[str, Any] | None = None
        self.error: BaseException | None = None

    def run(self, spec: LoadSpec, on_interval: Callable[[Interval], None] | None) -> MemoryRun:
        """The load for the bound while the faults run; stops once every target is back."""
        from tradewise_ops.adapters.monitor import LoadMonitor

        monitor = LoadMonitor(self.env, self.slo, self.bound + 3600, self.report_dir,
                              self.messages)  # fmt: skip
        sampler = None
        driver = None
        try:
            if not self.env.is_kubernetes:
                sampler = LocalPodSampler(self.env, monitor.mon.session).start()

            def both(interval: Interval) -> None:
                monitor.on_interval(interval)
                if on_interval is not None:
                    on_interval(interval)

            driver = threading.Thread(
                target=self._drive, args=(monitor, sampler), name="tradewise-fault", daemon=True
            )
            with stop_on_sigterm(self.runner.stop) as term:
                driver.start()
                result = self.runner.run(spec, on_interval=both)
            interrupted = (result.aborted and not self._early) or term[0]
            if self._early:
                result.aborted, result.stopped_by = False, "recovered"
        except BaseException:
            monitor.abandon()
            raise
        finally:
            self._stop.set()
            if driver is not None:
                driver.join(30)
            if sampler is not None:
                sampler.stop()
        return MemoryRun(result, self.tasks, self.limits, interrupted, monitor, self.error)

    def _drive(self, monitor: Any, sampler: LocalPodSampler | None) -> None:
        try:
            self._faults(monitor, sampler)
        except Exception as exc:  # noqa: BLE001 - reported by the caller after the load
            self.error = exc
            self.messages.warn(f"the memory fault stopped: {exc}")
            self.runner.stop()

    def _faults(self, monitor: Any, sampler: LocalPodSampler | None) -> None:
        from tradewise_ops.core.stress import LOCAL_HEADROOM_MB, MEMORY_TASKS, memory_max_mb

        if self._stop.wait(2.0):  # some load first: the error rate before the faults
            return
        if sampler is not None:
            pids = [p for p, c in sampler.pids().items() if c in self.targets]
            self.limits = limit_address_space(pids, LOCAL_HEADROOM_MB)
            sampler.faulted.update(int(p) for p in self.limits)
            self.messages.info(
                f"address-space limits (RLIMIT_AS) {LOCAL_HEADROOM_MB} MiB above what each "
                f"target maps now: {', '.join(f'pid {p}' for p in self.limits)}"
            )
        url = f"{self.target}/api/faults/memory"
        for component in self.targets:
            body = {
                "target": component,
                "step_mb": self.step_mb,
                "interval_seconds": self.step_seconds,
                "max_mb": memory_max_mb(self.env, component),
                "seconds": self.bound,
            }
            if component == "worker":
                body.update(tasks=MEMORY_TASKS, symbols=list(self.symbols))
            answer = post_json(url, body)
            self.task_ids += [str(t) for t in answer.get("tasks") or []]
            self.messages.step(
                f"memory fault started in the {component}"
                + (f" (pid {answer['pid']})" if answer.get("pid") else "")
                + (f", {len(self.task_ids)} tasks queued behind it" if self.task_ids else "")
            )
        if self.task_ids:
            self.tasks = dict.fromkeys(self.task_ids, "PENDING")
        while not self._stop.wait(0.5):
            if sampler is not None:
                self._restart_workers()
            if self.task_ids:
                self._poll_tasks()
            if self._all_back(monitor):
                if not self._stop.wait(self.settle):
                    self._early = True
                    self.runner.stop()
                return

    def _restart_workers(self) -> None:
        """Locally: start a Celery worker that exited (as the kubelet restarts a container)."""
        from tradewise_ops.adapters.local import LocalStack

        stack = LocalStack(self.env)
        gone = [p for p in stack.status() if p.component == "worker" and p.state == "exited"]
        if gone:
            shown = ", ".join(f"{p.name} (exit {p.exit_code})" for p in gone)
            self.messages.info(f"{shown}: restarting it, as the kubelet restarts a container")
            stack.up(timeout=60)

    def _poll_tasks(self) -> None:
        ids = ",".join(self.task_ids)
        answer = get_json(f"{self.target}/api/faults/tasks?ids={ids}")
        if answer is not None and self.tasks is not None:
            self.tasks.update({str(k): str(v) for k, v in (answer.get("states") or {}).items()})

    def _all_back(self, monitor: Any) -> bool:
        """Every target OOM-killed and recovered, every queued task done."""
        from tradewise_ops.core.stress import component_of
        from tradewise_ops.core.timeline import analyze

        analysis = analyze(monitor.mon.session.records(), self.slo)
        back = {
            component_of(r.deployment)
            for r in analysis.recoveries
            if "OOMKilled" in r.cause and r.recovered_at is not None
        }
        if not set(self.targets) <= back:
            return False
        return self.tasks is None or all(s == "SUCCESS" for s in self.tasks.values())
