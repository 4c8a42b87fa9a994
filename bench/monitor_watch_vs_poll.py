"""``tradewise monitor`` (watches) against polling with kubectl, on the emulator: requests, changes
seen and how late.

Each side gets a fresh Kubernetes API emulator (``tests/k8s_emulator``, real HTTP on loopback) with
the API HPA, its Deployment and three pods, and the same script of ``--changes`` pod changes, one
every ``--period`` s (a pod flapping: not ready, ready, restart count rising), as a crash-looping
pod or a rollout would produce:

- tradewise: the monitor's ``ClusterWatcher`` (the four watches of ``tradewise monitor``);
- the baseline: what ``./scale.sh monitor 300`` did, ``kubectl get hpa,deployments,pods,events -o
  json`` every ``--interval`` s (kubectl on PATH).

It counts the requests each emulator served (watches separately), the changes each side saw (a
change is seen when its exact state shows up) and the delay from each change to its sighting.

    .venv/bin/python bench/monitor_watch_vs_poll.py [--changes 24] [--period 0.5] [--interval 2]

Targets: every change seen; median delay < 100 ms; no request per change once watching.
``--strict`` exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.adapters.monitor_driver import Driver  # noqa: E402
from tests.core.timeline_objects import pod  # noqa: E402
from tests.k8s_emulator import Emulator  # noqa: E402

NS = "tradewise-ai"
FLAPPER = "api-0"


def _play(driver: Driver, changes: int, period: float, done: dict[int, float]) -> None:
    """Change the flapping pod ``changes`` times; ``done[restarts] = when`` for each state."""
    for i in range(1, changes + 1):
        before = time.time()
        driver.write(pod(FLAPPER, ready=i % 2 == 0, restarts=i))
        done[i] = before  # the change is visible somewhere between these two instants
        time.sleep(period)


def _fresh(workdir: Path, name: str) -> tuple[Emulator, Path]:
    emu = Emulator(namespaces=("default", NS)).start()
    Driver(emu).baseline()
    return emu, emu.write_kubeconfig(workdir / f"kc-{name}", ("staging",), namespace=NS)


def _counts(emu: Emulator, since: int) -> tuple[int, int]:
    reqs = emu.requests[since:]
    return sum(1 for r in reqs if not r.watch), sum(1 for r in reqs if r.watch)


def tradewise_side(workdir: Path, changes: int, period: float) -> dict[str, Any]:
    """The monitor's watches, in-process."""
    from tradewise_ops.adapters.kube import KubeGateway
    from tradewise_ops.adapters.monitor import ClusterWatcher, MonitorSession
    from tradewise_ops.core.timeline import PodSample

    emu, kubeconfig = _fresh(workdir, "tw")
    seen: dict[int, float] = {}

    def listener(records: list[Any]) -> None:
        now = time.time()
        for r in records:
            if isinstance(r, PodSample) and r.name == FLAPPER and r.restarts not in seen:
                seen[r.restarts] = now

    try:
        gateway = KubeGateway.from_kubeconfig(config_file=str(kubeconfig), namespace=NS)
        session = MonitorSession()
        session.listeners.append(listener)
        watcher = ClusterWatcher(gateway, session)
        before = len(emu.requests)
        watcher.prime()
        watcher.start(changes * period + 30)
        Driver(emu).wait_watching()
        started = len(emu.requests)
        done: dict[int, float] = {}
        _play(Driver(emu), changes, period, done)
        time.sleep(0.5)
        watcher.stop()
        gateway.close()
        total = _counts(emu, before)
        during = _counts(emu, started)
    finally:
        emu.stop()
    return _result("tradewise monitor (watches)", done, seen, total, during)


def kubectl_side(workdir: Path, changes: int, period: float, interval: float) -> dict[str, Any]:
    """``kubectl get ... -o json`` every ``interval`` s, as the old script did."""
    emu, kubeconfig = _fresh(workdir, "kc")
    seen: dict[int, float] = {}
    stop = threading.Event()
    env = {"KUBECONFIG": str(kubeconfig), "HOME": str(workdir), "PATH": "/usr/bin:/bin"}

    def poll() -> None:
        while not stop.is_set():
            out = subprocess.run(
                ["kubectl", "get", "hpa,deployments,pods,events", "-n", NS, "-o", "json"],
                env=env,
                capture_output=True,
                text=True,
                timeout=30,
            )
            now = time.time()
            if out.returncode == 0:
                for item in json.loads(out.stdout).get("items", []):
                    if item.get("kind") == "Pod" and item["metadata"]["name"] == FLAPPER:
                        statuses = item.get("status", {}).get("containerStatuses") or [{}]
                        restarts = int(statuses[0].get("restartCount", 0))
                        seen.setdefault(restarts, now)
            stop.wait(interval)

    try:
        before = len(emu.requests)
        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        time.sleep(interval)  # let the first poll happen, as the watches are up on the other side
        started = len(emu.requests)
        done: dict[int, float] = {}
        _play(Driver(emu), changes, period, done)
        time.sleep(interval + 0.5)
        stop.set()
        poller.join(30)
        total = _counts(emu, before)
        during = _counts(emu, started)
    finally:
        emu.stop()
    return _result(f"kubectl get every {interval:g}s (baseline)", done, seen, total, during)


def _result(
    label: str,
    done: dict[int, float],
    seen: dict[int, float],
    total: tuple[int, int],
    during: tuple[int, int],
) -> dict[str, Any]:
    delays = [(seen[i] - t) * 1000 for i, t in done.items() if i in seen]
    return {
        "label": label,
        "changes": len(done),
        "seen": len(delays),
        "median_ms": statistics.median(delays) if delays else None,
        "max_ms": max(delays) if delays else None,
        "requests": total[0],
        "watches": total[1],
        "requests_during_changes": during[0],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=24)
    parser.add_argument("--period", type=float, default=0.5)
    parser.add_argument("--interval", type=float, default=2.0)
    parser.add_argument("--strict", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        rows = [tradewise_side(workdir, args.changes, args.period)]
        if shutil.which("kubectl"):
            rows.append(kubectl_side(workdir, args.changes, args.period, args.interval))
        else:
            print("kubectl not on PATH: no baseline", file=sys.stderr)
    print(
        f"{args.changes} pod changes, one every {args.period:g}s; requests counted by the emulator"
    )
    print(
        "| what | changes seen | median delay | max delay | requests | watches | "
        "requests during the changes |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        med = "-" if r["median_ms"] is None else f"{r['median_ms']:.0f} ms"
        mx = "-" if r["max_ms"] is None else f"{r['max_ms']:.0f} ms"
        print(
            f"| {r['label']} | {r['seen']}/{r['changes']} | {med} | {mx} | {r['requests']} | "
            f"{r['watches']} | {r['requests_during_changes']} |"
        )
    tw = rows[0]
    ok = (
        tw["seen"] == tw["changes"]
        and tw["median_ms"] is not None
        and tw["median_ms"] < 100
        and tw["requests_during_changes"] == 0
    )
    print("targets " + ("met" if ok else "MISSED"))
    return 1 if args.strict and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
