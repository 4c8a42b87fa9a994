"""Real resource usage of the components: the metrics API, Prometheus, VPA recommendations.

- ``metrics_api_usage``: ``metrics.k8s.io/v1beta1`` PodMetrics of the namespace (metrics-server),
  read through the kube gateway: one sample per pod, now; p95 and max are over the pods.
- ``prometheus_usage``: the cAdvisor series ``container_cpu_usage_seconds_total`` (as a rate)
  and ``container_memory_working_set_bytes`` over the window, p95 and max per container, through
  the Prometheus HTTP API (``/api/v1/query``, instant queries with subqueries).
- ``vpa_recommendations``: the ``status.recommendation`` of the VerticalPodAutoscalers rendered in
  recommendation mode, where the cluster serves ``autoscaling.k8s.io/v1``.

Each maps a component (``api``, ``worker`` ...) to what its main container
(``core.rightsize.CONTAINERS``) used.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import TYPE_CHECKING, Any

from tradewise_ops.core.rightsize import CONTAINERS, Usage, VpaRecommendation, percentile
from tradewise_ops.core.units import quantity_value
from tradewise_ops.errors import NotFoundError, TradewiseError, UnreachableError

if TYPE_CHECKING:
    from tradewise_ops.adapters.kube import KubeGateway

METRICS_API = "metrics.k8s.io/v1beta1"
VPA_API = "autoscaling.k8s.io/v1"
_BY_CONTAINER = {container: component for component, container in CONTAINERS.items()}


def metrics_api_usage(gw: KubeGateway, namespace: str) -> dict[str, Usage]:
    """Usage per component from the metrics API's PodMetrics (one sample per pod).

    ``UnreachableError`` (exit 3) when the cluster does not serve the metrics API.
    """
    try:
        items = gw.list(
            "PodMetrics",
            "app.kubernetes.io/name=tradewise",
            namespace=namespace,
            api_version=METRICS_API,
        )
    except NotFoundError:
        raise UnreachableError(
            f"the cluster does not serve the metrics API ({METRICS_API}): install "
            "metrics-server, or set monitoring.prometheus_url for this environment"
        ) from None
    cpu: dict[str, list[float]] = {}
    memory: dict[str, list[float]] = {}
    for item in items:
        for container in item.get("containers") or []:
            component = _BY_CONTAINER.get(str(container.get("name")))
            if component is None:
                continue
            usage = container.get("usage") or {}
            cpu.setdefault(component, []).append(quantity_value(usage.get("cpu")) or 0.0)
            memory.setdefault(component, []).append(quantity_value(usage.get("memory")) or 0.0)
    return {
        component: Usage(
            cpu_p95=percentile(cpu[component], 95),
            cpu_max=max(cpu[component]),
            memory_p95=percentile(memory[component], 95),
            memory_max=max(memory[component]),
            samples=len(cpu[component]),
            source="metrics-api",
        )
        for component in cpu
    }


def prometheus_queries(namespace: str, since_seconds: int) -> dict[str, str]:
    """The PromQL of each measure, per container (``max by (container)`` over the pods).

    The CPU rate window is a tenth of the window, between 4s and 5m (at least a few scrapes,
    never smoothing a week into one number); subqueries step at a fifth of it.
    """
    names = "|".join(CONTAINERS.values())
    sel = f'namespace="{namespace}",container=~"{names}"'
    rate_window = max(4, min(300, since_seconds // 10))
    step = max(1, rate_window // 5)
    rate = f"rate(container_cpu_usage_seconds_total{{{sel}}}[{rate_window}s])"
    memory = f"container_memory_working_set_bytes{{{sel}}}"
    window = f"{since_seconds}s"
    return {
        "cpu_p95": f"max by (container) (quantile_over_time(0.95, {rate}[{window}:{step}s]))",
        "cpu_max": f"max by (container) (max_over_time({rate}[{window}:{step}s]))",
        "memory_p95": f"max by (container) (quantile_over_time(0.95, {memory}[{window}]))",
        "memory_max": f"max by (container) (max_over_time({memory}[{window}]))",
        "samples": f"max by (container) (count_over_time({memory}[{window}]))",
    }


def prometheus_usage(
    url: str, namespace: str, since_seconds: int, timeout: float = 30.0
) -> dict[str, Usage]:
    """Usage per component from Prometheus over the last ``since_seconds``.

    ``UnreachableError`` when Prometheus does not answer; ``TradewiseError`` when it refuses a
    query (the message is Prometheus's own).
    """
    values: dict[str, dict[str, float]] = {}
    for measure, query in prometheus_queries(namespace, since_seconds).items():
        for sample in _query(url, query, timeout):
            container = str((sample.get("metric") or {}).get("container", ""))
            component = _BY_CONTAINER.get(container)
            if component is None:
                continue
            values.setdefault(component, {})[measure] = float(sample["value"][1])
    return {
        component: Usage(
            cpu_p95=v.get("cpu_p95", 0.0),
            cpu_max=v.get("cpu_max", 0.0),
            memory_p95=v.get("memory_p95", 0.0),
            memory_max=v.get("memory_max", 0.0),
            samples=int(v.get("samples", 0)),
            source="prometheus",
        )
        for component, v in values.items()
        if "memory_max" in v
    }


def vpa_recommendations(gw: KubeGateway, namespace: str) -> dict[str, VpaRecommendation] | None:
    """The VPAs' recommendations per component; None when the cluster serves no VPA."""
    if not gw.discovery.served(VPA_API, "VerticalPodAutoscaler"):
        return None
    out: dict[str, VpaRecommendation] = {}
    for vpa in gw.list("VerticalPodAutoscaler", namespace=namespace, api_version=VPA_API):
        recs = ((vpa.get("status") or {}).get("recommendation") or {}).get(
            "containerRecommendations"
        ) or []
        for rec in recs:
            component = _BY_CONTAINER.get(str(rec.get("containerName")))
            if component is None:
                continue
            target, upper = rec.get("target") or {}, rec.get("upperBound") or {}
            out[component] = VpaRecommendation(
                cpu_target=_text(target.get("cpu")),
                memory_target=_text(target.get("memory")),
                cpu_upper=_text(upper.get("cpu")),
                memory_upper=_text(upper.get("memory")),
            )
    return out


# ------------------------------------------------------------------------------------------
def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _query(url: str, query: str, timeout: float) -> list[dict[str, Any]]:
    target = f"{url.rstrip('/')}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    try:
        with urllib.request.urlopen(target, timeout=timeout) as response:  # noqa: S310
            doc = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            doc = json.loads(exc.read())
        except ValueError:
            raise TradewiseError(f"Prometheus at {url} answered HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise UnreachableError(f"Prometheus at {url} does not answer: {reason}") from None
    if doc.get("status") != "success":
        raise TradewiseError(f"Prometheus refused a query: {doc.get('error', doc)}")
    result = (doc.get("data") or {}).get("result") or []
    return list(result)


def load_samples(
    source: str, prometheus_url: str | None, namespace: str, since_seconds: int, step: int
) -> list[tuple[float, float]]:
    """Recorded load as ``(epoch seconds, req/s)``: from a ``monitor --record`` timeline (its
    ``load`` records), or with ``source == "prometheus"`` the API's request rate over the last
    ``since_seconds`` (``sum(rate(flask_request_total[...]))``, one point per ``step`` seconds).
    """
    from pathlib import Path

    from tradewise_ops.core.timeline.jsonl import loads_jsonl
    from tradewise_ops.core.timeline.records import LoadSample
    from tradewise_ops.errors import BadInputError

    if source == "prometheus":
        if not prometheus_url:
            raise BadInputError(
                "--from prometheus: set monitoring.prometheus_url of the environment"
            )
        return prometheus_request_rate(prometheus_url, namespace, since_seconds, step)
    path = Path(source)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BadInputError(f"--from {source}: cannot read it ({exc.strerror})") from None
    records = loads_jsonl(text, source=str(path))
    return [(r.t, float(r.rps)) for r in records if isinstance(r, LoadSample) and r.rps is not None]


def prometheus_request_rate(
    url: str, namespace: str, since_seconds: int, step: int, timeout: float = 30.0
) -> list[tuple[float, float]]:
    """The API's total req/s over the window (``/api/v1/query_range``)."""
    import time

    window = max(4, min(300, step * 2))
    query = f'sum(rate(flask_request_total{{namespace="{namespace}"}}[{window}s]))'
    end = time.time()
    params = {"query": query, "start": f"{end - since_seconds:.3f}", "end": f"{end:.3f}",
              "step": f"{max(1, step)}s"}  # fmt: skip
    target = f"{url.rstrip('/')}/api/v1/query_range?" + urllib.parse.urlencode(params)
    try:
        with urllib.request.urlopen(target, timeout=timeout) as response:  # noqa: S310
            doc = json.loads(response.read())
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise UnreachableError(f"Prometheus at {url} does not answer: {reason}") from None
    if doc.get("status") != "success":
        raise TradewiseError(f"Prometheus refused a query: {doc.get('error', doc)}")
    out: list[tuple[float, float]] = []
    for series in (doc.get("data") or {}).get("result") or []:
        out.extend((float(t), float(v)) for t, v in series.get("values") or [])
    return out
