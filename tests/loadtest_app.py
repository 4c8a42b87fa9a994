"""The real bundled app under real gunicorn (``tradewise-api``) on loopback, for load-test tests.

SQLite in a temp dir, Redis pointed at a closed port (the app serves uncached without it), two sync
workers. ``requests_counted(endpoint)`` reads the app's own ``flask_request_total`` from /metrics.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from tests.helpers import free_port, port_open, wait_until

API = Path(sys.executable).parent / "tradewise-api"


class ApiServer:
    """``tradewise-api`` on 127.0.0.1:PORT; stop() ends it by pid."""

    def __init__(self, workdir: Path, extra_env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env.update(
            {
                "BIND": f"127.0.0.1:{self.port}",
                "WEB_CONCURRENCY": "2",
                "DATABASE_URL": f"sqlite:///{workdir}/tradewise.db",
                "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",  # nothing listens: uncached
                "PROMETHEUS_MULTIPROC_DIR": str(workdir / "prom"),
                "GUNICORN_WORKER_TMP_DIR": str(workdir),
                "LOG_LEVEL": "warning",
            }
        )
        env.update(extra_env or {})
        self.log = open(workdir / "api.log", "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [str(API)], env=env, stdout=self.log, stderr=subprocess.STDOUT, cwd=workdir
        )
        wait_until(
            lambda: port_open("127.0.0.1", self.port) or self.proc.poll() is not None,
            timeout=30,
            what=f"tradewise-api on port {self.port}",
        )
        if self.proc.poll() is not None:
            raise RuntimeError((workdir / "api.log").read_text()[-3000:])
        wait_until(self._healthy, timeout=60, interval=0.2, what="tradewise-api /api/health")

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/api/health", timeout=5) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def requests_counted(self, endpoint: str) -> int:
        """Sum of ``flask_request_total{endpoint=ENDPOINT}`` over methods and statuses."""
        with urllib.request.urlopen(self.url + "/metrics", timeout=10) as response:
            text = response.read().decode()
        total = 0.0
        pattern = re.compile(r"^flask_request_total\{([^}]*)\}\s+([0-9.e+]+)$")
        for line in text.splitlines():
            m = pattern.match(line)
            if m and f'endpoint="{endpoint}"' in m.group(1):
                total += float(m.group(2))
        return int(total)

    def stop(self) -> None:
        """SIGTERM the gunicorn master (by pid), then wait."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
