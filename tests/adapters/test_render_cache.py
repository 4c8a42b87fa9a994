"""The schema-result cache: used when the schema files match, ignored otherwise, never fatal."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tradewise_ops.adapters.render_cache import SchemaResultCache, use_result_cache_dir
from tradewise_ops.core.config import load_config
from tradewise_ops.core.render import render_environment
from tradewise_ops.core.validate import schema_findings
from tradewise_ops.resources import data_path


@pytest.fixture(scope="module")
def objects() -> list[dict[str, Any]]:
    config = load_config(data_path("tradewise.yaml"), environ={})
    return render_environment(config, "staging", tag="v1.2.3")


@pytest.fixture
def cache_dir(tmp_path: Path) -> Iterator[Path]:
    use_result_cache_dir(tmp_path)
    yield tmp_path
    use_result_cache_dir(None)


def test_results_are_stored_and_reused(objects: list[dict], cache_dir: Path) -> None:
    bad = copy.deepcopy(objects)
    bad[0]["spec"] = {"finalizers": "not-a-list"}
    first = schema_findings(bad, "1.27")
    stored = json.loads((cache_dir / "schema-results-1.27.json").read_text(encoding="utf-8"))
    assert len(stored["entries"]) == len(bad)
    assert schema_findings(bad, "1.27") == first
    assert [f.path for f in first] == ["spec.finalizers"]


def test_a_matching_cache_is_trusted(objects: list[dict], cache_dir: Path) -> None:
    # a planted result proves the cache is read instead of checking again
    cache = SchemaResultCache(cache_dir, "1.37")
    planted = {"kind": "Namespace", "name": "x", "path": ".", "rule": "schema", "message": "m"}
    payload = {"identity": cache.identity, "entries": {cache.key(objects[0]): [planted]}}
    cache.path.write_text(json.dumps(payload), encoding="utf-8")
    assert [f.to_dict() for f in schema_findings(objects, "1.37")] == [planted]


def test_a_cache_for_other_schema_files_is_ignored(objects: list[dict], cache_dir: Path) -> None:
    cache = SchemaResultCache(cache_dir, "1.37")
    planted = {"kind": "Namespace", "name": "x", "path": ".", "rule": "schema", "message": "m"}
    payload = {"identity": "other schemas", "entries": {cache.key(objects[0]): [planted]}}
    cache.path.write_text(json.dumps(payload), encoding="utf-8")
    assert schema_findings(objects, "1.37") == []


def test_a_corrupt_or_unwritable_cache_is_ignored(objects: list[dict], tmp_path: Path) -> None:
    (tmp_path / "schema-results-1.37.json").write_text("{not json", encoding="utf-8")
    blocker = tmp_path / "file"
    blocker.write_text("", encoding="utf-8")
    try:
        use_result_cache_dir(tmp_path)
        assert schema_findings(objects, "1.37") == []
        use_result_cache_dir(blocker / "below-a-file")
        assert schema_findings(objects, "1.37") == []
    finally:
        use_result_cache_dir(None)
