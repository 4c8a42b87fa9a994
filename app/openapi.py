"""The OpenAPI 3 document of the API (``/api/openapi.json``); a test keeps it true to the routes."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from app.symbols import SYMBOL_HELP


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


@lru_cache(maxsize=1)
def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.0 document (paths, parameters, responses, schemas)."""
    method_not_allowed = _error("Method not allowed")
    number = {"type": "number"}
    latency = {
        "type": "object",
        "properties": {k: {"type": "number", "nullable": True} for k in ("p50", "p95", "p99")},
    }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "TradeWise AI stock analysis",
            "version": "1.0.0",
            "description": "Technical analysis of US stocks, cached in Redis (when one is "
            "configured), computed ahead "
            "of the market open by Celery workers. Every error is JSON with the Error shape.",
        },
        "paths": {
            "/api/health": {
                "get": {
                    "operationId": "health",
                    "summary": "Liveness (no dependency checks)",
                    "responses": {
                        "200": _json("Alive", {"$ref": "#/components/schemas/Health"}),
                        "405": method_not_allowed,
                    },
                }
            },
            "/api/health/serving": {
                "get": {
                    "operationId": "serving",
                    "summary": "Pod-local readiness: this process takes requests (no dependency "
                    "checks; the Kubernetes readinessProbe)",
                    "responses": {
                        "200": _json("Serving", {"$ref": "#/components/schemas/Serving"}),
                        "405": method_not_allowed,
                    },
                }
            },
            "/api/health/ready": {
                "get": {
                    "operationId": "ready",
                    "summary": "Readiness: the database and Redis answer "
                    "(Redis reported as disabled when REDIS_URL=none)",
                    "responses": {
                        "200": _json("Ready", {"$ref": "#/components/schemas/Readiness"}),
                        "503": _json(
                            "A dependency is down; `failing` and the error name it",
                            {"$ref": "#/components/schemas/ReadinessError"},
                        ),
                        "405": method_not_allowed,
                    },
                }
            },
            "/api/stock-analysis": {
                "get": {
                    "operationId": "stock_analysis",
                    "summary": "Technical analysis and recommendation of a symbol",
                    "parameters": [
                        {
                            "name": "symbol",
                            "in": "query",
                            "required": True,
                            "description": SYMBOL_HELP + "; lower case is accepted",
                            "schema": {
                                "type": "string",
                                "pattern": "^[A-Za-z][A-Za-z0-9.\\-]{0,9}$",
                                "example": "AAPL",
                            },
                        }
                    ],
                    "responses": {
                        "200": {
                            "description": "The analysis (header X-Cache: HIT or MISS)",
                            "headers": {
                                "X-Cache": {"schema": {"type": "string", "enum": ["HIT", "MISS"]}},
                                "X-Cache-Status": {
                                    "description": "on a MISS that could not be cached: "
                                    "unavailable (Redis down) or disabled (REDIS_URL=none)",
                                    "schema": {
                                        "type": "string",
                                        "enum": ["unavailable", "disabled"],
                                    },
                                },
                            },
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/Analysis"}
                                }
                            },
                        },
                        "400": _error(
                            "Missing or malformed symbol (code missing_symbol or "
                            "invalid_symbol); the message says what a symbol looks like"
                        ),
                        "404": _error("Unknown symbol (code unknown_symbol)"),
                        "405": method_not_allowed,
                        "502": _error("The market data API sent something unusable"),
                        "503": _error("The market data API is unavailable"),
                    },
                }
            },
            "/api/performance/stats": {
                "get": {
                    "operationId": "performance_stats",
                    "summary": "Cache hit rate, request counts, latency percentiles, queue length",
                    "responses": {
                        "200": _json("Statistics", {"$ref": "#/components/schemas/Stats"}),
                        "405": method_not_allowed,
                    },
                }
            },
            "/metrics": {
                "get": {
                    "operationId": "metrics",
                    "summary": "Prometheus exposition (merged across worker processes)",
                    "responses": {
                        "200": {
                            "description": "Prometheus text format 0.0.4",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        },
                        "405": method_not_allowed,
                    },
                }
            },
            "/api/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document",
                    "responses": {
                        "200": _json("OpenAPI 3 document", {"type": "object"}),
                        "405": method_not_allowed,
                    },
                }
            },
        },
        "components": {
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {
                            "type": "object",
                            "required": ["code", "message", "status"],
                            "properties": {
                                "code": {"type": "string", "example": "invalid_symbol"},
                                "message": {"type": "string"},
                                "status": {"type": "integer"},
                            },
                        }
                    },
                },
                "Health": {
                    "type": "object",
                    "required": ["status"],
                    "properties": {"status": {"type": "string", "enum": ["ok"]}},
                },
                "Serving": {
                    "type": "object",
                    "required": ["status"],
                    "properties": {"status": {"type": "string", "enum": ["serving"]}},
                },
                "Check": {
                    "type": "object",
                    "required": ["ok"],
                    "properties": {
                        "ok": {"type": "boolean"},
                        "error": {"type": "string"},
                        "disabled": {
                            "type": "boolean",
                            "description": "redis only: true when no cache is configured "
                            "(REDIS_URL=none); not a failure",
                        },
                    },
                },
                "Readiness": {
                    "type": "object",
                    "required": ["status", "checks", "failing"],
                    "properties": {
                        "status": {"type": "string", "enum": ["ready"]},
                        "checks": {
                            "type": "object",
                            "additionalProperties": {"$ref": "#/components/schemas/Check"},
                        },
                        "failing": {"type": "array", "items": {"type": "string"}},
                    },
                },
                "ReadinessError": {
                    "allOf": [
                        {"$ref": "#/components/schemas/Error"},
                        {
                            "type": "object",
                            "required": ["status", "checks", "failing"],
                            "properties": {
                                "status": {"type": "string", "enum": ["unavailable"]},
                                "checks": {"type": "object"},
                                "failing": {
                                    "type": "array",
                                    "items": {"type": "string", "enum": ["database", "redis"]},
                                },
                            },
                        },
                    ]
                },
                "Signal": {
                    "type": "object",
                    "required": ["indicator", "signal", "reason"],
                    "properties": {
                        "indicator": {"type": "string"},
                        "signal": {"type": "string", "enum": ["bullish", "bearish", "neutral"]},
                        "reason": {"type": "string"},
                    },
                },
                "Analysis": {
                    "type": "object",
                    "required": [
                        "symbol",
                        "as_of",
                        "data_source",
                        "price",
                        "indicators",
                        "recommendation",
                    ],
                    "properties": {
                        "symbol": {"type": "string", "example": "AAPL"},
                        "as_of": {"type": "string", "format": "date"},
                        "data_source": {"type": "string", "example": "synthetic"},
                        "currency": {"type": "string", "example": "USD"},
                        "history_days": {"type": "integer"},
                        "generated_at": {"type": "string", "format": "date-time"},
                        "price": {
                            "type": "object",
                            "properties": {
                                "close": number,
                                "previous_close": number,
                                "change_pct": number,
                            },
                        },
                        "indicators": {
                            "type": "object",
                            "properties": {
                                "sma_20": number,
                                "sma_50": number,
                                "rsi_14": number,
                                "macd": {
                                    "type": "object",
                                    "properties": {
                                        "macd": number,
                                        "signal": number,
                                        "histogram": number,
                                    },
                                },
                                "bollinger": {
                                    "type": "object",
                                    "properties": {
                                        k: number
                                        for k in (
                                            "upper",
                                            "middle",
                                            "lower",
                                            "percent_b",
                                            "bandwidth",
                                        )
                                    },
                                },
                                "volatility": {
                                    "type": "object",
                                    "properties": {
                                        "annualized": number,
                                        "window_days": {"type": "integer"},
                                    },
                                },
                            },
                        },
                        "recommendation": {
                            "type": "object",
                            "required": ["action", "confidence", "signals"],
                            "properties": {
                                "action": {"type": "string", "enum": ["buy", "hold", "sell"]},
                                "confidence": {"type": "number", "minimum": 0, "maximum": 1},
                                "score": {"type": "integer"},
                                "signals": {
                                    "type": "array",
                                    "items": {"$ref": "#/components/schemas/Signal"},
                                },
                            },
                        },
                    },
                },
                "Stats": {
                    "type": "object",
                    "required": ["requests", "latency_ms", "cache", "task_queue_length"],
                    "properties": {
                        "requests": {"type": "object"},
                        "latency_ms": latency,
                        "stock_analysis_latency_ms": latency,
                        "cache": {
                            "type": "object",
                            "properties": {
                                "hits": {"type": "integer"},
                                "misses": {"type": "integer"},
                                "hit_rate": number,
                                "available": {"type": "boolean"},
                                "enabled": {
                                    "type": "boolean",
                                    "description": "false when REDIS_URL=none (every "
                                    "analysis is a miss)",
                                },
                            },
                        },
                        "task_queue_length": {
                            "type": "integer",
                            "nullable": True,
                            "description": "null when unknown (broker down, or the SQLite "
                            "broker not created yet)",
                        },
                        "broker": {"type": "string", "enum": ["redis", "sqlite", "memory"]},
                        "dependencies": {
                            "type": "object",
                            "properties": {
                                "redis": {
                                    "type": "boolean",
                                    "nullable": True,
                                    "description": "null when no cache is configured",
                                },
                                "database": {"type": "boolean"},
                            },
                        },
                        "multiprocess": {"type": "boolean"},
                    },
                },
            }
        },
    }
