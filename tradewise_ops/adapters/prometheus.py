"""Prometheus's HTTP API, for the canary analysis: instant queries (``/api/v1/query``).

``PrometheusClient.value`` asks one PromQL query and returns its single number (the sum of a
vector's samples; None when the answer is empty or NaN: no data). Every request is bounded
(``timeout`` seconds, default 5). A refused connection, a timeout, an answer that is not
Prometheus's JSON or a 5xx is ``UnreachableError`` (exit 3) naming the URL; a query Prometheus
refuses (400/422: bad PromQL) is ``BadInputError`` (exit 2) naming the query. stdlib urllib only.
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from tradewise_ops.core.redact import mask_credentials
from tradewise_ops.errors import BadInputError, UnreachableError


class PrometheusClient:
    """Instant queries against one Prometheus server."""

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def query(self, promql: str) -> list[dict[str, Any]]:
        """The ``result`` of an instant query (a vector's samples, or a scalar as one sample)."""
        address = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        request = urllib.request.Request(address, headers={"Accept": "application/json"})
        shown = mask_credentials(self.url)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                body = response.read()
        except urllib.error.HTTPError as exc:
            detail = _error_text(exc.read())
            if exc.code in (400, 422):
                raise BadInputError(f"Prometheus refused the query {promql!r}: {detail}") from None
            raise UnreachableError(
                f"Prometheus at {shown} answered {exc.code}: {detail}",
                hint="check monitoring.prometheus_url",
            ) from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise UnreachableError(
                f"Prometheus at {shown} does not answer: {reason}",
                hint="check monitoring.prometheus_url (a port-forward: kubectl port-forward "
                "-n monitoring svc/prometheus 9090)",
            ) from None
        try:
            doc = json.loads(body)
            data = doc["data"]
        except (ValueError, KeyError, TypeError):
            raise UnreachableError(f"{shown} did not answer as Prometheus's HTTP API") from None
        if data.get("resultType") == "scalar":
            return [{"metric": {}, "value": data.get("result")}]
        return list(data.get("result") or [])

    def value(self, promql: str) -> float | None:
        """The number ``promql`` gives: the sum of its samples; None without data (no sample,
        or NaN, as a ratio over no requests is)."""
        total = None
        for sample in self.query(promql):
            try:
                number = float((sample.get("value") or [None, "NaN"])[1])
            except (TypeError, ValueError, IndexError):
                continue
            if math.isnan(number) or math.isinf(number):
                continue
            total = number if total is None else total + number
        return total

    def ready(self) -> None:
        """Ask ``vector(1)``: ``UnreachableError`` when Prometheus does not answer."""
        self.query("vector(1)")


def _error_text(body: bytes) -> str:
    try:
        doc = json.loads(body)
        return str(doc.get("error") or doc)[:300]
    except ValueError:
        return body.decode(errors="replace")[:300]
