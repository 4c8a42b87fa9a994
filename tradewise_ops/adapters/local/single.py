"""One API process on loopback for a measurement: ``tradewise-api`` with one gunicorn worker.

``SingleApi`` is a context manager: it starts ``tradewise-api`` (the production gunicorn
settings, ``WEB_CONCURRENCY=1``) on a free 127.0.0.1 port with a throw-away SQLite database in a
temporary directory and, when ``redis-server`` is installed, a private Redis beside it for the
analysis cache (as in a deployment), waits for ``/api/health``, and on exit stops both by their
pids (SIGTERM, then SIGKILL after a grace period) and removes the directory.
``tradewise capacity --env local`` measures it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from tradewise_ops.adapters.local.common import tail, wait_ready
from tradewise_ops.adapters.local.processes import _script, redis_server_binary
from tradewise_ops.errors import GoalMissedError


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class SingleApi:
    """``tradewise-api`` with one sync worker on a free loopback port, for as long as a ``with``.

    ``cache``: start a private ``redis-server`` for the analysis cache when one is installed
    (``cached`` says whether it runs); without it analyses are computed on every request.
    ``extra_env`` adds variables such as ``TRADEWISE_INJECT_LATENCY_MS``.
    """

    def __init__(
        self,
        cache: bool = True,
        extra_env: dict[str, str] | None = None,
        start_timeout: float = 60.0,
    ) -> None:
        self.cache = cache
        self.extra_env = dict(extra_env or {})
        self.start_timeout = start_timeout
        self.port = 0
        self.dir: Path | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.redis: subprocess.Popen[bytes] | None = None

    @property
    def cached(self) -> bool:
        """True when the analysis cache (a private redis-server) runs."""
        return self.redis is not None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def __enter__(self) -> SingleApi:
        self.dir = Path(tempfile.mkdtemp(prefix="tradewise-single-api-"))
        self.port = _free_port()
        redis_url = self._start_redis(self.dir) if self.cache else "none"
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEWISE_")}
        env.update(
            {
                "BIND": f"127.0.0.1:{self.port}",
                "WEB_CONCURRENCY": "1",
                "DATABASE_URL": f"sqlite:///{self.dir / 'tradewise.db'}",
                "REDIS_URL": redis_url,
                "PROMETHEUS_MULTIPROC_DIR": str(self.dir / "prometheus"),
                "GUNICORN_WORKER_TMP_DIR": str(self.dir),
                "LOG_LEVEL": "warning",
                **self.extra_env,
            }
        )
        log = self.dir / "api.log"
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                [_script("tradewise-api")],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.dir,
                start_new_session=True,  # Ctrl-C reaches tradewise, which stops it itself
            )
        proc = self.proc

        def alive() -> str | None:
            if proc.poll() is None:
                return None
            return f"tradewise-api exited with code {proc.returncode}: " + " | ".join(tail(log, 5))

        try:
            wait_ready(self.url + "/api/health", self.start_timeout, alive, lambda _: None)
            if self.redis is not None and self.redis.poll() is not None:
                raise RuntimeError(f"redis-server exited with code {self.redis.returncode}")
        except (RuntimeError, TimeoutError) as exc:
            self.__exit__(None, None, None)
            raise GoalMissedError(f"one API process did not start: {exc}") from None
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for proc in (self.proc, self.redis):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self.proc = self.redis = None
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def _start_redis(self, workdir: Path) -> str:
        """A private redis-server on a free loopback port; ``none`` when none is installed."""
        binary = redis_server_binary()
        if binary is None:
            return "none"
        port = _free_port()
        argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", str(workdir), "--protected-mode", "yes"]  # fmt: skip
        self.redis = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.redis.poll() is None:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.02)
        return f"redis://127.0.0.1:{port}/0"
