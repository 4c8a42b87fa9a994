"""The monitoring timeline: what the autoscaler, the Deployments and the pods did, and when.

Watch events of HorizontalPodAutoscalers, Deployments, Pods and Events (plain dicts, as the API
serves them) become typed records on one clock: the monitor's, the moment each change was seen.
Load samples (a load test's intervals, or the app's own metrics) and process counts (the ``local``
environment) join the same timeline. Everything here is pure:

- ``records``: the record types; ``jsonl``: records as JSON lines (``--record`` files);
- ``readers``: Kubernetes objects -> records;
- ``view``: the cluster as the records describe it (``ClusterView``), replicas over time;
- ``alerts``: the seed's alerting rules (``WarningDetector``);
- ``builder``: ``TimelineBuilder`` folds watch events into records and a live view;
- ``analysis``: ``analyze`` turns any sequence of records (live, or read back from a ``--record``
  file) into scale-up latencies, pod-failure recoveries, warnings and verdicts;
- ``appmetrics``: the app's own ``/metrics`` scrapes -> load samples.

This package re-exports the names its users import (``from tradewise_ops.core.timeline import X``).
"""

from __future__ import annotations

from tradewise_ops.core.timeline.alerts import (
    ALERT_ERROR_RATE,
    ALERT_P95_MS,
    ALERT_QUEUE_BACKLOG,
    ALERT_RESTART_WINDOW_SECONDS,
    ALERT_RESTARTS,
    WarningDetector,
)
from tradewise_ops.core.timeline.analysis import (
    FAIL,
    NONE,
    PASS,
    PENDING,
    Analysis,
    Recovery,
    ScaleDown,
    ScaleUp,
    analyze,
)
from tradewise_ops.core.timeline.appmetrics import AppScrape, app_load_sample, histogram_quantile
from tradewise_ops.core.timeline.builder import TimelineBuilder
from tradewise_ops.core.timeline.jsonl import (
    dumps_jsonl,
    loads_jsonl,
    record_from_json,
    record_to_json,
)
from tradewise_ops.core.timeline.readers import (
    WATCHED_KINDS,
    deployment_record,
    event_record,
    hpa_record,
    pod_record,
)
from tradewise_ops.core.timeline.records import (
    NOTABLE_EVENT_REASONS,
    DeploymentSample,
    EventRecord,
    HpaSample,
    LoadSample,
    MetricValue,
    PodSample,
    ProcessSample,
    Record,
    WarningRecord,
    iso,
)
from tradewise_ops.core.timeline.view import ClusterView, ReplicaPoint, replica_series
from tradewise_ops.core.units import quantity_value as quantity

__all__ = [
    "ALERT_ERROR_RATE",
    "ALERT_P95_MS",
    "ALERT_QUEUE_BACKLOG",
    "ALERT_RESTARTS",
    "ALERT_RESTART_WINDOW_SECONDS",
    "FAIL",
    "NONE",
    "NOTABLE_EVENT_REASONS",
    "PASS",
    "PENDING",
    "WATCHED_KINDS",
    "Analysis",
    "AppScrape",
    "ClusterView",
    "DeploymentSample",
    "EventRecord",
    "HpaSample",
    "LoadSample",
    "MetricValue",
    "PodSample",
    "ProcessSample",
    "Record",
    "Recovery",
    "ReplicaPoint",
    "ScaleDown",
    "ScaleUp",
    "TimelineBuilder",
    "WarningDetector",
    "WarningRecord",
    "analyze",
    "app_load_sample",
    "deployment_record",
    "dumps_jsonl",
    "event_record",
    "histogram_quantile",
    "hpa_record",
    "iso",
    "loads_jsonl",
    "pod_record",
    "quantity",
    "record_from_json",
    "record_to_json",
    "replica_series",
]
