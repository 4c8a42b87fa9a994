"""``tradewise scale suggest --from FILE``: a recorded timeline in, a schedules block out."""

from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from typer.testing import CliRunner

from tradewise_ops.cli.main import app
from tradewise_ops.core.config import parse_config
from tradewise_ops.core.timeline.jsonl import dumps_jsonl
from tradewise_ops.core.timeline.records import DeploymentSample, LoadSample

ROOT = Path(__file__).resolve().parents[2]
NY = ZoneInfo("America/New_York")


def _rps(moment: datetime) -> float:
    """A trading day: quiet night, busy session 09:30-16:00, quiet evening."""
    minutes = moment.hour * 60 + moment.minute
    return 700.0 if 9 * 60 + 30 <= minutes < 16 * 60 else 40.0


@pytest.fixture
def timeline(tmp_path: Path) -> Path:
    start = datetime(2026, 3, 9, 0, 0, tzinfo=NY)  # a Monday
    records: list[object] = []
    for i in range(24 * 60):  # one sample a minute, as monitor --record writes them
        moment = start + timedelta(minutes=i)
        records.append(LoadSample(t=moment.timestamp(), rps=_rps(moment), users=10))
        if i % 60 == 0:  # other records of the timeline are ignored
            records.append(DeploymentSample(moment.timestamp(), "api", 2, 2, 2, 2))
    path = tmp_path / "monitor.jsonl"
    path.write_text(dumps_jsonl(records), encoding="utf-8")  # type: ignore[arg-type]
    return path


def _run(*args: str) -> object:
    return CliRunner().invoke(
        app, ["--config", str(ROOT / "tradewise.yaml"), "scale", "suggest", *args]
    )


def test_the_suggested_block_scales_up_before_the_session_and_down_after(timeline: Path) -> None:
    result = _run("--from", str(timeline), "-o", "json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    # bands: low serves 100 req/s, high 1000; 700 x 1.3 headroom = 910 needs high
    pattern = {p["at"]: p for p in doc["pattern"]}
    assert len(pattern) == 24
    assert pattern["03:00"]["profile"] == "low" and pattern["03:00"]["p95_rps"] == 40.0
    assert pattern["09:00"]["profile"] == "high"  # half of 09:00-10:00 is the session
    assert pattern["15:00"]["profile"] == "high" and pattern["16:00"]["profile"] == "low"
    assert doc["schedules"] == [
        {"name": "high-0845", "profile": "high", "cron": "45 8 * * 1-5",
         "timezone": "America/New_York", "calendar": "nyse"},
        {"name": "low-1600", "profile": "low", "cron": "0 16 * * 1-5",
         "timezone": "America/New_York", "calendar": "nyse"},
    ]  # fmt: skip
    assert doc["warnings"] == []


def test_the_printed_yaml_pastes_into_the_config(timeline: Path) -> None:
    result = _run("--from", str(timeline))
    assert result.exit_code == 0, result.stderr
    assert "#   09:00     700.0  -> high" in result.stdout
    block = yaml.safe_load(result.stdout)
    raw = yaml.safe_load((ROOT / "tradewise.yaml").read_text(encoding="utf-8"))
    doc = copy.deepcopy(raw)
    doc["schedules"] = block["schedules"]
    schedules = parse_config(doc).schedules
    assert [(s.name, s.profile, s.cron, s.calendar) for s in schedules] == [
        ("high-0845", "high", "45 8 * * 1-5", "nyse"),
        ("low-1600", "low", "0 16 * * 1-5", "nyse"),
    ]


def test_a_measured_capacity_too_small_for_the_peak_warns(timeline: Path) -> None:
    # 60 req/s a replica: peak (15 replicas) serves 900 < 910
    result = _run("--from", str(timeline), "--per-replica-rps", "60", "-o", "json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["capacity_rps"]["peak"] == 900.0
    assert {s["profile"] for s in doc["schedules"]} == {"peak", "low"}
    assert any("more than peak serves" in w for w in doc["warnings"])


def test_a_file_without_load_is_bad_input(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    result = _run("--from", str(empty))
    assert result.exit_code == 2
    assert "no load samples" in result.stderr
    missing = _run("--from", str(tmp_path / "nope.jsonl"))
    assert missing.exit_code == 2 and "cannot read it" in missing.stderr
    prom = _run("--from", "prometheus")
    assert prom.exit_code == 2 and "monitoring.prometheus_url" in prom.stderr
