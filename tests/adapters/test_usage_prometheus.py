"""``adapters.usage.prometheus_usage`` against a real Prometheus (``/usr/bin/prometheus``).

Prometheus runs on a free loopback port with a private data directory and ``scrape_interval:
1s``; it scrapes a tiny loopback HTTP server of this test, which exposes the two cAdvisor series
in the text format: ``container_cpu_usage_seconds_total`` growing at a known rate per container,
and ``container_memory_working_set_bytes`` with a known level and one known spike.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.helpers import free_port, port_open, require_binary, wait_until
from tradewise_ops.adapters.usage import load_samples, prometheus_usage
from tradewise_ops.errors import UnreachableError

PROMETHEUS = "/usr/bin/prometheus"
NS = "tradewise-ai"
MIB = 2**20
# container -> (CPU cores used, memory level, memory spike)
SERIES = {
    "tradewise-api": (0.25, 300 * MIB, 400 * MIB),
    "tradewise-worker": (0.10, 200 * MIB, 200 * MIB),
}
SPIKE_EVERY = 7  # every 7th scrape sees the spike


class _Exporter(BaseHTTPRequestHandler):
    started = time.monotonic()
    scrapes = 0

    def do_GET(self) -> None:  # noqa: N802
        cls = type(self)
        cls.scrapes += 1
        elapsed = time.monotonic() - cls.started
        spike = cls.scrapes % SPIKE_EVERY == 0
        lines = [
            "# TYPE container_cpu_usage_seconds_total counter",
            "# TYPE container_memory_working_set_bytes gauge",
        ]
        for container, (cores, level, peak) in SERIES.items():
            labels = f'namespace="{NS}",pod="{container}-0",container="{container}"'
            lines.append(f"container_cpu_usage_seconds_total{{{labels}}} {cores * elapsed:.6f}")
            memory = peak if spike else level
            lines.append(f"container_memory_working_set_bytes{{{labels}}} {memory}")
        # the API's request counter: 50 req/s
        lines.append("# TYPE flask_request_total counter")
        lines.append(
            f'flask_request_total{{namespace="{NS}",endpoint="/api/health",status="200"}}'
            f" {50 * elapsed:.3f}"
        )
        # another namespace: never counted
        lines.append(
            'container_memory_working_set_bytes{namespace="other",pod="x",container="tradewise-api"}'
            f" {64 * 1024 * MIB}"
        )
        body = ("\n".join(lines) + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    require_binary(PROMETHEUS, "apt-get install prometheus; .ci/run installs it")
    exporter = ThreadingHTTPServer(("127.0.0.1", 0), _Exporter)
    threading.Thread(target=exporter.serve_forever, daemon=True).start()
    work = tmp_path_factory.mktemp("prometheus")
    config = work / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: cadvisor\n"
        "    honor_labels: true\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{exporter.server_address[1]}']}}]\n",
        encoding="utf-8",
    )
    port = free_port()
    log = (work / "prometheus.log").open("w")
    proc = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={work / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--storage.tsdb.retention.time=1h",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until(lambda: port_open("127.0.0.1", port), timeout=30, what="prometheus listening")
        # enough scrapes for a 20s window (and a few spikes in it)
        wait_until(lambda: _Exporter.scrapes >= 24, timeout=60, what="24 scrapes")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        exporter.shutdown()


def test_p95_and_max_over_the_window(prometheus: str) -> None:
    usage = prometheus_usage(prometheus, NS, since_seconds=20)
    assert set(usage) == {"api", "worker"}
    api, worker = usage["api"], usage["worker"]
    assert api.source == "prometheus"
    assert api.samples >= 15
    # the counters grow at 0.25 and 0.10 cores: the rate's p95 and max are about that
    assert api.cpu_p95 == pytest.approx(0.25, rel=0.2)
    assert api.cpu_max == pytest.approx(0.25, rel=0.3) and api.cpu_max >= api.cpu_p95
    assert worker.cpu_p95 == pytest.approx(0.10, rel=0.2)
    # memory: the level most of the time, the spike as the max (the other namespace not counted)
    assert api.memory_max == 400 * MIB
    assert 300 * MIB <= api.memory_p95 <= 400 * MIB
    assert worker.memory_p95 == worker.memory_max == 200 * MIB


def test_a_prometheus_that_does_not_answer_is_unreachable() -> None:
    with pytest.raises(UnreachableError, match="does not answer"):
        prometheus_usage(f"http://127.0.0.1:{free_port()}", NS, since_seconds=60, timeout=2)


def test_the_request_rate_history_for_scale_suggest(prometheus: str) -> None:
    samples = load_samples("prometheus", prometheus, NS, since_seconds=20, step=2)
    assert len(samples) >= 5
    settled = [rps for _, rps in samples[2:]]
    assert all(rps == pytest.approx(50.0, rel=0.2) for rps in settled), settled
