"""``core.stress``: targets, bounds, the pool figures and the db verdict, as data."""

from __future__ import annotations

import dataclasses

import pytest

from tradewise_ops.core.config import DatabasePool, Slo, StressSettings, load_config
from tradewise_ops.core.stress import (
    PoolScrape,
    db_outcome,
    db_spec,
    db_users,
    parse_pool,
    pool_figures,
    pool_series,
    scenario_seconds,
    service_environment,
    stress_target,
)
from tradewise_ops.errors import BadInputError, ConfigError

CONFIG = load_config("tradewise.yaml")
LOCAL = CONFIG.environment("local")
STAGING = CONFIG.environment("staging")

SCRAPE = """\
# TYPE tradewise_db_pool_checkouts_total counter
tradewise_db_pool_checkouts_total 120.0
# TYPE tradewise_db_pool_waits_total counter
tradewise_db_pool_waits_total 40.0
# TYPE tradewise_db_pool_wait_seconds histogram
tradewise_db_pool_wait_seconds_bucket{le="0.01"} 10.0
tradewise_db_pool_wait_seconds_bucket{le="0.1"} 30.0
tradewise_db_pool_wait_seconds_bucket{le="1.0"} 40.0
tradewise_db_pool_wait_seconds_bucket{le="+Inf"} 40.0
tradewise_db_pool_wait_seconds_count 40.0
tradewise_db_pool_wait_seconds_sum 2.0
# TYPE tradewise_db_pool_timeouts_total counter
tradewise_db_pool_timeouts_total 3.0
# TYPE tradewise_db_pool_checked_out gauge
tradewise_db_pool_checked_out 2.0
# TYPE tradewise_db_pool_capacity gauge
tradewise_db_pool_capacity 4.0
# TYPE tradewise_db_pool_setting gauge
tradewise_db_pool_setting{setting="size"} 2.0
tradewise_db_pool_setting{setting="overflow"} 0.0
tradewise_db_pool_setting{setting="timeout_seconds"} 5.0
# TYPE tradewise_dependency_errors_total counter
tradewise_dependency_errors_total{dependency="database"} 7.0
tradewise_dependency_errors_total{dependency="redis"} 9.0
"""


def test_parse_pool_reads_the_app_metrics() -> None:
    s = parse_pool(SCRAPE, 10.0)
    assert s.published and (s.checkouts, s.waits, s.timeouts) == (120, 40, 3)
    assert (s.checked_out, s.capacity, s.size, s.overflow, s.timeout_seconds) == (2, 4, 2, 0, 5)
    assert s.not_stored == 7 and s.wait_sum == 2.0
    assert dict(s.wait_buckets)[0.1] == 30
    assert parse_pool("flask_request_total 3\n", 0).published is False


def test_pool_figures_are_the_difference_of_two_scrapes() -> None:
    before = PoolScrape(t=0, published=True, checkouts=20, waits=0, wait_buckets=())
    after = parse_pool(SCRAPE, 10.0)
    peak = dataclasses.replace(after, checked_out=4)
    figures = pool_figures(before, after, [peak])
    assert figures is not None
    assert (figures["checkouts"], figures["waits"], figures["timeouts"]) == (100, 40, 3)
    assert figures["waited_share"] == 0.4 and figures["wait_mean_ms"] == 50.0
    # rank 38 of 40 lies in (0.1, 1.0]: 0.1 + 0.9 * 8/10
    assert figures["wait_p95_ms"] == pytest.approx(820.0)
    assert figures["peak_checked_out"] == 4 and figures["capacity"] == 4
    assert pool_figures(before, PoolScrape(t=1, published=False), []) is None
    assert pool_figures(None, after, []) is None
    rows = pool_series([before, after], start=0.0)
    assert rows[1] == {"second": 10.0, "checked_out": 2, "capacity": 4, "waits": 40, "timeouts": 3}


