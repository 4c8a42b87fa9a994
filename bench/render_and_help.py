"""Start-up and render speed, timed as whole processes against ``python -c pass`` in one run.

Targets: ``tradewise render prod`` (render + schema and policy validation of every prod
manifest) under 1 s; ``tradewise --help`` under 250 ms. The commands run round-robin (so noise
from other work on the machine spreads over all of them) and each figure is a median; the CPU
time (user + system of the child) is shown too, as it suffers less from a busy machine.

Usage: python bench/render_and_help.py [--runs N] [--strict]   (--strict: exit 1 on a miss)
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _tradewise() -> list[str]:
    script = BIN / "tradewise"
    return [str(script)] if script.exists() else [sys.executable, "-m", "tradewise_ops"]


def _time(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr.decode()}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args()

    tw = _tradewise()
    config = str(ROOT / "tradewise.yaml")
    cache = tempfile.mkdtemp(prefix="tradewise-bench-cache-")
    warm = {**os.environ, "XDG_CACHE_HOME": cache, "TRADEWISE_CONFIG": config}
    cold = {**warm, "TRADEWISE_NO_CACHE": "1"}
    cases: list[tuple[str, list[str], dict[str, str], float | None]] = [
        ("python -c pass", [sys.executable, "-c", "pass"], warm, None),
        ("tradewise --help", [*tw, "--help"], warm, 0.250),
        ("render prod (template cache)", [*tw, "render", "prod", "--tag", "v1.2.3"], warm, 1.0),
        ("render prod (no cache)", [*tw, "render", "prod", "--tag", "v1.2.3"], cold, 1.0),
        ("lint --all", [*tw, "lint", "--all", "--tag", "v1.2.3"], warm, None),
    ]
    for _, cmd, env, _ in cases:  # warm-up: page cache, template cache
        _time(cmd, env)
    walls: dict[str, list[float]] = {name: [] for name, *_ in cases}
    cpus: dict[str, list[float]] = {name: [] for name, *_ in cases}
    for _ in range(args.runs):
        for name, cmd, env, _ in cases:
            wall, cpu = _time(cmd, env)
            walls[name].append(wall)
            cpus[name].append(cpu)

    base = statistics.median(walls["python -c pass"])
    print(f"{'command':32} {'wall ms':>8} {'cpu ms':>8} {'x pass':>7}  target")
    missed = 0
    for name, _, _, target in cases:
        wall = statistics.median(walls[name])
        cpu = statistics.median(cpus[name])
        verdict = ""
        if target is not None:
            ok = wall < target
            missed += not ok
            verdict = f"< {target * 1000:.0f} ms {'ok' if ok else 'MISSED'}"
        print(f"{name:32} {wall * 1000:8.0f} {cpu * 1000:8.0f} {wall / base:7.1f}  {verdict}")
    print(f"({args.runs} runs each, round-robin, medians; load average {os.getloadavg()[0]:.1f})")
    return 1 if missed and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
