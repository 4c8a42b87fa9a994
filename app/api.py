"""HTTP endpoints, JSON errors and request metrics.

Every error is ``{"error": {"code": "...", "message": "...", "status": N}}``.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from flask import Flask, Response, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from app import metrics
from app.openapi import openapi_document
from app.providers import ProviderError, ProviderUnavailableError, UnknownSymbolError
from app.service import AnalysisService
from app.symbols import SYMBOL_HELP, SYMBOL_RE, InvalidSymbolError, normalize_symbol

log = logging.getLogger(__name__)
JSON = "application/json"
MISSED = "tradewise.cache_missed"  # environ key: the fast path's lookup of this symbol missed
_HEALTH = b'{"status":"ok"}'
_SERVING = b'{"status":"serving"}'

ERROR_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "too_many_requests",
    500: "internal_error",
    502: "bad_gateway",
    503: "service_unavailable",
}


class ApiError(Exception):
    """An error answer with a stable code."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def error_response(status: int, code: str, message: str, /, **extra: Any) -> Response:
    """The JSON error answer."""
    body: dict[str, Any] = dict(extra)
    body["error"] = {"code": code, "message": message, "status": status}
    response = jsonify(body)
    response.status_code = status
    return response


def _service() -> AnalysisService:
    service: AnalysisService = current_app.extensions["tradewise"]
    return service


def health() -> Response:
    """Liveness: the process answers (no dependency checks)."""
    return Response(_HEALTH, mimetype=JSON)


def serving() -> Response:
    """Pod-local readiness: this process takes requests (no dependency checks).

    The API serves correct answers with Redis down (uncached) and with the database down (not
    stored), so a dependency outage must not take every pod out of the Service at once: the
    readinessProbe points here, and dependency health stays in ``/api/health/ready``, ``/metrics``
    and the alerts. There is no draining state to report: on SIGTERM gunicorn closes its listeners
    and its workers accept nothing new (a draining pod refuses the probe's connection), and
    Kubernetes takes a terminating pod out of the endpoints whatever its readiness.
    """
    return Response(_SERVING, mimetype=JSON)


def ready() -> Response:
    """Dependency readiness: the database and Redis answer; 503 naming what does not.

    Without a cache (``REDIS_URL=none``) redis is reported as disabled, which is not a failure.
    """
    service = _service()
    db_ok, db_error = service.check_database()
    redis_check: dict[str, Any]
    if service.cache.enabled:
        redis_ok, redis_error = service.cache.ping()
        redis_check = {"ok": redis_ok, **({"error": redis_error} if redis_error else {})}
    else:
        redis_check = {"ok": True, "disabled": True}
    checks = {
        "database": {"ok": db_ok, **({"error": db_error} if db_error else {})},
        "redis": redis_check,
    }
    failing = [name for name, check in checks.items() if not check["ok"]]
    if failing:
        details = "; ".join(f"{name}: {checks[name].get('error')}" for name in failing)
        return error_response(
            503,
            "dependency_unavailable",
            f"{' and '.join(failing)} unavailable ({details})",
            status="unavailable",
            checks=checks,
            failing=failing,
        )
    return jsonify({"status": "ready", "checks": checks, "failing": []})


