"""``tradewise capacity --env local`` against ``bench/app_throughput.py --workers 1``, same run.

Issue 14: what ``capacity`` says one API process serves must agree within 25% with wrk's measure
of the same app under the same gunicorn settings with one worker. For each endpoint this runs the
bench (wrk ``-t2 -c32``, interleaved rounds, medians) and then ``capacity`` with each generator
asked for, and prints capacity/bench.

    .venv/bin/python bench/capacity_agreement.py [--generators wrk,locust] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
ENDPOINTS = {
    "health": "/api/health",
    "cached analysis": "/api/stock-analysis?symbol=AAPL",
}


def _bench(rounds: int, duration: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "app_throughput.py"), "--workers", "1",
         "--rounds", str(rounds), "--duration", str(duration), "--json"],
        capture_output=True, text=True, check=True, timeout=1800,
    ).stdout  # fmt: skip
    doc = json.loads(out[out.index("{\n") :])
    return {endpoint: doc["runs"][f"{endpoint}/app"]["rps"] for endpoint in ENDPOINTS}


def _capacity(path: str, generator: str, max_seconds: int, step: int) -> tuple[float, str]:
    result = subprocess.run(
        [str(BIN / "tradewise"), "capacity", "--env", "local", "--endpoint", path,
         "--generator", generator, "--max-seconds", str(max_seconds),
         "--step-seconds", str(step), "-o", "json"],
        capture_output=True, text=True, timeout=max_seconds + 300,
    )  # fmt: skip
    if result.returncode not in (0, 1):
        raise RuntimeError(f"capacity exited {result.returncode}: {result.stderr[-500:]}")
    doc = json.loads(result.stdout)
    steps = doc["measurement"]["steps"]
    shape = ", ".join(f"{s['users']}:{s['rps']:.0f}" for s in steps)
    cpu = doc["measurement"]["generator"]["cpu_percent"]
    return float(doc["per_replica_rps"]), f"steps users:req/s {shape}; generator CPU {cpu}%"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generators", default="wrk,locust")
    parser.add_argument("--rounds", type=int, default=2, help="bench rounds (median)")
    parser.add_argument("--duration", type=int, default=6, help="seconds per bench wrk run")
    parser.add_argument("--max-seconds", type=int, default=60, help="capacity's bound")
    parser.add_argument("--step-seconds", type=int, default=5, help="capacity's step")
    args = parser.parse_args()
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    bench = _bench(args.rounds, args.duration)
    print(f"{started}; bench/app_throughput.py --workers 1 --rounds {args.rounds} "
          f"--duration {args.duration}, then tradewise capacity --env local "
          f"--max-seconds {args.max_seconds} --step-seconds {args.step_seconds}")  # fmt: skip
    ok = True
    for generator in args.generators.split(","):
        for endpoint, path in ENDPOINTS.items():
            rps, detail = _capacity(path, generator, args.max_seconds, args.step_seconds)
            ratio = rps / bench[endpoint]
            within = abs(ratio - 1) <= 0.25
            ok = ok and within
            print(f"{'PASS' if within else 'MISS'}  {endpoint:<16} {generator:<7} capacity "
                  f"{rps:7.0f} req/s / bench {bench[endpoint]:7.0f} = {ratio:.2f} "
                  f"(target 0.75-1.25)  [{detail}]")  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
