"""``tradewise compare`` and ``load-test --baseline``: real load runs against the real app.

Two ``tradewise-api`` servers on loopback, one slowed by ``TRADEWISE_INJECT_LATENCY_MS=250``
(with 4 users on its 2 workers: p95 about 540 ms against 30-100 ms, a gap well beyond the
per-second spread this shared machine shows, which reached 140 ms in a busy minute).
Three short runs are made once per module (twice against the fast server, once against the slow
one); the tests compare them, run with ``--baseline`` against them, and read them back from a
release record in the Kubernetes emulator (``ENV@REVISION``).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from tests.k8s_emulator import Emulator
from tests.loadtest_app import ApiServer
from tradewise_ops.cli.main import app
from tradewise_ops.core import release as rel
from tradewise_ops.core.compare import load_summary

pytest_plugins = ["tests.k8s_emulator.fixtures"]

ANALYSIS = "/api/stock-analysis?symbol=AAPL"
NS = "tradewise-ai"


def invoke(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def load(url: str, out: Path, *extra: str, seconds: str = "5") -> Result:
    """A short load-test of the analysis endpoint: 4 users, all started in the first second.

    The p95 objective is out of the way (10 s): these tests are about the comparison.
    """
    return invoke(
        "load-test", seconds, "4", ANALYSIS, "--host", url, "--spawn-rate", "20",
        "--p95", "10000", "--report", str(out), *extra,
    )  # fmt: skip


class Runs:
    """The module's servers and reports: ``fast1``, ``fast2`` (same server), ``slow``."""

    def __init__(self, root: Path, fast: ApiServer, slow: ApiServer) -> None:
        self.root, self.fast, self.slow = root, fast, slow

    def __getitem__(self, name: str) -> Path:
        return self.root / name / "report.json"


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    root = tmp_path_factory.mktemp("runs")
    fast = ApiServer(root / "fast-api")
    slow = ApiServer(root / "slow-api", extra_env={"TRADEWISE_INJECT_LATENCY_MS": "250"})
    try:
        for name, server in (("fast1", fast), ("fast2", fast), ("slow", slow)):
            result = load(server.url, root / name)
            assert result.exit_code == 0, result.stderr
        yield Runs(root, fast, slow)
    finally:
        fast.stop()
        slow.stop()


# -- compare BASE NEW -------------------------------------------------------------------------
def test_two_runs_of_the_same_server_are_within_noise(runs: Runs) -> None:
    result = invoke("compare", str(runs["fast1"]), str(runs["fast2"]), "-o", "json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["regressed"] is False and doc["regressions"] == []
    assert "is within the thresholds of" in result.stderr
    p95 = next(r for r in doc["rows"] if r["metric"] == "p95_ms")
    assert p95["verdict"] in ("ok", "better", "within noise")
    assert p95["noise"]["base"]["intervals"] >= 3  # the per-interval series was used
    # and the other way round (a directory means its report.json)
    back = invoke("compare", str(runs["fast2"].parent), str(runs["fast1"].parent))
    assert back.exit_code == 0, back.stderr


def test_slow_against_fast_regresses_naming_both_numbers(runs: Runs) -> None:
    base = json.loads(runs["fast1"].read_text())["total"]["p95_ms"]
    new = json.loads(runs["slow"].read_text())["total"]["p95_ms"]
    result = invoke("compare", str(runs["fast1"]), str(runs["slow"]))
    assert result.exit_code == 1, result.stderr
    assert "regressed against" in result.stderr
    assert f"p95 {new:.1f} ms vs {base:.1f} ms" in result.stderr
    assert "REGRESSED" in result.stdout and "median moved / noise" in result.stdout
    # thresholds loose enough on the command line let the same two runs pass
    loose = invoke(
        "compare", str(runs["fast1"]), str(runs["slow"]), "--p95-percent", "100000",
        "--rps-percent", "99.9", "-o", "json",
    )  # fmt: skip
    assert loose.exit_code == 0, loose.stderr
    verdicts = {r["metric"]: r["verdict"] for r in json.loads(loose.stdout)["rows"]}
    assert verdicts["p95_ms"] == "ok" and verdicts["rps"] == "ok"


def test_reports_that_cannot_be_read_or_compared_exit_2(runs: Runs, tmp_path: Path) -> None:
    missing = invoke("compare", str(tmp_path / "nope.json"), str(runs["fast1"]))
    assert missing.exit_code == 2 and "no such report file" in missing.stderr
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    assert invoke("compare", str(text), str(runs["fast1"])).exit_code == 2
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"kind": "something"}))
    odd = invoke("compare", str(runs["fast1"]), str(other))
    assert odd.exit_code == 2 and "is not a tradewise load report" in odd.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    assert invoke("compare", str(empty), str(runs["fast1"])).exit_code == 2