def stock_analysis() -> Response:
    """The analysis of ``?symbol=``: from the cache when fresh, computed and stored otherwise."""
    service = _service()
    if service.settings.inject_latency_ms:
        time.sleep(service.settings.inject_latency_ms / 1000.0)
    raw = request.args.get("symbol")
    if raw is not None and SYMBOL_RE.fullmatch(raw):  # the common case: already normalised
        symbol = raw
    else:
        try:
            symbol = normalize_symbol(raw)
        except InvalidSymbolError as exc:
            code = "missing_symbol" if raw is None or not raw.strip() else "invalid_symbol"
            raise ApiError(400, code, str(exc)) from None
    if "uncached" in service.settings.faults and request.args.get("cache") == "bypass":
        payload = None  # stress-test knob (TRADEWISE_FAULTS=uncached): compute, as on a miss
        metrics.count_cache(False)
    elif request.environ.get(MISSED) == symbol:
        payload = None  # the fast path looked it up already (and counted the miss)
    else:
        payload = service.cached(symbol)
    if payload is not None:  # a hit: the stored bytes as they are (see FastPath for the usual one)
        return Response(payload, headers=hit_headers(payload))
    try:
        computed = service.compute_and_store(symbol, strict=False)
    except UnknownSymbolError:
        raise ApiError(
            404, "unknown_symbol", f"unknown symbol {symbol!r}: no market data for it"
        ) from None
    except ProviderUnavailableError as exc:
        raise ApiError(503, "market_data_unavailable", str(exc)) from None
    except ProviderError as exc:
        raise ApiError(502, "market_data_error", str(exc)) from None
    response = Response(computed.payload, mimetype=JSON)
    response.headers["X-Cache"] = "MISS"
    if not computed.cached:
        response.headers["X-Cache-Status"] = "unavailable" if service.cache.enabled else "disabled"
    return response


def performance_stats() -> Response:
    """Cache hit rate, request counts, latency percentiles and queue length, across workers."""
    service = _service()
    families = metrics.collect(service.probe)
    by_name = {family.name: family.samples for family in families}

    def samples(name: str) -> list[Any]:
        return list(by_name.get(name, []))  # absent until its first value in multiprocess mode

    requests_by_endpoint: dict[str, float] = {}
    requests_by_status: dict[str, float] = {}
    total = 0.0
    for sample in samples("flask_request"):
        if not sample.name.endswith("_total"):
            continue
        endpoint = sample.labels["endpoint"]
        status = sample.labels["status"]
        requests_by_endpoint[endpoint] = requests_by_endpoint.get(endpoint, 0.0) + sample.value
        requests_by_status[status] = requests_by_status.get(status, 0.0) + sample.value
        total += sample.value
    all_buckets: dict[float, float] = {}
    analysis_buckets: dict[float, float] = {}
    for sample in samples("flask_request_duration_seconds"):
        if not sample.name.endswith("_bucket"):
            continue
        bound = float(sample.labels["le"])
        all_buckets[bound] = all_buckets.get(bound, 0.0) + sample.value
        if sample.labels["endpoint"] == "stock_analysis":
            analysis_buckets[bound] = analysis_buckets.get(bound, 0.0) + sample.value
    hits = misses = 0.0
    for sample in samples("tradewise_cache_lookups"):
        if sample.name.endswith("_total"):
            if sample.labels["result"] == "hit":
                hits += sample.value
            elif sample.labels["result"] == "miss":
                misses += sample.value
    queue = samples("tradewise_task_queue_length")[0].value
    redis_up = samples("tradewise_redis_up")[0].value == 1.0
    cache_enabled = samples("tradewise_cache_enabled")[0].value == 1.0
    db_up = samples("tradewise_database_up")[0].value == 1.0
    body = {
        "requests": {
            "total": int(total),
            "by_endpoint": {k: int(v) for k, v in sorted(requests_by_endpoint.items())},
            "by_status": {k: int(v) for k, v in sorted(requests_by_status.items())},
        },
        "latency_ms": _percentiles(all_buckets),
        "stock_analysis_latency_ms": _percentiles(analysis_buckets),
        "cache": {
            "hits": int(hits),
            "misses": int(misses),
            "hit_rate": round(hits / (hits + misses), 4) if hits + misses else 0.0,
            "available": redis_up,
            "enabled": cache_enabled,
        },
        "task_queue_length": None if queue < 0 else int(queue),
        "broker": _broker_kind(service.settings.broker_url),
        "dependencies": {"redis": redis_up if cache_enabled else None, "database": db_up},
        "multiprocess": metrics.multiprocess_mode(),
        "note": "percentiles are estimated from the latency histogram buckets",
    }
    return jsonify(body)


def _broker_kind(url: str) -> str:
    """``redis``, ``sqlite`` (kombu's SQLAlchemy transport) or ``memory``."""
    scheme = url.split(":", 1)[0].lower()
    if scheme.startswith("sqla+"):
        return "sqlite"
    return "redis" if scheme in ("redis", "rediss", "unix") else scheme


