"""Records as JSON lines: the ``monitor --record`` file and what ``--replay`` reads back."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, fields
from typing import Any

from tradewise_ops.core.timeline.records import RECORD_TYPES, HpaSample, MetricValue, Record, iso
from tradewise_ops.errors import BadInputError


def record_to_json(record: Record) -> dict[str, Any]:
    """A record as a JSON-ready dict: ``type``, ``t`` (epoch seconds), ``time`` (ISO), fields."""
    data = asdict(record)
    out: dict[str, Any] = {"type": data.pop("type"), "t": data.pop("t")}
    out["time"] = iso(out["t"])
    out.update(data)
    return out


def record_from_json(data: Mapping[str, Any]) -> Record:
    """The record a ``record_to_json`` dict describes; ``BadInputError`` when it is not one."""
    kind = data.get("type")
    cls = RECORD_TYPES.get(str(kind))
    if cls is None:
        raise BadInputError(f"not a timeline record: unknown type {kind!r}")
    names = {f.name for f in fields(cls) if f.init}
    values = {k: v for k, v in data.items() if k in names}
    if cls is HpaSample:
        values["metrics"] = tuple(MetricValue(**m) for m in values.get("metrics", ()))
    try:
        record: Record = cls(**values)
        return record
    except TypeError as exc:
        raise BadInputError(f"not a timeline record of type {kind!r}: {exc}") from None


def dumps_jsonl(records: Iterable[Record]) -> str:
    """Records as JSON lines (one object a line, newline-terminated)."""
    return "".join(json.dumps(record_to_json(r), sort_keys=False) + "\n" for r in records)


def loads_jsonl(text: str, source: str = "<timeline>") -> list[Record]:
    """Records from JSON lines; blank lines are skipped, a bad line names its number."""
    out: list[Record] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise BadInputError(f"{source}, line {number}: not JSON ({exc.msg})") from None
        if not isinstance(data, dict):
            raise BadInputError(f"{source}, line {number}: not a JSON object")
        try:
            out.append(record_from_json(data))
        except BadInputError as exc:
            raise BadInputError(f"{source}, line {number}: {exc.message}") from None
    return out
