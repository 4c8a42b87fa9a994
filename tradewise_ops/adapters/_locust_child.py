"""The load generator's own process: Locust as a library, one JSON line per interval on stdout.

Started by ``adapters.loadtest.LoadRunner`` as ``python -m tradewise_ops.adapters._locust_child``
(or with ``--worker HOST PORT`` for a worker of the local distributed mode). ``import locust``
monkey-patches the whole process with gevent, so it comes before every other import and this
module is never imported by the CLI's own process.

Protocol: the first line of stdin is the JSON spec; after it, stdin is a lifeline (a ``stop``
line or EOF stops the load at once). SIGTERM and SIGINT stop it at once too. Stdout carries
JSON lines: ``started``, one ``interval`` per interval (per-endpoint counts and latency
histograms of the interval's own samples), then ``done``; ``error`` on a failure to start.
Locust's own logging goes to stderr.
"""
# ruff: noqa: E402, I001

import locust  # noqa: F401  (first: gevent's monkey-patching must precede every other import)

import json
import logging
import os
import random
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import gevent
import gevent.event
import locust.runners
from gevent.os import make_nonblocking, nb_read
from locust import FastHttpUser, LoadTestShape, between, constant, constant_throughput
from locust.env import Environment

from tradewise_ops.core.loadreport import EndpointCounts, compact_summary

FLUSH_SECONDS = 0.25  # how often a worker sends its samples to the master


class _Clock:
    """When the load started and the first interval not yet reported."""

    def __init__(self, t0: float, next: int) -> None:
        self.t0 = t0
        self.next = next


class _Aggregator:
    """Per-endpoint counts in time buckets (``bucket(completion time)``) until taken."""

    def __init__(self, bucket: Callable[[float], int]) -> None:
        self.bucket = bucket
        self.pending: dict[int, dict[str, EndpointCounts]] = {}

    def _counts(self, key: int, name: str) -> EndpointCounts:
        per_name = self.pending.setdefault(key, {})
        counts = per_name.get(name)
        if counts is None:
            counts = per_name[name] = EndpointCounts()
        return counts

    def add(self, name: str, ms: float, failed: bool) -> None:
        counts = self._counts(self.bucket(time.time()), name)
        counts.requests += 1
        if failed:
            counts.failures += 1
        counts.latency.add(ms)

    def merge_wire(self, data: dict[str, dict[str, Any]], when: Callable[[int], float]) -> None:
        """Add a worker's batch ``{its bucket: {name: counts}}``; ``when`` dates its buckets."""
        for key, per_name in data.items():
            mine = self.bucket(when(int(key)))
            for name, wire in per_name.items():
                self._counts(mine, name).merge(EndpointCounts.from_wire(wire))

    def take(self, key: int) -> dict[str, EndpointCounts]:
        return self.pending.pop(key, {})

    def take_all(self) -> dict[str, EndpointCounts]:
        out: dict[str, EndpointCounts] = {}
        for key in sorted(self.pending):
            for name, counts in self.pending[key].items():
                out.setdefault(name, EndpointCounts()).merge(counts)
        self.pending = {}
        return out

    def take_wire(self) -> dict[str, dict[str, Any]]:
        out = {str(k): {n: c.to_wire() for n, c in v.items()} for k, v in self.pending.items()}
        self.pending = {}
        return out

    def listener(self) -> Callable[..., None]:
        def on_request(
            request_type: str,
            name: str,
            response_time: float,
            response_length: int,
            exception: BaseException | None = None,
            **_: Any,
        ) -> None:
            self.add(name, response_time or 0.0, exception is not None)

        return on_request


def _sub_bucket(t: float) -> int:
    """A worker's bucket of a sample: its completion time in flush periods."""
    return int(t / FLUSH_SECONDS)


def _sub_bucket_time(key: int) -> float:
    """The middle of a worker bucket, in unix time."""
    return (key + 0.5) * FLUSH_SECONDS


