"""Building a timeline from watch events: records, the live view, events and warnings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from tradewise_ops.core.timeline.alerts import WarningDetector
from tradewise_ops.core.timeline.readers import (
    deployment_record,
    event_record,
    hpa_record,
    pod_record,
)
from tradewise_ops.core.timeline.records import EventRecord, Record, WarningRecord
from tradewise_ops.core.timeline.view import ClusterView
from tradewise_ops.errors import BadInputError


class TimelineBuilder:
    """Folds watch events and samples into records; keeps the current view for a live display.

    Unchanged objects (a MODIFIED that only moved resourceVersion) add no record; a repeated
    Event adds one each time its count rises.
    """

    def __init__(self) -> None:
        self.records: list[Record] = []
        self.view = ClusterView()
        self.events: list[EventRecord] = []
        self.warnings: list[WarningRecord] = []
        self._detector = WarningDetector()
        self._event_counts: dict[str, int] = {}

    def observe(
        self,
        kind: str,
        event_type: str,
        obj: Mapping[str, Any],
        t: float,
        listed: bool = False,
    ) -> list[Record]:
        """Fold one watch event (``ADDED``/``MODIFIED``/``DELETED`` of a ``kind``) in.

        ``listed``: the object came with the initial list, before watching began.
        Returns the records it added (with any warnings it started).
        """
        deleted = event_type == "DELETED"
        record: Record
        if kind == "HorizontalPodAutoscaler":
            record = hpa_record(obj, t, deleted)
            previous: Any = self.view.hpas.get(record.name)
        elif kind == "Deployment":
            record = deployment_record(obj, t, deleted)
            previous = self.view.deployments.get(record.name)
        elif kind == "Pod":
            record = pod_record(obj, t, deleted)
            previous = self.view.pods.get(record.name)
        elif kind == "Event":
            if deleted:  # events expire; that is not news
                return []
            record = event_record(obj, t, listed)
            meta = obj.get("metadata")
            meta = meta if isinstance(meta, Mapping) else {}
            key = str(meta.get("uid") or meta.get("name") or id(obj))
            if self._event_counts.get(key) == record.count:
                return []
            self._event_counts[key] = record.count
            previous = None
        else:
            raise BadInputError(f"cannot monitor objects of kind {kind!r}")
        if previous is not None and replace(previous, t=t) == record:
            return []
        return self.add(record)

    def add(self, record: Record) -> list[Record]:
        """Append a record (a load or process sample, or one from ``observe``) and its warnings."""
        self.records.append(record)
        self.view.apply(record)
        if isinstance(record, EventRecord):
            self.events.append(record)
        added: list[Record] = [record]
        for warning in self._detector.feed(record):
            self.records.append(warning)
            self.warnings.append(warning)
            added.append(warning)
        return added
