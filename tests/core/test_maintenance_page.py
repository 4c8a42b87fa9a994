"""The rendered maintenance page, served by a real nginx on loopback: 503s, JSON under /api/."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import free_port, port_open, require, wait_until
from tradewise_ops.core.config import load_config
from tradewise_ops.core.render import render_environment
from tradewise_ops.resources import data_path


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else "")
    require(bool(nginx), "nginx (apt-get install nginx-light) to serve the rendered page")
    config = load_config(data_path("tradewise.yaml"), environ={})
    objects = render_environment(config, "prod", tag="v1.2.3")
    (cm,) = [o for o in objects if o["metadata"]["name"] == "tradewise-maintenance-page"]
    root = tmp_path_factory.mktemp("nginx")
    port = free_port()
    for sub in ("conf.d", "html", "tmp"):
        (root / sub).mkdir()
    conf = cm["data"]["default.conf"]
    assert "listen 8080;" in conf and "root /usr/share/nginx/html;" in conf
    conf = conf.replace("listen 8080;", f"listen 127.0.0.1:{port};")
    conf = conf.replace("root /usr/share/nginx/html;", f"root {root / 'html'};")
    (root / "conf.d" / "default.conf").write_text(conf, encoding="utf-8")
    (root / "html" / "maintenance.html").write_text(cm["data"]["maintenance.html"], "utf-8")
    temp = root / "tmp"
    (root / "nginx.conf").write_text(
        # as root, nginx's workers would run as nobody and not read the private tmp dir
        ("user root;\n" if os.geteuid() == 0 else "")
        + f"daemon off; pid {temp}/nginx.pid; error_log stderr;\n"
        "events {}\n"
        "http { default_type application/octet-stream; access_log off;\n"
        + "".join(f" {k}_temp_path {temp}/{k};" for k in ("client_body", "proxy", "fastcgi"))
        + "".join(f" {k}_temp_path {temp}/{k};" for k in ("uwsgi", "scgi"))
        + f"\n include {root}/conf.d/*.conf; }}\n",
        encoding="utf-8",
    )
    proc = subprocess.Popen(
        [nginx, "-c", str(root / "nginx.conf"), "-p", str(root)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_until(
            lambda: port_open("127.0.0.1", port) or proc.poll() is not None, 10, what="nginx"
        )
        if proc.poll() is not None:
            raise AssertionError(f"nginx refused the rendered config: {proc.stderr.read()!r}")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def get(url: str) -> tuple[int, dict[str, str], str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode()


@pytest.mark.parametrize("path", ["/", "/portfolio/AAPL"])
def test_pages_answer_503_with_the_maintenance_html(page: str, path: str) -> None:
    status, headers, body = get(page + path)
    assert status == 503
    assert headers["Retry-After"] == "600"
    assert headers["Content-Type"].startswith("text/html")
    assert "TradeWise AI is down for maintenance" in body


def test_the_api_answers_503_in_the_apps_json_error_shape(page: str) -> None:
    status, headers, body = get(page + "/api/stock-analysis?symbol=AAPL")
    assert status == 503
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body) == {
        "error": {
            "code": "maintenance",
            "message": "TradeWise AI is down for maintenance; please retry later",
            "status": 503,
        }
    }


def test_the_probe_path_is_healthy(page: str) -> None:
    status, _, body = get(page + "/healthz")
    assert (status, body) == (200, "ok\n")