def _emit(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def _wait_time(spec: dict[str, Any]) -> Callable[..., float]:
    wait = spec.get("wait") or {"kind": "constant", "seconds": 0}
    kind = wait.get("kind")
    if kind == "between":
        return between(float(wait["min"]), float(wait["max"]))
    if kind == "throughput":
        return constant_throughput(float(wait["per_user"]))
    return constant(float(wait.get("seconds", 0)))


def _user_class(spec: dict[str, Any]) -> type[FastHttpUser]:
    tasks: dict[Callable[..., None], int] = {}
    for task_spec in spec["tasks"]:
        weight = int(task_spec.get("weight", 1))
        if weight <= 0:
            continue
        paths = list(task_spec["paths"])
        name = str(task_spec["name"])

        def request(user: FastHttpUser, paths: list[str] = paths, name: str = name) -> None:
            path = paths[0] if len(paths) == 1 else random.choice(paths)
            user.client.get(path, name=name)

        request.__name__ = f"get_{name}"
        tasks[request] = weight
    timeout = float(spec.get("timeout", 30))
    return type(
        "TradewiseUser",
        (FastHttpUser,),
        {
            "host": spec["host"],
            "tasks": tasks,
            "wait_time": _wait_time(spec),
            "network_timeout": timeout,
            "connection_timeout": timeout,
            "insecure": bool(spec.get("insecure", False)),
        },
    )


def _stage_at(stages: list[dict[str, Any]], elapsed: float) -> dict[str, Any] | None:
    edge = 0.0
    for stage in stages:
        edge += float(stage["duration"])
        if elapsed < edge:
            return stage
    return None


def _shape(stages: list[dict[str, Any]]) -> LoadTestShape:
    class StagedShape(LoadTestShape):
        def tick(self) -> tuple[int, float] | None:
            stage = _stage_at(stages, self.get_run_time())
            if stage is None:
                return None
            return int(stage["users"]), float(stage["spawn_rate"])

    return StagedShape()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _lifeline(stop: gevent.event.Event, reasons: list[str]) -> None:
    """Stop when stdin says ``stop`` or closes (the parent is gone)."""
    fd = sys.stdin.fileno()
    make_nonblocking(fd)
    buffered = b""
    while not stop.is_set():
        try:
            chunk = nb_read(fd, 4096)
        except OSError:
            chunk = b""
        if not chunk:
            reasons.append("parent")
            stop.set()
            return
        buffered += chunk
        if b"stop" in buffered:
            reasons.append("stop")
            stop.set()
            return


def _read_spec() -> dict[str, Any]:
    fd = sys.stdin.fileno()
    data = b""
    while not data.endswith(b"\n"):
        chunk = os.read(fd, 1)  # byte by byte: what follows the spec belongs to the lifeline
        if not chunk:
            break
        data += chunk
    return dict(json.loads(data))


def run(spec: dict[str, Any]) -> int:
    """Run the load described by ``spec``; stream intervals; return the exit code."""
    stop = gevent.event.Event()
    reasons: list[str] = []

    def on_signal(name: str) -> Callable[[], None]:
        def handler() -> None:
            reasons.append(name)
            stop.set()

        return handler

    gevent.signal_handler(signal.SIGTERM, on_signal("signal"))
    gevent.signal_handler(signal.SIGINT, on_signal("signal"))

    stages = spec.get("stages") or []
    user_class = _user_class(spec)
    env = Environment(
        user_classes=[user_class],
        shape_class=_shape(stages) if stages else None,
        host=spec["host"],
        stop_timeout=0,
    )
    interval = float(spec.get("interval", 1.0))
    clock = _Clock(t0=time.time(), next=0)  # t0 is set again when the load starts

    def interval_of(t: float) -> int:
        """The interval a sample completed in; never one already reported."""
        return max(clock.next, int((t - clock.t0) // interval))

    agg = _Aggregator(interval_of)
    n_workers = int(spec.get("workers", 0))
    worker_procs: list[subprocess.Popen[bytes]] = []
    finals: list[dict[str, Any]] = []
    runner: locust.runners.Runner
    external = spec.get("master_bind")
    if n_workers:
        bind_host, port = external or ("127.0.0.1", _free_port())
        master = env.create_master_runner(bind_host, int(port))
        master.register_message(
            "tw_samples",
            lambda environment, msg, **_: agg.merge_wire(msg.data, _sub_bucket_time),
        )
        master.register_message("tw_final", lambda environment, msg, **_: finals.append(msg.data))
        runner = master
        line = (json.dumps(spec) + "\n").encode()
        for _ in range(0 if external else n_workers):
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tradewise_ops.adapters._locust_child",
                    "--worker",
                    "127.0.0.1",
                    str(port),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
            )
            assert proc.stdin is not None
            proc.stdin.write(line)
            proc.stdin.flush()
            worker_procs.append(proc)
        deadline = time.time() + float(spec.get("worker_start_timeout", 30))
        while master.worker_count < n_workers and time.time() < deadline and not stop.is_set():
            gevent.sleep(0.05)
        if master.worker_count < n_workers:
            _emit(
                {
                    "type": "error",
                    "message": f"only {master.worker_count} of {n_workers} Locust workers "
                    "connected to the master",
                }
            )
            master.quit()
            _end_workers(worker_procs)
            return 1
    else:
        runner = env.create_local_runner()
        env.events.request.add_listener(agg.listener())

    if spec.get("lifeline", True):
        gevent.spawn(_lifeline, stop, reasons)
    planned = float(spec["duration"])
    # with workers, samples reach the master up to a flush period (and a busy master) later:
    # report each interval a little after it ended, so its samples are in it
    lag = 2 * FLUSH_SECONDS if n_workers else 0.0
    cpu0 = _cpu_seconds()
    t0 = clock.t0 = time.time()
    _emit({"type": "started", "t0": t0, "workers": n_workers, "pid": os.getpid()})
    if stages:
        runner.start_shape()
    else:
        runner.start(int(spec["users"]), float(spec["spawn_rate"]))

    totals: dict[str, EndpointCounts] = {}

    def emit_interval(
        index: int, start: float, end: float, batch: dict[str, EndpointCounts], users: int
    ) -> None:
        stage = _stage_at(stages, start) if stages else None
        for name, counts in batch.items():
            totals.setdefault(name, EndpointCounts()).merge(counts)
        _emit(
            {
                "type": "interval",
                "index": index,
                "start": round(start, 4),
                "end": round(end, 4),
                "users": users,
                "stage": stage["name"] if stage else None,
                "endpoints": {name: c.to_wire() for name, c in batch.items()},
            }
        )

    stopped_by = "duration"
    while True:
        index = clock.next
        end = (index + 1) * interval
        stop.wait(timeout=max(0.0, min(t0 + end + lag, t0 + planned) - time.time()))
        if stop.is_set():
            stopped_by = reasons[0] if reasons else "signal"
            break
        if time.time() >= t0 + planned or end >= planned:
            break
        if stages and runner.state == locust.runners.STATE_STOPPED:
            stopped_by = "shape"
            break
        clock.next = index + 1  # from now on, late samples of `index` go to the next one
        emit_interval(index, index * interval, end, agg.take(index), runner.user_count)

    stopped_at = min(time.time() - t0, planned)
    users_at_stop = runner.user_count
    runner.stop()
    if n_workers:
        wait_until = time.time() + 3.0
        while len(finals) < n_workers and time.time() < wait_until:
            gevent.sleep(0.05)
    index = clock.next
    emit_interval(index, index * interval, stopped_at, agg.take_all(), users_at_stop)
    stats = env.stats
    errors = [
        {"name": e.name, "method": e.method, "error": str(e.error), "occurrences": e.occurrences}
        for e in sorted(stats.errors.values(), key=lambda e: -e.occurrences)[:20]
    ]
    cpu = _cpu_seconds() - cpu0
    _emit(
        {
            "type": "done",
            "stopped_by": stopped_by,
            "ran_seconds": round(stopped_at, 4),
            "locust_requests": stats.total.num_requests,
            "locust_failures": stats.total.num_failures,
            "errors": errors,
            "cpu_seconds": round(cpu, 3),
            "worker_cpu_seconds": round(sum(float(f.get("cpu", 0)) for f in finals), 3),
        }
    )
    if spec.get("termination_log"):
        summary = compact_summary(
            totals, ran_seconds=stopped_at, stopped_by=stopped_by, errors=errors
        )
        try:
            with open(spec["termination_log"], "w", encoding="utf-8") as handle:
                handle.write(json.dumps(summary, separators=(",", ":")))
        except OSError as exc:
            logging.getLogger("tradewise").warning("cannot write the summary: %s", exc)
    runner.quit()
    _end_workers(worker_procs)
    return 0


def _end_workers(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.stdin is not None:
            try:
                proc.stdin.close()
            except OSError:
                pass
    deadline = time.time() + 3.0
    for proc in procs:
        while proc.poll() is None and time.time() < deadline:
            gevent.sleep(0.05)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def run_worker(spec: dict[str, Any], master_host: str, master_port: int) -> int:
    """A worker of the local distributed mode: users here, samples to the master."""
    locust.runners.WORKER_REPORT_INTERVAL = 1.0
    env = Environment(user_classes=[_user_class(spec)], host=spec["host"], stop_timeout=0)
    runner = env.create_worker_runner(master_host, master_port)
    agg = _Aggregator(_sub_bucket)
    env.events.request.add_listener(agg.listener())
    cpu0 = _cpu_seconds()

    def send() -> None:
        batch = agg.take_wire()
        if batch:
            runner.send_message("tw_samples", batch)

    def flusher() -> None:
        while True:
            gevent.sleep(FLUSH_SECONDS)
            send()

    def on_stop(**_: Any) -> None:
        send()
        runner.send_message("tw_final", {"cpu": _cpu_seconds() - cpu0})

    env.events.test_stop.add_listener(on_stop)
    gevent.spawn(flusher)
    stop = gevent.event.Event()
    if spec.get("lifeline", True):
        gevent.spawn(_lifeline, stop, [])
    gevent.signal_handler(signal.SIGTERM, stop.set)
    gevent.signal_handler(signal.SIGINT, stop.set)
    done = gevent.spawn(runner.greenlet.join)
    gevent.wait([done, gevent.spawn(stop.wait)], count=1)
    if not done.ready():
        runner.quit()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point. ``[--spec-file F] [--master-port P | --worker HOST PORT]``.

    Without ``--spec-file`` the spec is the first line of stdin and stdin stays the lifeline.
    ``--master-port`` makes a master for workers started elsewhere (in-cluster Jobs).
    """
    args = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=os.environ.get("TRADEWISE_LOCUST_LOG", "WARNING"),
        stream=sys.stderr,
        format="locust: %(levelname)s %(message)s",
    )
    options: dict[str, list[str]] = {}
    while args:
        flag = args.pop(0)
        take = 2 if flag == "--worker" else 1
        options[flag], args = args[:take], args[take:]
    if "--spec-file" in options:
        with open(options["--spec-file"][0], encoding="utf-8") as handle:
            spec = dict(json.load(handle))
        spec["lifeline"] = False
    else:
        spec = _read_spec()
    if "--worker" in options:
        host, port = options["--worker"]
        return run_worker(spec, host, int(port))
    if "--master-port" in options:
        bind = os.environ.get("TRADEWISE_LOCUST_BIND", "0.0.0.0")  # a pod's own address
        spec["master_bind"] = [bind, int(options["--master-port"][0])]
        spec["termination_log"] = os.environ.get(
            "TRADEWISE_TERMINATION_LOG", "/dev/termination-log"
        )
    try:
        return run(spec)
    except Exception as exc:  # report it on the protocol, then fail
        _emit({"type": "error", "message": f"{type(exc).__name__}: {exc}"})
        raise


if __name__ == "__main__":
    sys.exit(main())
