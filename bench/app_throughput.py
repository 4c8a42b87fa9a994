"""Throughput of the TradeWise API under gunicorn against a minimal Flask baseline, same run.

Serves the real app with ``tradewise-api`` (its production gunicorn settings) and, beside it, a
minimal Flask app under the very same gunicorn settings whose endpoints do the same work: a
constant JSON for ``/api/health``, one Redis GET of the same cached analysis bytes for
``/api/stock-analysis``. Both use one private redis-server on loopback. wrk drives each endpoint in
interleaved rounds; the medians of requests/s and latency percentiles are printed with the ratio
app/baseline.

    .venv/bin/python bench/app_throughput.py [--duration 8] [--rounds 3] [--connections 32]
        [--profile FILE]

Targets (issue 16, "the service's own cost per request"): the cached analysis at >= 1.2x the
baseline's req/s with p99 < 20 ms, health at >= 0.95x, no errors, the same bytes as the baseline
serves. ``--strict`` exits 1 when a target is missed (the default only reports).

``--profile FILE`` (needs py-spy, ``pip install py-spy``, and ptrace rights) samples one app worker
under wrk on the cached analysis after the rounds, writes the collapsed stacks to FILE and prints
where the worker's time went (inclusive share of the main frames).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SYMBOL = "AAPL"
CACHE_KEY = "tradewise:analysis:v1:" + SYMBOL

WRK_SCRIPT = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("TW_RESULT %d %d %d %d %d %d %d\\n", summary.requests,
    summary.duration, latency:percentile(50), latency:percentile(95), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout, e.status))
end
"""


def make_baseline() -> Any:
    """The minimal Flask app (gunicorn factory ``app_throughput:make_baseline()``)."""
    import redis
    from flask import Flask, Response

    baseline = Flask("baseline", static_folder=None)
    client = redis.Redis.from_url(os.environ["REDIS_URL"], socket_timeout=0.5)

    @baseline.get("/api/health")
    def health() -> Response:
        return Response(b'{"status":"ok"}', mimetype="application/json")

    @baseline.get("/api/stock-analysis")
    def cached() -> Response:
        return Response(client.get(CACHE_KEY), mimetype="application/json")

    return baseline


@dataclass
class Run:
    """One wrk run."""

    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    errors: int
    non_2xx: int
    cpu_us: float = 0.0  # server CPU (user+sys of the gunicorn processes) per request