def _percentiles(buckets: dict[float, float]) -> dict[str, float | None]:
    items = list(buckets.items())
    out: dict[str, float | None] = {}
    for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
        value = metrics.histogram_quantile(q, items)
        out[name] = None if value is None else round(value * 1000.0, 3)
    return out


def prometheus_metrics() -> Response:
    """The Prometheus exposition, merged across gunicorn workers."""
    body = metrics.exposition(_service().probe)
    return Response(body, mimetype="text/plain; version=0.0.4; charset=utf-8")


def openapi() -> Response:
    """The OpenAPI 3 document of this API (with the fault routes when they are enabled)."""
    doc = openapi_document()
    if "memory" in _service().settings.faults:
        from app.faults import openapi_paths

        doc = {**doc, "paths": {**doc["paths"], **openapi_paths()}}  # the shared one unchanged
    return jsonify(doc)


def hit_headers(payload: bytes) -> list[tuple[str, str]]:
    """The headers of a cache hit, in the order Flask sends them."""
    return [("Content-Type", JSON), ("X-Cache", "HIT"), ("Content-Length", str(len(payload)))]


def _constant(body: bytes) -> tuple[str, list[tuple[str, str]], bytes]:
    return "200 OK", [("Content-Type", JSON), ("Content-Length", str(len(body)))], body


class FastPath:
    """The answers that need no Flask: liveness, pod readiness and a cached analysis.

    A GET of ``/api/health``, ``/api/health/serving``, or ``/api/stock-analysis?symbol=SYM`` with
    an already-normalised symbol and nothing else in the query is answered here, with the same
    status, headers and bytes the Flask views give (tests/app/test_fast_path.py compares them);
    everything else, and a cache miss, goes on to Flask. It measured 1.2x+ a bare Flask app doing
    one Redis GET (BENCHMARKS.md, "The service's own cost per request"). With a stress knob that
    changes the analysis view (``TRADEWISE_INJECT_LATENCY_MS``, ``TRADEWISE_FAULTS=uncached``)
    the analysis always goes through Flask.
    """

    def __init__(self, service: AnalysisService) -> None:
        self.service = service
        settings = service.settings
        self.analysis = not settings.inject_latency_ms and "uncached" not in settings.faults
        self.constants = {
            "/api/health": ("health", _constant(_HEALTH)),
            "/api/health/serving": ("serving", _constant(_SERVING)),
        }

    def answer(
        self, path: str, environ: dict[str, Any]
    ) -> tuple[str, tuple[str, list[tuple[str, str]], bytes]] | None:
        """(endpoint, (status, headers, body)) when answered here, else None."""
        constant = self.constants.get(path)
        if constant is not None:
            return constant
        if path != "/api/stock-analysis" or not self.analysis:
            return None
        query: str = environ.get("QUERY_STRING", "")
        if not query.startswith("symbol="):
            return None
        symbol = query[7:]
        if not SYMBOL_RE.fullmatch(symbol):
            return None  # lower case, escaped, other parameters: Flask normalises or refuses
        payload = self.service.cached(symbol)
        if payload is None:
            environ[MISSED] = symbol
            return None
        return "stock_analysis", ("200 OK", hit_headers(payload), payload)


