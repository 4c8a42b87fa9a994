"""Requests per deploy and the ready -> return delay of ``tradewise deploy``, against the emulator.

Each round starts a fresh Kubernetes API emulator (``tests/k8s_emulator``, real HTTP on loopback)
whose auto controller makes every workload ready ``--delay`` s after each change, then runs:

- ``tradewise deploy staging --tag v1`` (first deploy) and ``--tag v2`` (an upgrade), in this
  process (until the command returns; the client shares the interpreter with the emulator and its
  controller) and in their own process (until the process exits, as a user sees it);
- the baseline, on another fresh emulator: ``kubectl apply --server-side -f`` of the same rendered
  manifests, then ``kubectl rollout status`` of every Deployment and StatefulSet (as ``deploy.sh``
  would), if kubectl is on PATH.

It counts the requests the emulator served during each (watches separately), and the delay between
the last workload turning ready (its status stored in the emulator) and the command returning.

    .venv/bin/python bench/deploy_requests.py [--rounds 3] [--delay 0.05] [--strict]

Targets: requests <= 2 per applied object plus the watches; ready -> return < 1 s; a deploy in
its own process (until exit) takes at most 1.0x the kubectl baseline of the same run (the ratio is
printed per row). ``--strict`` exits 1 when a target is missed. The load average before and after
is printed: the machine may be shared.
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
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.k8s_emulator import Emulator  # noqa: E402

NS = "tradewise-ai"


def _counts(emu: Emulator, since: int) -> tuple[int, int]:
    reqs = emu.requests[since:]
    return sum(1 for r in reqs if not r.watch), sum(1 for r in reqs if r.watch)


def _deploy(emu: Emulator, kc: Path, tag: str, own_process: bool) -> tuple[dict, float]:
    """Run one deploy; its JSON document and when it returned (monotonic)."""
    import json

    args = ["--config", str(ROOT / "tradewise.yaml"), "deploy", "staging", "--tag", tag]
    args += ["-o", "json"]
    if own_process:
        env = {**os.environ, "KUBECONFIG": str(kc), "NO_COLOR": "1"}
        proc = subprocess.run(
            [sys.executable, "-m", "tradewise_ops", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        returned = time.monotonic()
        code, out, err = proc.returncode, proc.stdout, proc.stderr
    else:
        from typer.testing import CliRunner

        from tradewise_ops.cli.main import app

        os.environ["KUBECONFIG"] = str(kc)
        result = CliRunner().invoke(app, args)
        returned = time.monotonic()
        code, out, err = result.exit_code, result.stdout, result.stderr
    if code != 0:
        raise SystemExit(f"deploy failed: {err}")
    return json.loads(out), returned


def tradewise_round(delay: float, workdir: Path, own_process: bool) -> list[dict[str, Any]]:
    """Two deploys (first, upgrade), in this process or in their own (until the process exits)."""
    out = []
    how = "own process, until exit" if own_process else "in-process, until return"
    with Emulator(namespaces=("default",)) as emu:
        kc = emu.write_kubeconfig(workdir / "kc-tw", ("staging",))
        emu.controllers.auto(delay=delay)
        for label, tag in (("first deploy", "v1"), ("upgrade", "v2")):
            emu.controllers.ready_at.clear()
            before = len(emu.requests)
            start = time.monotonic()
            doc, returned = _deploy(emu, kc, tag, own_process)
            plain, watches = _counts(emu, before)
            out.append(
                {
                    "what": f"tradewise {label} ({how})",
                    "objects": doc["applied"],
                    "requests": plain,
                    "watches": watches,
                    "per_object": plain / doc["applied"],
                    "ready_to_return": returned - max(emu.controllers.ready_at.values()),
                    "seconds": returned - start,
                }
            )
    return out


def kubectl_round(delay: float, workdir: Path) -> dict[str, Any] | None:
    """The baseline: kubectl apply --server-side, then kubectl rollout status per workload."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        return None
    from tradewise_ops.core.config import load_config
    from tradewise_ops.core.render import render_environment, to_yaml_stream

    objects = render_environment(load_config(ROOT / "tradewise.yaml"), "staging", tag="v1")
    with Emulator(namespaces=("default",)) as emu:
        # what the cluster serves, as tradewise deploy applies it (it skips an unserved kind,
        # such as the VerticalPodAutoscaler without its CRD; kubectl would fail on it)
        served = {r.kind for r in emu.store.resources}
        objects = [o for o in objects if o["kind"] in served]
        manifest = workdir / "manifests.yaml"
        manifest.write_text(to_yaml_stream(objects))
        workloads = [o for o in objects if o["kind"] in ("Deployment", "StatefulSet")]
        kc = emu.write_kubeconfig(workdir / "kc-kubectl", ("staging",))
        env = {**os.environ, "KUBECONFIG": str(kc), "HOME": str(workdir)}
        emu.controllers.auto(delay=delay)
        start = time.monotonic()
        subprocess.run(
            [
                kubectl,
                "apply",
                "--server-side",
                "--force-conflicts",
                "--validate=false",
                "-f",
                str(manifest),
            ],
            env=env,
            check=True,
            capture_output=True,
            timeout=120,
        )
        for w in workloads:
            subprocess.run(
                [
                    kubectl,
                    "rollout",
                    "status",
                    f"{w['kind'].lower()}/{w['metadata']['name']}",
                    "-n",
                    NS,
                    "--timeout=60s",
                ],
                env=env,
                check=True,
                capture_output=True,
                timeout=90,
            )
        returned = time.monotonic()
        plain, watches = _counts(emu, 0)
        return {
            "what": "kubectl apply + rollout status",
            "objects": len(objects),
            "requests": plain,
            "watches": watches,
            "per_object": plain / len(objects),
            "ready_to_return": returned - max(emu.controllers.ready_at.values()),
            "seconds": returned - start,
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--delay", type=float, default=0.05, help="controller delay (s)")
    parser.add_argument("--strict", action="store_true")
    args = parser.parse_args()
    load_before = os.getloadavg()
    rows: dict[str, list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):
            for own in (False, True):
                for row in tradewise_round(args.delay, Path(tmp), own):
                    rows.setdefault(row["what"], []).append(row)
            base = kubectl_round(args.delay, Path(tmp))
            if base is not None:
                rows.setdefault(base["what"], []).append(base)
    print(
        f"{'what':52} {'objects':>7} {'requests':>8} {'watches':>7} {'per obj':>7} "
        f"{'ready->return':>13} {'total':>7}"
    )
    missed = []
    medians: dict[str, dict[str, float]] = {}
    for what, runs in rows.items():
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0] if k != "what"}
        medians[what] = med
        print(
            f"{what:52} {med['objects']:7.0f} {med['requests']:8.0f} {med['watches']:7.0f} "
            f"{med['per_object']:7.2f} {med['ready_to_return'] * 1000:11.0f}ms "
            f"{med['seconds']:6.2f}s"
        )
        if what.startswith("tradewise"):
            if med["requests"] > 2 * med["objects"]:
                missed.append(f"{what}: {med['requests']:.0f} requests > 2 x {med['objects']:.0f}")
            if med["ready_to_return"] >= 1.0:
                missed.append(f"{what}: ready -> return {med['ready_to_return']:.2f}s >= 1s")
    print(f"(medians of {args.rounds} rounds; controller delay {args.delay}s)")
    base = medians.get("kubectl apply + rollout status")
    if base is not None:
        for what, med in medians.items():
            if not what.startswith("tradewise"):
                continue
            ratio = med["seconds"] / base["seconds"]
            print(f"{what}: {ratio:.2f}x the kubectl baseline's total")
            if "own process" in what and ratio > 1.0:
                missed.append(f"{what}: {ratio:.2f}x kubectl > 1.0x")
    load_after = os.getloadavg()
    print(
        "load average (1, 5, 15 min) before "
        + " ".join(f"{x:.2f}" for x in load_before)
        + ", after "
        + " ".join(f"{x:.2f}" for x in load_after)
    )
    for line in missed:
        print(f"target missed: {line}")
    return 1 if missed and args.strict else 0


if __name__ == "__main__":
    raise SystemExit(main())
