"""``core.backup``: names, retention, fingerprint comparison."""

from __future__ import annotations

import datetime

import pytest

from tradewise_ops.core.backup import (
    BackupRecord,
    Fingerprint,
    backup_name,
    check_name,
    differences,
    rows_checksum,
    to_prune,
)
from tradewise_ops.errors import BadInputError


def test_names_sort_by_time_and_are_checked() -> None:
    t = datetime.datetime(2025, 3, 1, 9, 30, 0, 123456, tzinfo=datetime.UTC)
    assert backup_name("postgres", t) == "tradewise-20250301T093000123456Z.dump"
    assert check_name("tradewise-20250301T093000Z.sqlite3")
    for bad in ("../x.dump", "tradewise-now.dump", "tradewise-20250301T093000Z.dump/.."):
        with pytest.raises(BadInputError):
            check_name(bad)


def test_retention_keeps_the_newest() -> None:
    fp = Fingerprint({}, {})
    records = [
        BackupRecord(f"tradewise-2025030{d}T000000Z.dump", "postgres", "", "", 1, "", fp)
        for d in (3, 1, 2)
    ]
    assert [r.name[10:18] for r in to_prune(records, 2)] == ["20250301"]
    with pytest.raises(BadInputError):
        to_prune(records, 0)


def test_differences_name_the_table_and_what_differs() -> None:
    a = Fingerprint({"t": 2, "u": 1}, {"t": rows_checksum(["1", "2"]), "u": "x"})
    assert differences(a, a) == []
    assert rows_checksum(["2", "1"]) == rows_checksum(["1", "2"])  # order does not matter
    fewer = Fingerprint({"t": 1}, {"t": rows_checksum(["1"])})
    assert differences(a, fewer) == ["table t: 1 rows, the backup had 2", "table u is missing"]
    changed = Fingerprint({"t": 2, "u": 1}, {"t": rows_checksum(["1", "3"]), "u": "x"})
    assert differences(a, changed) == ["table t: same row count, different rows (checksum)"]
    assert a.checksum != changed.checksum