class RequestMetrics:
    """WSGI middleware timing every request into the request metrics, and the fast path.

    Cheaper than Flask request hooks (no context-local lookups on the hot path): the endpoint
    label comes from a path -> endpoint table of the app's routes, "unmatched" for other paths.
    """

    def __init__(self, flask_app: Flask) -> None:
        self.flask_app = flask_app
        self.wsgi_app = flask_app.wsgi_app
        self.endpoints: dict[str, str] = {}
        self.fast = FastPath(flask_app.extensions["tradewise"])

    def _endpoint(self, path: str, method: str) -> str:
        endpoint = self.endpoints.get(path)
        if endpoint is not None:
            return endpoint
        try:
            matched, _ = self.flask_app.url_map.bind("localhost").match(path, method)
        except HTTPException as exc:
            if exc.code == 405:  # a known path with another method
                matched = next(
                    (r.endpoint for r in self.flask_app.url_map.iter_rules() if r.rule == path),
                    "unmatched",
                )
            else:
                return "unmatched"
        except Exception:  # a redirect or anything odd: do not grow the table
            return "unmatched"
        endpoint = str(matched)
        if "<" not in path:
            self.endpoints[path] = endpoint
        return endpoint

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        started = time.perf_counter()
        if environ.get("REQUEST_METHOD") == "GET":
            fast = self.fast.answer(environ.get("PATH_INFO", ""), environ)
            if fast is not None:
                endpoint, (status, headers, body) = fast
                start_response(status, list(headers))
                metrics.observe_request("GET", endpoint, 200, time.perf_counter() - started)
                return [body]
        seen: list[str] = []

        def _start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
            seen.append(status)
            return start_response(status, headers, exc_info)

        try:
            return self.wsgi_app(environ, _start_response)
        finally:
            method = environ.get("REQUEST_METHOD", "GET")
            metrics.observe_request(
                method,
                self._endpoint(environ.get("PATH_INFO", ""), method),
                int(seen[-1][:3]) if seen else 500,
                time.perf_counter() - started,
            )


def _handle_api_error(exc: ApiError) -> Response:
    return error_response(exc.status, exc.code, exc.message)


def _handle_http_error(exc: HTTPException) -> Response:
    status = exc.code or 500
    code = ERROR_CODES.get(status, "http_error")
    message = exc.description or exc.name
    if status == 404:
        message = f"no such endpoint: {request.path}"
    elif status == 405:
        allowed = (
            ", ".join(sorted(exc.valid_methods or [])) if hasattr(exc, "valid_methods") else ""
        )
        message = f"method {request.method} not allowed on {request.path}" + (
            f" (allowed: {allowed})" if allowed else ""
        )
    response = error_response(status, code, message)
    if status == 405 and getattr(exc, "valid_methods", None):
        response.headers["Allow"] = ", ".join(getattr(exc, "valid_methods", None) or [])
    return response


def _handle_unexpected(exc: Exception) -> Response:
    if isinstance(exc, HTTPException):
        return _handle_http_error(exc)
    log.exception("unhandled error on %s %s", request.method, request.path)
    metrics.REQUEST_EXCEPTIONS.labels(request.method, request.endpoint or "unmatched").inc()
    return error_response(500, "internal_error", "internal server error")


ROUTES: tuple[tuple[str, str, Any, tuple[str, ...]], ...] = (
    ("/api/health", "health", health, ("GET",)),
    ("/api/health/serving", "serving", serving, ("GET",)),
    ("/api/health/ready", "ready", ready, ("GET",)),
    ("/api/stock-analysis", "stock_analysis", stock_analysis, ("GET",)),
    ("/api/performance/stats", "performance_stats", performance_stats, ("GET",)),
    ("/metrics", "metrics", prometheus_metrics, ("GET",)),
    ("/api/openapi.json", "openapi", openapi, ("GET",)),
)


def register_api(flask_app: Flask) -> None:
    """Add the routes, error handlers and metric hooks to ``flask_app``."""
    for rule, endpoint, view, methods in ROUTES:
        flask_app.add_url_rule(rule, endpoint, view, methods=list(methods))
        for method in methods:
            metrics.init_endpoint(method, endpoint)
    from app.faults import register_faults  # stress-test knobs, only when enabled

    register_faults(flask_app, flask_app.config["TRADEWISE_SETTINGS"].faults)
    flask_app.wsgi_app = RequestMetrics(flask_app)  # type: ignore[method-assign]
    flask_app.register_error_handler(ApiError, _handle_api_error)
    flask_app.register_error_handler(HTTPException, _handle_http_error)
    flask_app.register_error_handler(Exception, _handle_unexpected)
    flask_app.config.setdefault("SYMBOL_HELP", SYMBOL_HELP)
