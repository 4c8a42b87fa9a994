"""wrk as the stepped load of ``tradewise capacity``: one ``wrk`` run per step (``WrkStepper``).

Locust spends about as much CPU per request as a small API process does, so on a machine it shares
with the target it cannot push one gunicorn worker to its limit (BENCHMARKS.md: 0.64x of wrk's
figure). wrk, an event-driven C generator, can; ``capacity`` uses it when it is installed
(``--generator auto``). Each step is ``wrk -c USERS -d STEP`` with a Lua script that picks each
request from the workload's paths by weight and prints the totals (requests, duration, p95,
socket errors, answers >= 400) in one line at the end; ``core.capacity.judge_step`` judges them.

Stopping: Ctrl-C or SIGTERM (the CLI's ``Terminated``) during a step sends wrk SIGINT, which ends
its run early and still prints the totals; the result is marked ``aborted``.
"""

from __future__ import annotations

import contextlib
import json
import re
import resource
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tradewise_ops.core.capacity import Step, judge_step
from tradewise_ops.core.config import Slo
from tradewise_ops.core.loadplan import LoadSpec
from tradewise_ops.errors import TradewiseError

_RESULT = re.compile(r"TW_RESULT (\d+) (\d+) (\d+) (\d+) (\d+)")
_DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("TW_RESULT %d %d %d %d %d\\n", summary.requests, summary.duration,
    latency:percentile(95), e.connect + e.read + e.write + e.timeout, e.status))
end
"""
_MIX = """
local mix = %s
local prepared, cumulative, total = {}, {}, 0
init = function(args)
  for i, entry in ipairs(mix) do
    prepared[i] = wrk.format("GET", entry[1])
    total = total + entry[2]
    cumulative[i] = total
  end
end
request = function()
  local r = math.random() * total
  for i, bound in ipairs(cumulative) do
    if r <= bound then return prepared[i] end
  end
  return prepared[#prepared]
end
"""


class WrkError(TradewiseError):
    """wrk failed (exit 1): its own words in the message."""

    exit_code = 1


def available() -> bool:
    """True when ``wrk`` is on PATH."""
    return shutil.which("wrk") is not None


def script(spec: LoadSpec) -> str:
    """The Lua script of a workload: a weighted pick among its paths (when it has more than one),
    and the totals line."""
    paths: list[tuple[str, float]] = []
    for task in spec.tasks:
        for path in task.paths:
            paths.append((path, task.weight / len(task.paths)))
    if len(paths) == 1:
        return _DONE
    table = "{" + ", ".join(f"{{{json.dumps(p)}, {w!r}}}" for p, w in paths) + "}"
    return _MIX % table + _DONE


@dataclass
class WrkRun:
    """How the stepped run went: aborted or not, and what wrk cost."""

    aborted: bool
    stopped_by: str
    cpu_seconds: float
    ran_seconds: float

    def generator(self) -> dict[str, Any]:
        """Facts about the generator for the report."""
        seconds = max(self.ran_seconds, 1e-9)
        return {
            "cpu_seconds": round(self.cpu_seconds, 3),
            "cpu_percent": round(100.0 * self.cpu_seconds / seconds, 1),
        }


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class WrkStepper:
    """Runs a staged ``LoadSpec`` as one wrk run per stage."""

    def __init__(self, binary: str = "wrk", timeout_seconds: float = 10.0) -> None:
        self.binary = binary
        self.timeout_seconds = timeout_seconds

    def command(self, url: str, users: int, seconds: float, script_path: Path) -> list[str]:
        """The wrk command line of one step."""
        return [
            self.binary,
            f"-t{min(users, 2)}",
            f"-c{users}",
            f"-d{max(1, round(seconds))}s",
            f"--timeout={self.timeout_seconds:g}s",
            "-s",
            str(script_path),
            url,
        ]

    def run_steps(self, spec: LoadSpec, slo: Slo, on_step: Callable[[Step], bool]) -> WrkRun:
        """Each stage of ``spec`` in turn; ``on_step`` gets each judged step and stops the run by
        returning False."""
        first = spec.tasks[0].paths[0] if spec.tasks and spec.tasks[0].paths else "/"
        url = spec.host.rstrip("/") + first
        started, cpu_before = time.monotonic(), _children_cpu()
        with _script_file(script(spec)) as path:
            for stage in spec.stages:
                step, interrupted = self._step(url, stage.name, stage.users,
                                               stage.duration_seconds, path, slo)  # fmt: skip
                if interrupted:
                    if step is not None:
                        on_step(step)
                    return WrkRun(True, "signal", _children_cpu() - cpu_before,
                                  time.monotonic() - started)  # fmt: skip
                assert step is not None
                if not on_step(step):
                    return WrkRun(False, "step", _children_cpu() - cpu_before,
                                  time.monotonic() - started)  # fmt: skip
        return WrkRun(False, "duration", _children_cpu() - cpu_before, time.monotonic() - started)

    def _step(
        self, url: str, name: str, users: int, seconds: float, path: Path, slo: Slo
    ) -> tuple[Step | None, bool]:
        """(the judged step, interrupted?)."""
        proc = subprocess.Popen(
            self.command(url, users, seconds, path),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # Ctrl-C reaches the CLI, which stops wrk itself
        )
        interrupted = False
        try:
            out, err = proc.communicate(timeout=seconds + 30)
        except KeyboardInterrupt:  # Ctrl-C, or SIGTERM through the CLI's Terminated
            interrupted = True
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGINT)  # wrk stops and still prints its totals
            try:
                out, err = proc.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, err = proc.communicate()
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise WrkError(
                f"wrk did not end within {seconds + 30:.0f}s of a {seconds:g}s step"
            ) from None
        match = _RESULT.search(out)
        if match is None:
            if interrupted:
                return None, True
            words = (err or out).strip().splitlines()[-3:]
            raise WrkError(f"wrk exited with code {proc.returncode}: " + " / ".join(words))
        requests, micros, p95_us, socket_errors, bad_status = (int(g) for g in match.groups())
        step = judge_step(
            name,
            users,
            micros / 1e6,
            requests,
            socket_errors + bad_status,
            p95_us / 1000.0 if requests else None,
            slo,
        )
        return step, interrupted


@contextlib.contextmanager
def _script_file(text: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="tradewise-wrk-") as tmp:
        path = Path(tmp) / "capacity.lua"
        path.write_text(text)
        yield path