def test_db_outcome_names_the_setting_when_calls_waited() -> None:
    pool = {
        "checkouts": 100, "waits": 40, "waited_share": 0.4, "wait_p95_ms": 820.0,
        "wait_mean_ms": 50.0, "timeouts": 3, "not_stored": 0, "peak_checked_out": 4,
        "capacity": 4, "size": 2, "overflow": 0, "timeout_seconds": 5.0,
    }  # fmt: skip
    out = db_outcome(
        LOCAL, Slo(), "http://127.0.0.1:8000", requests=200, failures=0, p95_ms=120.0,
        rps=50.0, users=9, pool=pool, uncached=True,
    )  # fmt: skip
    assert out.verdict == "pass"
    codes = {f.code: f for f in out.findings}
    assert set(codes) == {"pool-wait", "pool-timeout", "pool-settings-differ"}
    assert codes["pool-wait"].setting == "environments.local.database_pool.size"
    assert "40 of 100 database calls (40.0%) waited" in codes["pool-wait"].message
    assert "config says 5 + 5" in codes["pool-settings-differ"].message
    doc = out.to_dict()
    assert doc["scenario"] == "db" and doc["verdict"] == "pass"
    assert doc["slo"] == {
        "p95_ms": 500.0, "error_rate": 0.01, "scale_up_seconds": 120.0, "recovery_seconds": 60.0
    }  # fmt: skip

    slow = db_outcome(
        LOCAL, Slo(), "u", requests=200, failures=10, p95_ms=900.0, rps=1, users=9,
        pool=None, uncached=False,
    )  # fmt: skip
    assert slow.verdict == "fail" and [c.name for c in slow.missed()] == ["p95", "error_rate"]
    assert "no database pool metrics" in slow.notes[0]
    assert "does not enable the `uncached` fault knob" in slow.notes[1]
    nothing = db_outcome(
        LOCAL, Slo(), "u", requests=0, failures=0, p95_ms=None, rps=0, users=9,
        pool=None, uncached=True,
    )  # fmt: skip
    assert nothing.verdict == "fail"


def test_the_target_is_the_environments_own_url() -> None:
    assert stress_target(LOCAL) == "http://127.0.0.1:8000"
    assert stress_target(LOCAL, "http://127.0.0.1:8000/") == "http://127.0.0.1:8000"
    assert stress_target(STAGING) == "https://staging.tradewise.example.com"
    for other in ("http://127.0.0.1:8001", "https://127.0.0.1:8000", "http://example.com"):
        with pytest.raises(BadInputError, match="outside local's own URL"):
            stress_target(LOCAL, other)
    with pytest.raises(BadInputError, match="no url or domain"):
        stress_target(dataclasses.replace(LOCAL, url=None))


def test_bounds_users_and_the_load() -> None:
    settings = CONFIG.stress
    assert scenario_seconds(settings, "db", None) == 60
    assert scenario_seconds(settings, "cpu", "90s") == 90
    for bad in ("2", "2h"):
        with pytest.raises(BadInputError, match="outside 3s..1h"):
            scenario_seconds(settings, "db", bad)
    assert db_users(settings, 4, LOCAL) == 9
    assert db_users(settings, 0, LOCAL) == 21  # the config's 5 + 5, twice, plus one
    assert db_users(dataclasses.replace(settings, db_users=7), 4, LOCAL) == 7
    assert db_users(dataclasses.replace(settings, max_users=6), 40, LOCAL) == 6
    spec = db_spec("http://h", CONFIG.performance_test, 5, 9, uncached=True)
    (task,) = spec.tasks
    assert task.paths[0] == "/api/stock-analysis?symbol=IBM&cache=bypass"
    assert len(task.paths) == len(CONFIG.performance_test.cold_symbols)
    assert (
        db_spec("http://h", CONFIG.performance_test, 5, 9, False).tasks[0].paths[0].endswith("=IBM")
    )


def test_service_environment_and_config() -> None:
    assert service_environment(LOCAL) == {
        "TRADEWISE_DB_POOL_SIZE": "5",
        "TRADEWISE_DB_POOL_OVERFLOW": "5",
        "TRADEWISE_DB_POOL_TIMEOUT_SECONDS": "5",
        "TRADEWISE_FAULTS": "memory,uncached",
    }
    assert "TRADEWISE_FAULTS" not in service_environment(CONFIG.environment("prod"))
    assert LOCAL.database_pool == DatabasePool(5, 5, 5.0)
    assert CONFIG.stress == StressSettings(
        cpu_seconds=300, memory_seconds=120, db_seconds=60, step_seconds=15, max_users=200,
        db_users=0, memory_step_mb=16, memory_step_seconds=0.25,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"faults": ["cpu"]}, "environments.local.faults is 'cpu'; expected a list of fault"),
        ({"database_pool": {"size": 0}}, "environments.local.database_pool.size is 0"),
        ({"database_pool": {"timeout": 0.01}}, "database_pool.timeout is 0.01"),
        ({"database_pool": {"extra": 1}}, "unknown key 'environments.local.database_pool.extra'"),
    ],
)
def test_bad_stress_keys_are_named(tmp_path: object, patch: dict, message: str) -> None:
    import yaml

    from tradewise_ops.core.config import parse_config

    doc = yaml.safe_load(open("tradewise.yaml", encoding="utf-8"))
    doc["environments"]["local"].update(patch)
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("'", "'")):
        parse_config(doc)


def test_bad_stress_block_is_named() -> None:
    import yaml

    from tradewise_ops.core.config import parse_config

    doc = yaml.safe_load(open("tradewise.yaml", encoding="utf-8"))
    doc["stress"]["duration"]["db"] = "2h"
    with pytest.raises(ConfigError, match="stress.duration.db is '2h'"):
        parse_config(doc)