def _cpu_seconds(master: int) -> float:
    """user+sys CPU seconds of a gunicorn master and its live workers (Linux /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    workers = _worker_pids(master)
    if not workers:
        return 0.0
    total = 0
    for pid in [master, *workers]:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - loopback
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up in {timeout:.0f}s")


def _wrk(
    url: str, duration: int, connections: int, threads: int, script: Path, master: int = 0
) -> Run:
    cpu_before = _cpu_seconds(master) if master else 0.0
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency",
         "-s", str(script), url],
        capture_output=True, text=True, timeout=duration + 60, check=True,
    )  # fmt: skip
    match = re.search(r"TW_RESULT (\d+) (\d+) (\d+) (\d+) (\d+) (\d+) (\d+)", out.stdout)
    if not match:
        raise RuntimeError(f"unexpected wrk output:\n{out.stdout}\n{out.stderr}")
    requests, micros, p50, p95, p99, errors, non_2xx = (int(g) for g in match.groups())
    cpu = (_cpu_seconds(master) - cpu_before) if master else 0.0
    return Run(
        requests / (micros / 1e6),
        p50 / 1000,
        p95 / 1000,
        p99 / 1000,
        errors,
        non_2xx,
        cpu / requests * 1e6 if requests else 0.0,
    )


def _worker_pids(master: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{master}/task/{master}/children").read_text().split()]
    except OSError:
        return []


# the frames whose inclusive share tells where a request's time goes
PROFILE_FRAMES = (
    ("SyncWorker.handle ", "gunicorn: the whole request (accept excluded)"),
    ("Request.__init__ ", "gunicorn: parsing the request"),
    ("Response.write ", "gunicorn: writing the answer"),
    ("close_graceful ", "gunicorn: closing the connection"),
    ("RequestMetrics.__call__ ", "the app's WSGI entry (metrics + fast path + Flask)"),
    ("FastPath.answer ", "  the fast path"),
    ("Flask.wsgi_app ", "  Flask (request context, dispatch, response)"),
    ("stock_analysis ", "    the analysis view"),
    ("AnalysisCache.get ", "  the cache lookup (local layer, then Redis)"),
    ("Redis.execute_command ", "    a Redis round trip"),
    ("observe_request ", "  the request metrics (histogram + counter)"),
)


def _profile(master: int, url: str, args: argparse.Namespace, script: Path) -> str:
    """py-spy one worker while wrk drives ``url``; where its time went, as text."""
    pid = _worker_pids(master)[0]
    seconds = max(6, args.duration)
    wrk = subprocess.Popen(
        ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{seconds + 2}s", url],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        time.sleep(1)
        spy = shutil.which("py-spy", path=f"{BIN}:{os.environ.get('PATH', '')}") or "py-spy"
        subprocess.run(
            [spy, "record", "-p", str(pid), "-d", str(seconds), "-r", "250", "--format", "raw",
             "-o", str(args.profile)],
            capture_output=True, check=True, timeout=seconds + 60,
        )  # fmt: skip
    finally:
        wrk.wait(timeout=seconds + 30)
    total = 0
    inclusive = dict.fromkeys((frame for frame, _ in PROFILE_FRAMES), 0)
    for line in args.profile.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        total += int(count)
        for frame in inclusive:
            if frame in stack:
                inclusive[frame] += int(count)
    lines = [f"where one app worker's time went (py-spy, {total} samples, {args.profile}):"]
    for frame, label in PROFILE_FRAMES:
        share = 100 * inclusive[frame] / total if total else 0.0
        lines.append(f"  {share:5.1f}%  {label}")
    return "\n".join(lines)


def _median(runs: list[Run]) -> Run:
    return Run(
        statistics.median(r.rps for r in runs),
        statistics.median(r.p50_ms for r in runs),
        statistics.median(r.p95_ms for r in runs),
        statistics.median(r.p99_ms for r in runs),
        sum(r.errors for r in runs),
        sum(r.non_2xx for r in runs),
        statistics.median(r.cpu_us for r in runs),
    )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print the table (and JSON with ``--json``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=8, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--workers", type=int, default=0, help="WEB_CONCURRENCY (0: default)")
    parser.add_argument("--json", action="store_true", help="also print the results as JSON")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--profile", type=Path, help="py-spy one app worker; collapsed stacks here")
    args = parser.parse_args(argv)
    if args.profile and shutil.which("py-spy", path=f"{BIN}:{os.environ.get('PATH', '')}") is None:
        print("--profile needs py-spy (pip install py-spy)")
        return 2
    for tool in ("wrk", "redis-server"):
        if shutil.which(tool) is None:
            print(f"needs {tool} (apt-get install {tool if tool == 'wrk' else 'redis-server'})")
            return 2

    tmp = Path(tempfile.mkdtemp(prefix="tw-bench-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        redis_port = _free_port()
        procs.append(subprocess.Popen(
            ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(tmp)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ))  # fmt: skip
        redis_url = f"redis://127.0.0.1:{redis_port}/0"
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("TRADEWISE_")},
            "REDIS_URL": redis_url,
            "DATABASE_URL": f"sqlite:///{tmp / 'bench.db'}",
            "CACHE_TTL_SECONDS": "86400",
            "GUNICORN_WORKER_TMP_DIR": str(tmp),
        }
        if args.workers:
            env["WEB_CONCURRENCY"] = str(args.workers)
        app_port, base_port = _free_port(), _free_port()
        prom = tmp / "prometheus"
        prom.mkdir()
        procs.append(subprocess.Popen(
            [str(BIN / "tradewise-api")],
            env={**env, "BIND": f"127.0.0.1:{app_port}", "PROMETHEUS_MULTIPROC_DIR": str(prom)},
            stdout=subprocess.DEVNULL, stderr=(tmp / "app.log").open("wb"),
        ))  # fmt: skip
        procs.append(subprocess.Popen(
            [str(BIN / "gunicorn"), "-c", "python:app.gunicorn_conf",
             "--chdir", str(ROOT / "bench"), "app_throughput:make_baseline()"],
            env={**env, "BIND": f"127.0.0.1:{base_port}"},
            stdout=subprocess.DEVNULL, stderr=(tmp / "baseline.log").open("wb"),
        ))  # fmt: skip
        app_url, base_url = f"http://127.0.0.1:{app_port}", f"http://127.0.0.1:{base_port}"
        _wait_http(app_url + "/api/health")
        _wait_http(base_url + "/api/health")
        analysis = f"/api/stock-analysis?symbol={SYMBOL}"
        with urllib.request.urlopen(app_url + analysis, timeout=10) as response:  # noqa: S310
            response.read()
        with urllib.request.urlopen(app_url + analysis, timeout=10) as response:  # noqa: S310
            assert response.headers["X-Cache"] == "HIT", "the analysis is not cached"
            payload = response.read()
        with urllib.request.urlopen(base_url + analysis, timeout=10) as response:  # noqa: S310
            assert response.read() == payload, "baseline serves different bytes"

        script = tmp / "report.lua"
        script.write_text(WRK_SCRIPT)
        app_pid, base_pid = procs[1].pid, procs[2].pid
        cases = [
            ("health", "baseline", base_url + "/api/health", base_pid),
            ("health", "app", app_url + "/api/health", app_pid),
            ("cached analysis", "baseline", base_url + analysis, base_pid),
            ("cached analysis", "app", app_url + analysis, app_pid),
        ]
        for _, _, url, _ in cases:  # warm-up
            _wrk(url, 2, args.connections, args.threads, script)
        runs: dict[tuple[str, str], list[Run]] = {}
        for _ in range(args.rounds):
            for endpoint, server, url, pid in cases:
                run = _wrk(url, args.duration, args.connections, args.threads, script, pid)
                runs.setdefault((endpoint, server), []).append(run)
        result = {key: _median(value) for key, value in runs.items()}
        if args.profile:
            profile = _profile(app_pid, app_url + analysis, args, script)
        with urllib.request.urlopen(app_url + "/api/performance/stats", timeout=10) as response:  # noqa: S310
            stats = json.loads(response.read())
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in reversed(procs):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)

    workers = args.workers or "default"
    print(
        f"gunicorn sync workers={workers} (tradewise-api settings), wrk -t{args.threads} "
        f"-c{args.connections} -d{args.duration}s, {args.rounds} interleaved rounds, medians; "
        f"{os.cpu_count()} cores shared with the load generator"
    )
    header = (
        f"{'endpoint':<16} {'server':<9} {'req/s':>9} {'p50 ms':>8} {'p95 ms':>8} "
        f"{'p99 ms':>8} {'errors':>7} {'cpu us/req':>10}  req/s of each round"
    )
    print(header)
    print("-" * len(header))
    for (endpoint, server), r in result.items():
        print(
            f"{endpoint:<16} {server:<9} {r.rps:>9.0f} {r.p50_ms:>8.2f} {r.p95_ms:>8.2f} "
            f"{r.p99_ms:>8.2f} {r.errors + r.non_2xx:>7} {r.cpu_us:>10.0f}  "
            + " ".join(f"{x.rps:.0f}" for x in runs[(endpoint, server)])
        )
    verdicts = []
    summary: dict[str, Any] = {"runs": {}, "ratios": {}}
    for endpoint, target in (("health", 0.95), ("cached analysis", 1.2)):
        ratio = result[(endpoint, "app")].rps / result[(endpoint, "baseline")].rps
        summary["ratios"][endpoint] = round(ratio, 3)
        text = f"{endpoint}: ratio app/baseline {ratio:.2f} (target >= {target:.2f})"
        verdicts.append((text, ratio >= target))
    cached = result[("cached analysis", "app")]
    verdicts.append((
        f"cached analysis: p99 {cached.p99_ms:.1f} ms at {args.connections} connections "
        "(target < 20 ms)",
        cached.p99_ms < 20,
    ))  # fmt: skip
    errors = sum(r.errors + r.non_2xx for r in result.values())
    verdicts.append((f"errors and non-2xx answers: {errors}", errors == 0))
    for text, ok in verdicts:
        print(f"{'PASS' if ok else 'MISS'}  {text}")
    hit_rate = stats["cache"]["hit_rate"]
    print(f"app's own /api/performance/stats after the run: cache hit rate {hit_rate:.4f}, "
          f"{stats['requests']['total']} requests counted")  # fmt: skip
    if args.profile:
        print(profile)
    if args.json:
        summary["runs"] = {f"{e}/{s}": vars(r) for (e, s), r in result.items()}
        print(json.dumps(summary, indent=2))
    return 1 if args.strict and not all(ok for _, ok in verdicts) else 0


if __name__ == "__main__":
    sys.exit(main())
