"""The render caches: used when the schema files match, ignored otherwise, never fatal."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from tradewise_ops.adapters.render_cache import RenderCaches, SchemaResultCache
from tradewise_ops.core.config import load_config
from tradewise_ops.core.render import render_environment, to_yaml_stream
from tradewise_ops.core.validate import schema_findings, validate
from tradewise_ops.resources import data_path


@pytest.fixture(scope="module")
def objects() -> list[dict[str, Any]]:
    config = load_config(data_path("tradewise.yaml"), environ={})
    return render_environment(config, "staging", tag="v1.2.3")


def test_results_are_stored_and_reused(objects: list[dict], tmp_path: Path) -> None:
    bad = copy.deepcopy(objects)
    bad[0]["spec"] = {"finalizers": "not-a-list"}
    first = schema_findings(bad, "1.27", RenderCaches(tmp_path).schema_results("1.27"))
    stored = json.loads((tmp_path / "schema-results-1.27.json").read_text(encoding="utf-8"))
    assert len(stored["entries"]) == len(bad)
    again = RenderCaches(tmp_path).schema_results("1.27")
    assert schema_findings(bad, "1.27", again) == first
    assert again is not None and (again.hits, again.misses) == (len(bad), 0)
    assert [f.path for f in first] == ["spec.finalizers"]


def test_a_second_validate_of_the_same_manifests_hits_the_cache(
    objects: list[dict], tmp_path: Path
) -> None:
    caches = RenderCaches(tmp_path)
    first = validate(objects, "1.37", caches=caches)
    assert (caches.hits, caches.misses) == (0, len(objects))
    assert validate(objects, "1.37", caches=caches) == first
    assert (caches.hits, caches.misses) == (len(objects), len(objects))
    # the next run (new caches, same directory) reads the results back from the file
    later = RenderCaches(tmp_path)
    assert validate(objects, "1.37", caches=later) == first
    assert (later.hits, later.misses) == (len(objects), 0)
    # another Kubernetes version has results of its own
    validate(objects, "1.36", caches=later)
    assert (later.hits, later.misses) == (len(objects), len(objects))


def test_a_new_tag_reuses_the_schema_results_of_the_last_one(
    objects: list[dict], tmp_path: Path
) -> None:
    """Only the images differ between two tags' manifests; the schemas cannot tell them apart."""
    config = load_config(data_path("tradewise.yaml"), environ={})
    other_tag = render_environment(config, "staging", tag="v9.9.9")
    assert to_yaml_stream(other_tag) != to_yaml_stream(objects)
    caches = RenderCaches(tmp_path)
    first = validate(objects, "1.37", caches=caches)
    assert validate(other_tag, "1.37", caches=caches) == first
    assert (caches.hits, caches.misses) == (len(objects), len(objects))
    # an image of the wrong type still fails the schema check, cached or not
    bad = copy.deepcopy(other_tag)
    deployment = next(o for o in bad if o["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["image"] = 42
    found = validate(bad, "1.37", caches=caches)
    assert any(f.rule == "schema" and f.path.endswith("containers[0].image") for f in found)


def test_without_caches_nothing_is_kept(objects: list[dict], tmp_path: Path) -> None:
    off = RenderCaches.from_environment({"TRADEWISE_NO_CACHE": "1"})
    assert off.directory is None and off.templates is None
    assert off.schema_results("1.37") is None
    assert validate(objects, "1.37", caches=off) == validate(objects, "1.37")
    assert (off.hits, off.misses) == (0, 0)
    on = RenderCaches.from_environment({"XDG_CACHE_HOME": str(tmp_path)})
    assert on.directory == tmp_path / "tradewise"


def test_compiled_templates_are_kept_and_the_output_is_the_same(tmp_path: Path) -> None:
    config = load_config(data_path("tradewise.yaml"), environ={})
    plain = to_yaml_stream(render_environment(config, "prod", tag="v1"))
    caches = RenderCaches(tmp_path)
    assert to_yaml_stream(render_environment(config, "prod", tag="v1", caches=caches)) == plain
    compiled = sorted((tmp_path / "templates").iterdir())
    assert len(compiled) >= 14  # one per template (and dashboard) rendered
    stamps = [p.stat().st_mtime_ns for p in compiled]
    later = RenderCaches(tmp_path)
    assert to_yaml_stream(render_environment(config, "prod", tag="v1", caches=later)) == plain
    assert [p.stat().st_mtime_ns for p in sorted((tmp_path / "templates").iterdir())] == stamps


def test_a_matching_cache_is_trusted(objects: list[dict], tmp_path: Path) -> None:
    # a planted result proves the cache is read instead of checking again
    cache = SchemaResultCache(tmp_path, "1.37")
    planted = {"kind": "Namespace", "name": "x", "path": ".", "rule": "schema", "message": "m"}
    payload = {"identity": cache.identity, "entries": {cache.key(objects[0]): [planted]}}
    cache.path.write_text(json.dumps(payload), encoding="utf-8")
    found = schema_findings(objects, "1.37", RenderCaches(tmp_path).schema_results("1.37"))
    assert [f.to_dict() for f in found] == [planted]


def test_a_cache_for_other_schema_files_is_ignored(objects: list[dict], tmp_path: Path) -> None:
    cache = SchemaResultCache(tmp_path, "1.37")
    planted = {"kind": "Namespace", "name": "x", "path": ".", "rule": "schema", "message": "m"}
    payload = {"identity": "other schemas", "entries": {cache.key(objects[0]): [planted]}}
    cache.path.write_text(json.dumps(payload), encoding="utf-8")
    assert schema_findings(objects, "1.37", RenderCaches(tmp_path).schema_results("1.37")) == []


def test_a_corrupt_or_unwritable_cache_is_ignored(objects: list[dict], tmp_path: Path) -> None:
    (tmp_path / "schema-results-1.37.json").write_text("{not json", encoding="utf-8")
    blocker = tmp_path / "file"
    blocker.write_text("", encoding="utf-8")
    assert validate(objects, "1.37", caches=RenderCaches(tmp_path)) == []
    unwritable = RenderCaches(blocker / "below-a-file")
    assert unwritable.templates is None
    assert validate(objects, "1.37", caches=unwritable) == []
    config = load_config(data_path("tradewise.yaml"), environ={})
    assert render_environment(config, "staging", tag="v1.2.3", caches=unwritable) == objects
