"""The OpenAPI document tells the truth: every route, its methods, and real responses."""

from __future__ import annotations

import copy
from typing import Any

import jsonschema
import pytest
from flask import Flask

from app import create_app

IMPLICIT = {"HEAD", "OPTIONS"}


@pytest.fixture
def flask_app(redis_url: str, tmp_path: Any) -> Any:
    app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path}/o.db", "REDIS_URL": redis_url})
    yield app
    app.extensions["tradewise"].close()


def _nullable_to_json_schema(node: Any) -> Any:
    """OpenAPI 3.0 ``nullable: true`` becomes JSON Schema's ``type: [T, "null"]``."""
    if isinstance(node, dict):
        node = {k: _nullable_to_json_schema(v) for k, v in node.items()}
        if node.pop("nullable", False) and "type" in node:
            node["type"] = [node["type"], "null"]
        node.pop("example", None)
        return node
    if isinstance(node, list):
        return [_nullable_to_json_schema(v) for v in node]
    return node


def _validate(doc: dict[str, Any], schema: dict[str, Any], instance: Any) -> None:
    root = {"components": _nullable_to_json_schema(copy.deepcopy(doc["components"]))}
    root.update(_nullable_to_json_schema(schema))
    jsonschema.Draft7Validator(root).validate(instance)


def test_document_is_openapi_3(flask_app: Flask) -> None:
    doc = flask_app.test_client().get("/api/openapi.json").get_json()
    assert doc["openapi"].startswith("3.")
    assert doc["info"]["title"] and doc["info"]["version"]
    for path, item in doc["paths"].items():
        for method, op in item.items():
            assert op["responses"], f"{method} {path} documents no response"
            assert op["operationId"]


def test_every_route_is_documented_with_its_methods(flask_app: Flask) -> None:
    doc = flask_app.test_client().get("/api/openapi.json").get_json()
    routes: dict[str, set[str]] = {}
    for rule in flask_app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        routes.setdefault(rule.rule, set()).update(
            m.lower() for m in (rule.methods or set()) - IMPLICIT
        )
    assert routes, "no routes?"
    documented = {path: set(item) for path, item in doc["paths"].items()}
    assert routes == documented
    for rule in flask_app.url_map.iter_rules():
        op = doc["paths"][rule.rule]
        assert all(m in op for m in {m.lower() for m in (rule.methods or set()) - IMPLICIT})
        assert {o["operationId"] for o in op.values()} == {rule.endpoint}


ERROR_CASES = [
    ("GET", "/api/stock-analysis", 400),
    ("GET", "/api/stock-analysis?symbol=9X", 400),
    ("GET", "/api/stock-analysis?symbol=ZZZZ", 404),
    ("POST", "/api/stock-analysis?symbol=AAPL", 405),
    ("DELETE", "/api/health", 405),
    ("PUT", "/api/health/ready", 405),
    ("POST", "/api/health/serving", 405),
    ("POST", "/api/performance/stats", 405),
    ("POST", "/metrics", 405),
    ("PATCH", "/api/openapi.json", 405),
]


@pytest.mark.parametrize(("method", "url", "status"), ERROR_CASES)
def test_documented_error_responses_match_real_ones(
    flask_app: Flask, method: str, url: str, status: int
) -> None:
    client = flask_app.test_client()
    doc = client.get("/api/openapi.json").get_json()
    response = client.open(url, method=method)
    assert response.status_code == status
    path = url.split("?")[0]
    op = doc["paths"][path]["get"]
    assert str(status) in op["responses"], f"{status} of {path} is not documented"
    schema = op["responses"][str(status)]["content"]["application/json"]["schema"]
    _validate(doc, schema, response.get_json())


def test_documented_success_responses_match_real_ones(flask_app: Flask) -> None:
    client = flask_app.test_client()
    doc = client.get("/api/openapi.json").get_json()
    for path, query in [
        ("/api/health", ""),
        ("/api/health/serving", ""),
        ("/api/health/ready", ""),
        ("/api/stock-analysis", "?symbol=AAPL"),
        ("/api/stock-analysis", "?symbol=AAPL"),  # the cached answer too
        ("/api/performance/stats", ""),
        ("/api/openapi.json", ""),
    ]:
        response = client.get(path + query)
        assert response.status_code == 200, path
        content = doc["paths"][path]["get"]["responses"]["200"]["content"]
        assert response.mimetype in content
        _validate(doc, content[response.mimetype]["schema"], response.get_json())
    metrics = client.get("/metrics")
    assert metrics.mimetype in doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"]


def test_readiness_failure_matches_its_schema(flask_app: Flask, redis_server: Any) -> None:
    client = flask_app.test_client()
    doc = client.get("/api/openapi.json").get_json()
    redis_server.stop()
    try:
        response = client.get("/api/health/ready")
    finally:
        redis_server.start()
    assert response.status_code == 503
    schema = doc["paths"]["/api/health/ready"]["get"]["responses"]["503"]["content"][
        "application/json"
    ]["schema"]
    _validate(doc, schema, response.get_json())
    with pytest.raises(jsonschema.ValidationError):
        _validate(doc, schema, {"error": {"code": "x", "message": "y", "status": 503}})