# -- --baseline -------------------------------------------------------------------------------
def test_baseline_regression_exits_1_with_the_comparison_in_json_and_report(
    runs: Runs, tmp_path: Path
) -> None:
    out = tmp_path / "slow-again"
    result = load(runs.slow.url, out, "--baseline", str(runs["fast1"]), "-o", "json")
    assert result.exit_code == 1, result.stderr
    assert "SLOs met" in result.stderr and "this run regressed against" in result.stderr
    comparison = json.loads(result.stdout)["comparison"]
    assert comparison["comparable"] is True and comparison["regressed"] is True
    saved = json.loads((out / "report.json").read_text())
    assert saved["comparison"]["regressions"] == comparison["regressions"]
    page = (out / "report.html").read_text()
    assert "BASE p95" in page and "Against the baseline" in page and "regressed" in page


def test_baseline_of_the_same_server_exits_0(runs: Runs, tmp_path: Path) -> None:
    result = load(runs.fast.url, tmp_path / "again", "--baseline", str(runs["fast2"]))
    assert result.exit_code == 0, result.stderr
    assert "this run is within the thresholds of" in result.stderr


def test_a_baseline_that_is_no_report_exits_2_before_any_load(runs: Runs, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2, 3]")
    before = runs.fast.requests_counted("stock_analysis")
    result = load(runs.fast.url, tmp_path / "x", "--baseline", str(bad))
    assert result.exit_code == 2 and "not a tradewise load report" in result.stderr
    assert runs.fast.requests_counted("stock_analysis") == before


def test_a_baseline_of_other_endpoints_exits_2_after_writing_the_report(
    runs: Runs, tmp_path: Path
) -> None:
    out = tmp_path / "health"
    result = invoke(
        "load-test", "2", "2", "/api/health", "--host", runs.fast.url, "--report", str(out),
        "--baseline", str(runs["fast1"]),
    )  # fmt: skip
    assert result.exit_code == 2, result.stderr
    assert f"only in BASE: {ANALYSIS}; only in NEW: /api/health" in result.stderr
    saved = json.loads((out / "report.json").read_text())
    assert saved["total"]["requests"] > 0 and saved["comparison"]["comparable"] is False
    # compare says the same about the two files
    both = invoke("compare", str(runs["fast1"]), str(out / "report.json"))
    assert both.exit_code == 2 and "different endpoints" in both.stderr


def test_performance_test_baseline_compares_each_group(runs: Runs, tmp_path: Path) -> None:
    def perf(out: Path, *extra: str) -> Result:
        return invoke(
            "performance-test", "--host", runs.fast.url, "--scale-duration", "0.08",
            "--wait", "0.1-0.3", "--p95", "10000", "--report", str(out), *extra,
        )  # fmt: skip

    first = perf(tmp_path / "p1")
    assert first.exit_code == 0, first.stderr
    assert set(json.loads((tmp_path / "p1" / "report.json").read_text())["endpoint_intervals"]) >= {
        "health",
        "analysis_hot",
    }
    second = perf(tmp_path / "p2", "--baseline", str(tmp_path / "p1"), "-o", "json")
    assert second.exit_code in (0, 1), second.stderr  # the run's own noise decides
    comparison = json.loads(second.stdout)["comparison"]
    assert comparison["comparable"] is True
    scopes = {r["scope"] for r in comparison["rows"]}
    assert {"total", "health", "analysis_hot", "analysis_cold", "stats"} <= scopes
    assert second.exit_code == (1 if comparison["regressed"] else 0)


# -- ENV@REVISION: the verification load result of a release record ---------------------------
def _record(emu: Emulator, revision: int, verification: dict | None) -> None:
    release = rel.Release(
        revision=revision, environment="staging", namespace=NS, tag=f"v{revision}",
        time="2026-11-30T08:00:00Z", user="ci", change_cause=f"deploy v{revision}",
        status=rel.DEPLOYED, verification=verification,
    )  # fmt: skip
    emu.put(rel.to_secret(release))


def test_release_records_as_base(runs: Runs, emulator: Emulator, kubeconfig: Path) -> None:
    summary = load_summary(json.loads(runs["fast1"].read_text()))
    _record(emulator, 1, {"load": summary})
    _record(emulator, 2, None)
    same = invoke("compare", "staging@1", str(runs["fast2"]))
    assert same.exit_code == 0, same.stderr
    assert "within the thresholds of staging@1" in same.stderr
    reads = [r.path for r in emulator.requests if r.method == "GET"]
    assert f"/api/v1/namespaces/{NS}/secrets/tradewise-release.v1" in reads
    worse = invoke("compare", "staging@1", str(runs["slow"]))
    assert worse.exit_code == 1 and "regressed against staging@1" in worse.stderr
    none = invoke("compare", "staging@2", str(runs["fast2"]))
    assert none.exit_code == 2
    assert "revision 2 of staging carries no verification load result" in none.stderr
    gone = invoke("compare", "staging@9", str(runs["fast2"]))
    assert gone.exit_code == 2 and "staging has no release revision 9" in gone.stderr
    local = invoke("compare", "local@1", str(runs["fast2"]))
    assert local.exit_code == 2 and "release records live in a Kubernetes cluster" in local.stderr


def test_a_file_named_like_a_revision_is_a_file(
    runs: Runs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    shutil.copy(runs["fast1"], tmp_path / "prod@3")
    result = invoke("compare", "prod@3", str(runs["fast2"]))
    assert result.exit_code == 0, result.stderr
