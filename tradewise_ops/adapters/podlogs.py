"""The logs of a component's pods: every pod, each line with its pod's name; ``follow`` keeps
reading them and picks up pods that appear (a rollout, a scale-up, a restart).

``read`` reads each pod's log once, pod by pod. ``follow`` streams every pod's log in its own
thread (``KubeGateway.pod_log(follow=True)``) and watches the component's pods: a new pod's log
is read from its start once its container runs, a restarted container's new log is read again,
a deleted pod's stream ends by itself. It runs until ``stop`` is set (the CLI sets it on SIGTERM)
or the consumer stops (Ctrl-C), and then closes every stream.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Generator, Iterator
from typing import TYPE_CHECKING, Any

from tradewise_ops.core.podlogs import LogLine, log_ready, main_container, restarts
from tradewise_ops.errors import BadInputError, NotFoundError, TradewiseError

if TYPE_CHECKING:
    from tradewise_ops.adapters.kube import KubeGateway
    from tradewise_ops.adapters.kube.streams import TextStream

FOLLOW_HORIZON = 7 * 24 * 3600.0  # a following watch ends only when told to


class PodLogReader:
    """Reads the logs of the pods a label selector picks, in one namespace."""

    def __init__(
        self,
        gw: KubeGateway,
        namespace: str,
        on_notice: Callable[[str], None] | None = None,
    ) -> None:
        self.gw = gw
        self.namespace = namespace
        self.notice = on_notice or (lambda _m: None)

    def pods(self, selector: str) -> tuple[list[dict[str, Any]], str]:
        """The live pods ``selector`` picks (by name; not those being deleted), and the list's
        resourceVersion (where a watch for new ones starts)."""
        items, rv = self.gw.list_with_version("Pod", selector, namespace=self.namespace)
        live = [p for p in items if not (p.get("metadata") or {}).get("deletionTimestamp")]
        return sorted(live, key=lambda p: str(p["metadata"]["name"])), rv

    def read(
        self,
        selector: str,
        *,
        since_seconds: int | None = None,
        tail_lines: int | None = None,
    ) -> Iterator[LogLine]:
        """Each pod's log once (pod by pod, in name order)."""
        pods, _ = self.pods(selector)
        if not pods:
            self.notice(f"no pods match {selector} in namespace {self.namespace}")
        for pod in pods:
            name = str(pod["metadata"]["name"])
            ready, why = log_ready(pod)
            if not ready:
                self.notice(f"pod {name}: no log yet (container waiting: {why})")
                continue
            container = main_container(pod)
            try:
                stream = self.gw.pod_log(
                    name,
                    container=container,
                    since_seconds=since_seconds,
                    tail_lines=tail_lines,
                    namespace=self.namespace,
                )
            except (BadInputError, NotFoundError) as exc:
                self.notice(f"pod {name}: {exc.message}")
                continue
            for text in stream.lines():
                yield LogLine(name, container, text)

    def follow(
        self,
        selector: str,
        *,
        since_seconds: int | None = None,
        tail_lines: int | None = None,
        stop: threading.Event | None = None,
    ) -> Generator[LogLine, None, None]:
        """Every pod's log as it is written, including pods that appear, until ``stop``.

        ``since_seconds`` / ``tail_lines`` apply to the pods running at the start; a pod that
        appears later, or a container that restarts, is read from its start.
        """
        stop = stop or threading.Event()
        out: queue.Queue[LogLine | BaseException] = queue.Queue()
        lock = threading.Lock()
        streams: dict[str, TextStream] = {}
        active: set[str] = set()
        runs: dict[str, int] = {}  # pod -> the restart count its last stream started at
        waiting_said: set[str] = set()

        def run(name: str, container: str, limits: dict[str, Any]) -> None:
            try:
                stream = self.gw.pod_log(
                    name, container=container, follow=True, namespace=self.namespace, **limits
                )
            except (BadInputError, NotFoundError) as exc:
                self.notice(f"pod {name}: {exc.message}")
                with lock:
                    active.discard(name)
                    runs.pop(name, None)  # try again on its next change
                return
            except TradewiseError as exc:
                out.put(exc)
                return
            with lock:
                streams[name] = stream
            if stop.is_set():
                stream.close()
            try:
                for text in stream.lines():
                    out.put(LogLine(name, container, text))
            except Exception as exc:  # noqa: BLE001 - a dropped stream: say so, keep the rest
                if not stop.is_set():
                    self.notice(f"pod {name}: its log stream broke off ({exc})")
            finally:
                with lock:
                    streams.pop(name, None)
                    active.discard(name)

        def consider(pod: dict[str, Any], first: bool) -> None:
            meta = pod.get("metadata") or {}
            name = str(meta.get("name", ""))
            if meta.get("deletionTimestamp") or stop.is_set():
                return
            ready, why = log_ready(pod)
            with lock:
                if name in active:
                    return
                if not ready:
                    if name not in waiting_said:
                        waiting_said.add(name)
                        self.notice(f"pod {name}: waiting ({why}); its log follows once it runs")
                    return
                if runs.get(name) == restarts(pod):
                    return  # this run's log was read to its end: wait for a new run
                active.add(name)
                runs[name] = restarts(pod)
            limits: dict[str, Any] = {}
            if first:
                limits = {"since_seconds": since_seconds, "tail_lines": tail_lines}
            threading.Thread(
                target=run, args=(name, main_container(pod), limits), daemon=True
            ).start()

        def watch_pods(rv: str) -> None:
            known = set(runs) | set(waiting_said)
            try:
                for event in self.gw.watch(
                    ["Pod"],
                    since_rv=rv,
                    timeout=FOLLOW_HORIZON,
                    label_selector=selector,
                    namespace=self.namespace,
                    stop=stop,
                ):
                    if event.type == "DELETED":
                        continue
                    if event.name not in known:
                        known.add(event.name)
                        self.notice(f"new pod {event.name}")
                    consider(event.obj, first=False)
            except BaseException as exc:  # noqa: BLE001 - handed to the consumer
                if not stop.is_set():
                    out.put(exc)

        pods, rv = self.pods(selector)
        if not pods:
            self.notice(f"no pods match {selector} in {self.namespace} yet: waiting for some")
        for pod in pods:
            consider(pod, first=True)
        threading.Thread(target=watch_pods, args=(rv,), daemon=True, name="logs-pods").start()
        try:
            while not stop.is_set():
                try:
                    item = out.get(timeout=0.2)
                except queue.Empty:
                    continue
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            with lock:
                open_streams = list(streams.values())
            for stream in open_streams:
                stream.close()
