"""Watches: one connection per kind, read in threads and merged, resumed when they drop.

``watch`` starts at a resourceVersion (or lists first and yields the objects as ADDED), follows
every change, resumes a dropped connection from the last resourceVersion seen (with the transport's
backoff), and on 410 Gone re-lists the kind and yields what it found as SYNC events before
watching on. Every watch connection and re-list goes through the gateway's one request path.
"""

from __future__ import annotations

import contextlib
import json
import queue
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tradewise_ops.adapters.kube.discovery import KindInfo
from tradewise_ops.adapters.kube.errors import Gone, Retryable, short
from tradewise_ops.errors import UnreachableError

if TYPE_CHECKING:
    from tradewise_ops.adapters.kube.gateway import KubeGateway


@dataclass(frozen=True)
class WatchEvent:
    """One change seen by ``KubeGateway.watch``.

    ``type`` is ADDED, MODIFIED, DELETED, or SYNC (the object as re-listed after a 410 Gone,
    so consumers can refresh their state). ``obj`` is the object as a dict.
    """

    type: str
    kind: str
    name: str
    namespace: str | None
    obj: dict[str, Any]
    resource_version: str


def watch(
    gw: KubeGateway,
    kinds: Iterable[str],
    since_rv: str | None = None,
    timeout: float = 60.0,
    *,
    label_selector: str | None = None,
    namespace: str | None = None,
    stop: threading.Event | None = None,
) -> Iterator[WatchEvent]:
    """Events of every kind in ``kinds`` (namespace-wide) until ``timeout`` s or ``stop``.

    One watch connection per kind, read in threads and merged. Starting at ``since_rv`` (no
    initial ADDED events), or, when None, with the current objects as ADDED. A dropped
    connection resumes from the last resourceVersion seen (with backoff); a 410 Gone
    re-lists and yields the listed objects as SYNC events before watching on. Closing the
    generator stops the threads.
    """
    deadline = time.monotonic() + timeout
    stop = stop or threading.Event()
    out: queue.Queue[WatchEvent | BaseException | None] = queue.Queue()
    kinds = list(kinds)
    threads = []
    responses: list[Any] = []
    for kind in kinds:
        info = gw.kind_info(kind)
        t = threading.Thread(
            target=_watch_kind,
            args=(gw, info, since_rv, deadline, label_selector, namespace, stop, out, responses),
            daemon=True,
            name=f"watch-{info.plural}",
        )
        threads.append(t)
        t.start()
    finished = 0
    try:
        while finished < len(threads):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or stop.is_set():
                return
            try:
                item = out.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                continue
            if item is None:
                finished += 1
            elif isinstance(item, BaseException):
                raise item
            else:
                yield item
    finally:
        stop.set()
        for response in list(responses):
            with contextlib.suppress(Exception):
                response.shutdown() if hasattr(response, "shutdown") else response.close()


def _watch_kind(
    gw: KubeGateway,
    info: KindInfo,
    since_rv: str | None,
    deadline: float,
    label_selector: str | None,
    namespace: str | None,
    stop: threading.Event,
    out: queue.Queue[WatchEvent | BaseException | None],
    responses: list[Any],
) -> None:
    rv = since_rv
    failures = 0
    try:
        while not stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0.05:
                return
            if rv is None:
                items, rv = gw.list_with_version(info.kind, label_selector, namespace=namespace)
                for obj in items:
                    out.put(_event("ADDED", info, obj))
            try:
                response = gw.transport.send(
                    "GET",
                    gw.discovery.path(info, None, namespace),
                    {
                        "watch": "true",
                        "resourceVersion": rv,
                        "timeoutSeconds": max(1, int(remaining + 0.999)),
                        "labelSelector": label_selector,
                        "allowWatchBookmarks": "true",
                    },
                    stream=True,
                    timeout=(gw.transport.connect_timeout, remaining + 5.0),
                    what=("watch", info.resource, None),
                )
            except Gone:
                rv = _resync(gw, info, label_selector, namespace, out)
                continue
            responses.append(response)
            try:
                for line in _lines(response):
                    if stop.is_set():
                        return
                    failures = 0
                    doc = json.loads(line)
                    kind = doc.get("type")
                    obj = doc.get("object") or {}
                    if kind == "ERROR":
                        if obj.get("code") == 410:
                            raise Gone(obj.get("message", "gone"))
                        raise Retryable(str(obj.get("message")))
                    new_rv = (obj.get("metadata") or {}).get("resourceVersion")
                    if new_rv:
                        rv = new_rv
                    if kind == "BOOKMARK":
                        continue
                    obj.setdefault("kind", info.kind)
                    obj.setdefault("apiVersion", info.api_version)
                    out.put(_event(kind, info, obj))
            except Gone:
                rv = _resync(gw, info, label_selector, namespace, out)
            except Exception as exc:  # a dropped connection: resume from rv with backoff
                if stop.is_set():
                    return
                failures += 1
                if failures > gw.transport.retries:
                    raise UnreachableError(
                        f"the watch on {info.resource} at {gw.where} keeps dropping: {short(exc)}"
                    ) from None
                gw.transport.pause(failures)
            finally:
                with contextlib.suppress(ValueError):
                    responses.remove(response)
                with contextlib.suppress(Exception):
                    response.release_conn()
    except BaseException as exc:  # noqa: BLE001 - handed to the consumer
        if not stop.is_set():
            out.put(exc)
    finally:
        out.put(None)


def _resync(
    gw: KubeGateway,
    info: KindInfo,
    label_selector: str | None,
    namespace: str | None,
    out: queue.Queue[WatchEvent | BaseException | None],
) -> str:
    items, rv = gw.list_with_version(info.kind, label_selector, namespace=namespace)
    for obj in items:
        out.put(_event("SYNC", info, obj))
    return rv


def _event(kind: str, info: KindInfo, obj: dict[str, Any]) -> WatchEvent:
    meta = obj.get("metadata") or {}
    return WatchEvent(
        type=kind,
        kind=obj.get("kind") or info.kind,
        name=meta.get("name", ""),
        namespace=meta.get("namespace"),
        obj=obj,
        resource_version=str(meta.get("resourceVersion", "")),
    )


def _lines(response: Any) -> Iterator[str]:
    buffer = b""
    for chunk in response.stream(amt=None, decode_content=False):
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            if line.strip():
                yield line.decode("utf-8", "replace")
    if buffer.strip():
        yield buffer.decode("utf-8", "replace")
