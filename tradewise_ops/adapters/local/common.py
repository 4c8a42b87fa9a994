"""What both local stacks share: result types, port checks, readiness polling, log tails."""

from __future__ import annotations

import json
import os
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ProcessInfo:
    """One process (``local``) or container (``compose``) of a stack, as ``ps`` shows it."""

    name: str
    component: str
    pid: int | None
    state: str  # running | exited | stopped
    exit_code: int | None = None
    uptime_seconds: float | None = None
    port: int | None = None
    log: str | None = None
    detail: str = ""

    def as_dict(self) -> dict[str, object]:
        """Plain data for ``-o json``."""
        return {
            "name": self.name,
            "component": self.component,
            "pid": self.pid,
            "state": self.state,
            "exit_code": self.exit_code,
            "uptime_seconds": None if self.uptime_seconds is None else round(self.uptime_seconds),
            "port": self.port,
            "log": self.log,
            "detail": self.detail,
        }


@dataclass
class StackResult:
    """What ``up`` did: the processes it started, those already running, where the API answers."""

    url: str
    started: list[str] = field(default_factory=list)
    already_running: list[str] = field(default_factory=list)
    seconds: float = 0.0


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """True when something accepts connections on host:port or the port cannot be bound."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        if sock.connect_ex((host, port)) == 0:
            return True
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # as servers do: connections of a stopped server in TIME_WAIT do not block the port
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def port_holder(port: int) -> str | None:
    """``pid N (command)`` of the process listening on TCP ``port``, when the system tells.

    Another user's sockets show no pid without privileges: then None.
    """
    import psutil

    try:
        connections = psutil.net_connections(kind="tcp")
    except psutil.Error:
        return None
    pids = sorted(
        c.pid
        for c in connections
        if c.pid and c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port
    )
    return f"pid {pids[0]} ({command_line(pids[0])})" if pids else None


def command_line(pid: int, limit: int = 80) -> str:
    """The command line of ``pid`` (shortened), or ``?``."""
    import psutil

    try:
        parts = psutil.Process(pid).cmdline()
    except psutil.Error:
        return "?"
    # psutil decodes undecodable bytes as surrogates; show them as U+FFFD, printable
    text = " ".join(os.fsencode(part).decode(errors="replace") for part in parts if part)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def pid_alive(pid: int | None) -> bool:
    """True when ``pid`` exists and is not a zombie."""
    if not pid:
        return False
    import psutil

    try:
        return psutil.Process(pid).status() not in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:  # it exists; whose it is does not matter here
        return True


def children_of(pid: int) -> list[int]:
    """Pids of the live direct children of ``pid``."""
    import psutil

    try:
        children = psutil.Process(pid).children()
    except psutil.NoSuchProcess:
        return []
    return sorted(c.pid for c in children if pid_alive(c.pid))


def http_status(url: str, timeout: float = 2.0) -> int | None:
    """The HTTP status of ``GET url`` on loopback, or None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (urllib.error.URLError, OSError):
        return None


def wait_ready(
    url: str,
    timeout: float,
    alive: Callable[[], str | None],
    progress: Progress,
    interval: float = 0.1,
) -> float:
    """Poll ``GET url`` until 200; ``alive()`` returns a failure sentence to stop early.

    Returns the seconds waited; raises ``TimeoutError`` (message: last status) or
    ``RuntimeError`` (message: what ``alive`` said).
    """
    started = time.monotonic()
    last_report = started
    status = None
    while True:
        status = http_status(url)
        if status == 200:
            return time.monotonic() - started
        failure = alive()
        if failure:
            raise RuntimeError(failure)
        now = time.monotonic()
        if now - started > timeout:
            shown = "no answer" if status is None else f"HTTP {status}"
            raise TimeoutError(f"{url} not ready after {timeout:.0f}s (last: {shown})")
        if now - last_report >= 2.0:
            shown = "no answer yet" if status is None else f"HTTP {status}"
            progress(f"waiting for {url} ({shown}, {now - started:.0f}s)")
            last_report = now
        time.sleep(interval)


def tail(path: Path, lines: int) -> list[str]:
    """The last ``lines`` lines of a text file (empty when it does not exist)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 256 * 1024))
            data = fh.read()
    except OSError:
        return []
    return data.decode(errors="replace").splitlines()[-lines:] if lines > 0 else []


def follow(paths: dict[str, Path], prefix: bool, poll: float = 0.2) -> Iterator[str]:
    """Yield lines appended to ``paths`` (name -> file) from now on, until the caller stops."""
    offsets = {}
    for name, path in paths.items():
        try:
            offsets[name] = path.stat().st_size
        except OSError:
            offsets[name] = 0
    pending = dict.fromkeys(paths, b"")
    while True:
        got = False
        for name, path in paths.items():
            try:
                with open(path, "rb") as fh:
                    fh.seek(offsets[name])
                    data = fh.read()
            except OSError:
                continue
            if not data:
                continue
            offsets[name] += len(data)
            buffered = pending[name] + data
            *complete, rest = buffered.split(b"\n")
            pending[name] = rest
            for raw in complete:
                got = True
                line = raw.decode(errors="replace")
                yield f"{name} | {line}" if prefix else line
        if not got:
            time.sleep(poll)


PROFILE_FILE = "traffic-profile.json"


def write_profile_record(
    state_dir: Path, annotations: dict[str, str], counts: dict[str, int]
) -> None:
    """Record the traffic profile applied to a local stack, with the counts it set.

    A local stack has no objects to annotate, so the record lives in its state dir.
    """
    path = Path(state_dir) / PROFILE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**annotations, "counts": counts}), encoding="utf-8")


def read_profile_record(state_dir: Path, counts: dict[str, int]) -> dict[str, str]:
    """The recorded profile annotations; empty when none or when its counts no longer hold.

    Counts change when the stack was restarted or scaled by hand since.
    """
    try:
        record = json.loads((Path(state_dir) / PROFILE_FILE).read_text(encoding="utf-8"))
        wanted = record["counts"]
        if any(int(counts.get(c, 0)) != int(n) for c, n in wanted.items()):
            return {}
        return {k: str(v) for k, v in record.items() if k != "counts"}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}
