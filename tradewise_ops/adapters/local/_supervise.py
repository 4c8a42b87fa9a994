"""A tiny supervisor for one local-stack process: records the child's pid and exit status.

``python -m tradewise_ops.adapters.local._supervise STATE_PREFIX -- COMMAND...`` runs COMMAND in
its own process group, writes its pid to ``STATE_PREFIX.pid``, forwards TERM, INT, HUP, QUIT,
TTIN, TTOU, USR1 and USR2 to it, and when it ends writes its exit status to ``STATE_PREFIX.exit``
(a negative number is the signal that ended it). So ``tradewise local ps`` can say "exited 1"
long after the ``tradewise local up`` that started it has returned.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

FORWARDED = (
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGTTIN,
    signal.SIGTTOU,
    signal.SIGUSR1,
    signal.SIGUSR2,
)


def main(argv: list[str]) -> int:
    """Run the command after ``--``; return its exit status (128 + signal when signalled)."""
    if len(argv) < 3 or argv[1] != "--":
        print("usage: _supervise STATE_PREFIX -- COMMAND...", file=sys.stderr)
        return 2
    prefix = Path(argv[0])
    exit_file = prefix.with_name(prefix.name + ".exit")
    exit_file.unlink(missing_ok=True)
    child: subprocess.Popen[bytes] | None = None
    early: list[int] = []

    def forward(signum: int, _frame: object) -> None:
        if child is None:  # before the child exists: remember, act once it does
            early.append(signum)
            return
        try:
            child.send_signal(signum)
        except ProcessLookupError:
            pass

    # handlers first, so a TERM that comes while the child starts is not lost (an orphan)
    for signum in FORWARDED:
        signal.signal(signum, forward)
    if any(s in (signal.SIGTERM, signal.SIGINT) for s in early):
        exit_file.write_text(f"{-signal.SIGTERM}\n")
        return 128 + signal.SIGTERM
    try:
        child = subprocess.Popen(argv[2:], start_new_session=True)
    except OSError as exc:
        print(f"cannot start {argv[2]}: {exc}", file=sys.stderr)
        exit_file.write_text("127\n")
        return 127
    for pending in early:
        child.send_signal(pending)
    pid_file = prefix.with_name(prefix.name + ".pid")
    partial = pid_file.with_name(pid_file.name + ".partial")
    partial.write_text(f"{child.pid}\n")
    partial.replace(pid_file)
    while True:
        try:
            code = child.wait()
            break
        except InterruptedError:  # pragma: no cover - PEP 475 retries, kept for clarity
            continue
    exit_file.write_text(f"{code}\n")
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    os.umask(0o022)
    sys.exit(main(sys.argv[1:]))
