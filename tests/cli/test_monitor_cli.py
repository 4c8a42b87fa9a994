"""``tradewise monitor`` end to end: the emulator over real HTTP, a kubeconfig, CliRunner."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from tests.adapters.monitor_driver import Driver
from tests.helpers import free_port
from tests.k8s_emulator import Emulator
from tradewise_ops.cli.main import app
from tradewise_ops.core.timeline import loads_jsonl

pytest_plugins = ["tests.k8s_emulator.fixtures"]

REPO = Path(__file__).resolve().parents[2]
GAP = 0.5


def _config(tmp_path: Path, **slo: Any) -> Path:
    """The repository's tradewise.yaml with the given SLO overrides."""
    doc = yaml.safe_load((REPO / "tradewise.yaml").read_text(encoding="utf-8"))
    doc.setdefault("slo", {}).update(slo)
    path = tmp_path / "tradewise.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def _drive_later(emulator: Emulator, play: Any) -> threading.Thread:
    driver = Driver(emulator)

    def run() -> None:
        driver.wait_watching()
        play(driver)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_monitor_times_a_scale_up_and_records_the_timeline(
    emulator: Emulator, kubeconfig: Path, tmp_path: Path
) -> None:
    Driver(emulator).baseline()
    record = tmp_path / "timeline.jsonl"
    report = tmp_path / "report.html"
    thread = _drive_later(emulator, lambda d: d.scale_up(GAP))
    result = CliRunner().invoke(
        app,
        [
            "monitor",
            "3",
            "--env",
            "staging",
            "--record",
            str(record),
            "--report",
            str(report),
            "-o",
            "json",
            "--config",
            str(_config(tmp_path)),
        ],
    )
    thread.join(5)
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["verdict"] == "pass" and data["interrupted"] is False
    (up,) = data["scale_ups"]
    assert (up["hpa"], up["from_replicas"], up["to_replicas"], up["metric"]) == (
        "tradewise-api-hpa",
        3,
        5,
        "cpu",
    )
    assert up["total_seconds"] == pytest.approx(2 * GAP, abs=0.35)
    assert up["slo_seconds"] == 120
    assert data["sentence"].startswith("Scaling SLOs met: 1 scale-up(s)")
    assert any(e["reason"] == "SuccessfulRescale" for e in data["events"])
    records = loads_jsonl(record.read_text(encoding="utf-8"))
    assert len(records) == data["records"]
    assert "monitoring namespace tradewise-ai" in result.stderr
    page = report.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "<svg" in page
    assert "Replicas of tradewise-api-deployment" in page and "SuccessfulRescale" in page


def test_without_a_terminal_each_notable_change_is_one_line(
    emulator: Emulator, kubeconfig: Path, tmp_path: Path
) -> None:
    """stderr captured (not a TTY): a line per HPA and Deployment change, none for a metric."""
    Driver(emulator).baseline()
    thread = _drive_later(emulator, lambda d: d.scale_up(GAP))
    result = CliRunner().invoke(
        app, ["--config", str(_config(tmp_path)), "monitor", "3", "-e", "staging"]
    )
    thread.join(5)
    assert result.exit_code == 0, result.stderr
    lines = result.stderr.splitlines()
    changes = [line for line in lines if line.startswith(("hpa ", "deployment "))]
    # the HPA's and the Deployment's rescale are written back to back and arrive on two watch
    # streams, which keep no order between them; the pods turn ready one gap later
    assert sorted(changes[:2]) == [
        "deployment tradewise-api-deployment: desired 3 -> 5, ready 3, updated 3",
        "hpa tradewise-api-hpa: desired 3 -> 5, current 3, min 3, max 20 (cpu 90%/70%)",
    ]
    assert changes[2:] == [
        "deployment tradewise-api-deployment: desired 5, ready 3 -> 5, updated 3 -> 5",
    ]
    # the cpu crossing its target alone (3 -> 3 replicas) is no line; the rescale event is one
    assert not any("cpu 85%/70%" in line for line in lines)
    assert any(line.startswith("event SuccessfulRescale") for line in lines)
    # the summary still goes to stdout
    assert "Scale-ups" in result.stdout


def test_a_missed_scale_up_slo_exits_1_after_the_summary(
    emulator: Emulator, kubeconfig: Path, tmp_path: Path
) -> None:
    Driver(emulator).baseline()
    thread = _drive_later(emulator, lambda d: d.scale_up(GAP))
    result = CliRunner().invoke(
        app,
        ["--config", str(_config(tmp_path, scale_up_seconds=0.4)), "monitor", "3", "-e", "staging"],
    )
    thread.join(5)
    assert result.exit_code == 1, result.stderr
    assert "Scale-ups" in result.stdout and "FAIL" in result.stdout
    assert "Scaling SLOs missed by tradewise-api-hpa 3->5" in result.stderr


def test_an_unreachable_cluster_exits_3_with_a_sentence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()  # nothing listens there
    dead = tmp_path / "kubeconfig"
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "staging", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "staging",
    }
    dead.write_text(yaml.safe_dump(doc), encoding="utf-8")
    monkeypatch.setenv("KUBECONFIG", str(dead))
    started = time.monotonic()
    result = CliRunner().invoke(app, ["monitor", "5", "--env", "staging"])
    assert result.exit_code == 3, result.stderr
    assert f"127.0.0.1:{port}" in result.stderr and "error:" in result.stderr
    assert time.monotonic() - started < 15


@pytest.mark.parametrize("seconds", ["0", "-5", "ten"])
def test_bad_seconds_is_bad_input(seconds: str) -> None:
    result = CliRunner().invoke(app, ["monitor", "--env", "staging", "--", seconds])
    assert result.exit_code == 2
    assert "SECONDS" in result.stderr


def test_ctrl_c_ends_early_with_the_summary_and_a_whole_record_file(
    emulator: Emulator, kubeconfig: Path, tmp_path: Path
) -> None:
    driver = Driver(emulator)
    driver.baseline()
    record = tmp_path / "timeline.jsonl"
    env = dict(os.environ, KUBECONFIG=str(kubeconfig), NO_COLOR="1")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tradewise_ops",
            "monitor",
            "60",
            "-e",
            "staging",
            "-o",
            "json",
            "--record",
            str(record),
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        driver.wait_watching(timeout=20)
        driver.scale_up(GAP)
        time.sleep(0.5)
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert time.monotonic() - started < 10
    assert proc.returncode == 0, err
    data = json.loads(out)
    assert data["interrupted"] is True
    assert len(data["scale_ups"]) == 1 and data["scale_ups"][0]["verdict"] == "pass"
    assert "interrupted" in err
    lines = record.read_text(encoding="utf-8").splitlines()
    assert len(lines) == data["records"]
    assert all(json.loads(line)["type"] for line in lines)


def test_a_cluster_lost_mid_way_exits_3_after_the_summary(
    emulator: Emulator, kubeconfig: Path
) -> None:
    Driver(emulator).baseline()

    def play(driver: Driver) -> None:
        driver.scale_up(GAP)
        time.sleep(0.3)
        emulator.stop()  # the API server goes away; the watches cannot resume

    thread = _drive_later(emulator, play)
    started = time.monotonic()
    result = CliRunner().invoke(app, ["monitor", "60", "-e", "staging", "-o", "json"])
    thread.join(5)
    assert result.exit_code == 3, result.stderr
    assert time.monotonic() - started < 30
    data = json.loads(result.stdout)
    assert data["interrupted"] is True and len(data["scale_ups"]) == 1
    assert "error:" in result.stderr and emulator.url in result.stderr
