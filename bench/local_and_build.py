"""Benchmark: `tradewise local up` to ready, `tradewise build` warm, image sizes against the base.

Each timing is a whole process (`tradewise ...` as a user runs it), median of N runs, with a
baseline measured in the same run:
- local up -> ready vs the bare API alone (`tradewise-api`, 1 worker) -> /api/health answering:
  the floor any stack start pays;
- build with a warm cache vs the first (cold) build in a fresh private engine;
- each image's size against the debootstrap base image (the runtime stage's own weight).

Runs a private dockerd (no bridge) from tests/docker_engine.py; needs root, dockerd, debootstrap,
redis-server. Usage: python bench/local_and_build.py [--runs N] [--skip-docker]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.helpers import free_port  # noqa: E402

BIN = Path(sys.executable).parent


def _wait_http(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.02)
    raise TimeoutError(url)


def _config(tmp: Path) -> Path:
    import yaml

    raw = yaml.safe_load((ROOT / "tradewise.yaml").read_text())
    raw["environments"]["local"]["local"] = {
        "api_port": free_port(),
        "redis_port": free_port(),
        "api_processes": 2,
        "worker_processes": 1,
        "state_dir": str(tmp / "state"),
    }
    raw["defaults"]["images"] = {"api": "tw-bench-api", "worker": "tw-bench-worker"}
    path = tmp / "tradewise.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def bench_local(runs: int) -> dict[str, float]:
    tmp = Path(tempfile.mkdtemp(prefix="tw-bench-local-"))
    cfg = _config(tmp)
    tw = [str(BIN / "tradewise"), "--config", str(cfg)]
    ups, bare = [], []
    try:
        for _ in range(runs):
            started = time.monotonic()
            subprocess.run([*tw, "local", "up"], check=True, capture_output=True)
            ups.append(time.monotonic() - started)
            subprocess.run([*tw, "local", "down"], check=True, capture_output=True)
            port = free_port()
            env = dict(
                os.environ,
                BIND=f"127.0.0.1:{port}",
                WEB_CONCURRENCY="1",
                DATABASE_URL=f"sqlite:///{tmp}/bare.db",
            )
            started = time.monotonic()
            proc = subprocess.Popen(
                [str(BIN / "tradewise-api")],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                _wait_http(f"http://127.0.0.1:{port}/api/health")
                bare.append(time.monotonic() - started)
            finally:
                proc.terminate()
                proc.wait(timeout=30)
    finally:
        subprocess.run([*tw, "local", "down"], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
    up, floor = statistics.median(ups), statistics.median(bare)
    print(f"local up -> ready (4 processes + redis), median of {runs}: {up:.2f} s")
    print(f"bare tradewise-api -> /api/health, median of {runs}:      {floor:.2f} s")
    print(f"ratio up / bare API: {up / floor:.2f}x")
    return {"up": up, "bare": floor}


def bench_build(runs: int) -> None:
    from tests.docker_engine import DockerEngine, base_tarball, import_base_image
    from tradewise_ops.adapters.images import image_requirements, prepare_wheelhouse

    print("preparing: base image tarball (debootstrap, cached), wheelhouse, private dockerd")
    base_tarball()
    wheels = Path(tempfile.mkdtemp(prefix="tw-bench-wheels-"))
    prepare_wheelhouse(wheels, ROOT / "pyproject.toml")
    assert image_requirements(ROOT / "pyproject.toml")
    engine = DockerEngine(Path(tempfile.mkdtemp(prefix="twd-")))
    engine.start()
    tmp = Path(tempfile.mkdtemp(prefix="tw-bench-build-"))
    cfg = _config(tmp)
    try:
        base = import_base_image(engine)
        env = dict(os.environ, DOCKER_HOST=engine.host)
        # build from a snapshot of HEAD, so edits in the checkout during the run change nothing
        snapshot = tmp / "src"
        snapshot.mkdir()
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", "HEAD"], check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(snapshot)], input=archive, check=True)
        cmd = [str(BIN / "tradewise"), "--config", str(cfg), "build", "bench"]
        cmd += ["--base-image", base, "--wheelhouse", str(wheels)]

        def timed() -> float:
            started = time.monotonic()
            subprocess.run(cmd, check=True, capture_output=True, env=env, cwd=snapshot)
            return time.monotonic() - started

        cold = timed()
        warm = [timed() for _ in range(runs)]
        edited = []
        for i in range(runs):  # a one-line code change: the project is reinstalled, deps cached
            with open(snapshot / "app" / "__init__.py", "a") as fh:
                fh.write(f"# bench edit {i}\n")
            edited.append(timed())
        client = engine.client()
        try:
            base_mb = client.images.get(base).attrs["Size"] / 1e6
            sizes = {
                name: client.images.get(f"{name}:bench").attrs["Size"] / 1e6
                for name in ("tw-bench-api", "tw-bench-worker")
            }
        finally:
            client.close()
    finally:
        engine.stop()
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(wheels, ignore_errors=True)
    print(f"build both images, cold (fresh engine, base imported): {cold:.1f} s")
    print(f"build both images, warm cache, median of {runs}:      {statistics.median(warm):.1f} s")
    print(f"ratio warm / cold: {statistics.median(warm) / cold:.2f}")
    print(
        f"build both after a one-line code change, median of {runs}: "
        f"{statistics.median(edited):.1f} s"
    )
    print(f"base image (debootstrap bookworm + python3): {base_mb:.0f} MB")
    for name, mb in sizes.items():
        print(f"{name}: {mb:.0f} MB (+{mb - base_mb:.0f} MB over the base)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--skip-docker", action="store_true")
    args = parser.parse_args()
    bench_local(args.runs)
    if not args.skip_docker:
        bench_build(args.runs)


if __name__ == "__main__":
    main()
