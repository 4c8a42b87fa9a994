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
