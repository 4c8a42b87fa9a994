"""The gateway's edge: kubeconfig reading without ``kubernetes``, TLS, login plugins, bounded waits.

Real servers on loopback only: the emulator over HTTP or TLS (certificates made by ``openssl``), a
socket that accepts connections and never answers, and ``tradewise`` run as its own process.
"""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.k8s_emulator import Emulator
from tests.k8s_emulator.tls import Pki, make_pki
from tradewise_ops.adapters.kube import KubeGateway
from tradewise_ops.adapters.kube import kubeconfig as kc
from tradewise_ops.core.config import load_config
from tradewise_ops.errors import ConfigError, UnreachableError

pytest_plugins = ["tests.k8s_emulator.fixtures"]

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "tradewise.yaml"
NS = "tradewise-ai"


# -- helpers ---------------------------------------------------------------------------------------
def write_kubeconfig(
    path: Path,
    server: str,
    *,
    cluster: dict[str, Any] | None = None,
    user: dict[str, Any] | None = None,
    contexts: tuple[str, ...] = ("staging",),
    current: str | None = "staging",
    cluster_name: str = "c",
    user_name: str = "u",
) -> Path:
    """A kubeconfig with one cluster, one user and ``contexts`` that use both."""
    doc: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster_name, "cluster": {"server": server, **(cluster or {})}}],
        "users": [{"name": user_name, "user": dict(user or {})}],
        "contexts": [
            {"name": name, "context": {"cluster": cluster_name, "user": user_name}}
            for name in contexts
        ],
    }
    if current:
        doc["current-context"] = current
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode("ascii")


def run_tradewise(*args: str, env: dict[str, str], timeout: float = 120) -> tuple[int, str, str]:
    """``python -m tradewise_ops ARGS`` as its own process; exit code, stdout, stderr."""
    full = {**os.environ, "NO_COLOR": "1", **env}
    proc = subprocess.run(
        [sys.executable, *args],
        env=full,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return proc.returncode, proc.stdout, proc.stderr


class HungServer:
    """A listening socket on 127.0.0.1 whose thread accepts connections and never answers."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.held.append(conn)  # held open, never read, never answered

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=2)
        for conn in self.held:
            conn.close()
        self.sock.close()


@pytest.fixture
def hung() -> Iterator[HungServer]:
    server = HungServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def _tls_emulator(pki: Pki, which: str) -> Iterator[Emulator]:
    emu = Emulator(namespaces=("default", NS)).start(tls=pki.server_context(which))
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture
def tls_emulator(pki: Pki) -> Iterator[Emulator]:
    yield from _tls_emulator(pki, "server")


@pytest.fixture
def rogue_emulator(pki: Pki) -> Iterator[Emulator]:
    """TLS with a self-signed certificate no kubeconfig here trusts."""
    yield from _tls_emulator(pki, "rogue")


@pytest.fixture
def named_emulator(pki: Pki) -> Iterator[Emulator]:
    """TLS with a certificate for ``kube.test`` only (not for 127.0.0.1)."""
    yield from _tls_emulator(pki, "named")


@pytest.fixture(autouse=True)
def _no_ambient_kubeconfig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    for name in ("CONNECT", "REQUEST", "TOTAL"):
        monkeypatch.delenv(f"TRADEWISE_KUBE_{name}_TIMEOUT", raising=False)


def gateway(path: Path, **options: Any) -> KubeGateway:
    return KubeGateway.from_kubeconfig(config_file=str(path), namespace=NS, **options)


# -- bounded waits ---------------------------------------------------------------------------------
def test_status_against_a_server_that_never_answers_exits_3_within_the_bound(
    hung: HungServer, tmp_path: Path
) -> None:
    path = write_kubeconfig(tmp_path / "kc", hung.url, user={"token": "t"})
    env = {
        "KUBECONFIG": str(path),
        "TRADEWISE_KUBE_CONNECT_TIMEOUT": "1",
        "TRADEWISE_KUBE_REQUEST_TIMEOUT": "1.5",
        "TRADEWISE_KUBE_TOTAL_TIMEOUT": "4",
    }
    start = time.monotonic()
    code, out, err = run_tradewise(
        "-m", "tradewise_ops", "--config", str(CONFIG), "status", "staging", env=env
    )
    took = time.monotonic() - start
    assert code == 3, err
    assert 3.5 <= took < 30, took  # the total bound was used, and it held
    assert len(hung.held) >= 2  # retried within the bound
    first = err.strip().splitlines()[0]
    assert f"cannot reach the Kubernetes API at {hung.url} (context staging)" in first
    assert "no answer within 1.5 s" in first
    assert out == ""


def test_a_gateway_call_to_a_silent_server_is_bounded_and_every_attempt_counted(
    hung: HungServer, tmp_path: Path
) -> None:
    path = write_kubeconfig(tmp_path / "kc", hung.url, user={"token": "t"})
    gw = gateway(path, connect_timeout=0.5, request_timeout=0.4, total_timeout=1.5, backoff=0.05)
    start = time.monotonic()
    with pytest.raises(UnreachableError) as err:
        gw.get("Deployment", "web")
    took = time.monotonic() - start
    assert 1.0 <= took < 4, took
    assert err.value.exit_code == 3
    assert "no answer within 0.4 s" in err.value.message and "context staging" in err.value.message
    assert err.value.hint and "TRADEWISE_KUBE_REQUEST_TIMEOUT" in err.value.hint
    assert gw.request_count == len(hung.held) >= 2


def test_timeouts_come_from_the_config_and_its_environment_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_kubeconfig(tmp_path / "kc", "http://127.0.0.1:9", user={"token": "t"})
    bare = gateway(path)
    t = bare.transport
    assert (t.connect_timeout, t.request_timeout, t.total_timeout) == (5.0, 20.0, 30.0)

    raw = yaml.safe_load(CONFIG.read_text())
    raw["defaults"]["kubernetes"] = {"connect_timeout": 2, "request_timeout": "45s"}
    raw["environments"]["staging"]["kubernetes"] = {"total_timeout": "1m"}
    config_file = tmp_path / "tradewise.yaml"
    config_file.write_text(yaml.safe_dump(raw))
    env = load_config(config_file, environ={}).environment("staging")
    assert (env.kubernetes.connect_timeout, env.kubernetes.request_timeout) == (2.0, 45.0)
    assert env.kubernetes.total_timeout == 60.0
    monkeypatch.setenv("KUBECONFIG", str(path))
    t = KubeGateway.from_environment(env).transport
    assert (t.connect_timeout, t.request_timeout, t.total_timeout) == (2.0, 45.0, 60.0)

    over = load_config(config_file, environ={"TRADEWISE_KUBE_REQUEST_TIMEOUT": "0.5"}).environment(
        "prod"
    )
    assert over.kubernetes.request_timeout == 0.5 and over.kubernetes.connect_timeout == 2.0
    with pytest.raises(ConfigError) as bad:
        load_config(config_file, environ={"TRADEWISE_KUBE_CONNECT_TIMEOUT": "soon"})
    assert "TRADEWISE_KUBE_CONNECT_TIMEOUT" in bad.value.message and "'soon'" in bad.value.message
    raw["defaults"]["kubernetes"] = {"read_timeout": 3}
    config_file.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError) as unknown:
        load_config(config_file, environ={})
    assert "read_timeout" in unknown.value.message and "request_timeout" in unknown.value.message


# -- TLS -------------------------------------------------------------------------------------------
def test_an_untrusted_certificate_exits_3_at_once_naming_server_and_reason(
    rogue_emulator: Emulator, pki: Pki, tmp_path: Path
) -> None:
    path = write_kubeconfig(
        tmp_path / "kc",
        rogue_emulator.url,
        cluster={"certificate-authority-data": b64(pki.cert("ca"))},
        user={"token": "t"},
    )
    start = time.monotonic()
    code, _, err = run_tradewise(
        "-m", "tradewise_ops", "--config", str(CONFIG), "status", "staging",
        env={"KUBECONFIG": str(path)},
    )  # fmt: skip
    took = time.monotonic() - start
    assert code == 3, err
    first = err.strip().splitlines()[0]
    assert f"the Kubernetes API at {rogue_emulator.url} (context staging)" in first
    assert "is unreachable as configured: certificate verify failed: self-signed" in first
    assert len(rogue_emulator.tls_failures) == 1  # one attempt, no retries
    assert rogue_emulator.requests == []
    assert took < 15, took


def test_tls_server_name_is_the_name_checked(
    named_emulator: Emulator, pki: Pki, tmp_path: Path
) -> None:
    ca = {"certificate-authority-data": b64(pki.cert("ca"))}
    plain = write_kubeconfig(tmp_path / "a", named_emulator.url, cluster=ca, user={"token": "t"})
    gw = gateway(plain)
    with pytest.raises(UnreachableError) as err:
        gw.list("Deployment")
    assert "certificate verify failed: IP address mismatch" in err.value.message
    # the server's side of the refused handshake is counted by its connection thread, which may
    # run a moment after the client has given up
    deadline = time.monotonic() + 5
    while not named_emulator.tls_failures and time.monotonic() < deadline:
        time.sleep(0.02)
    assert gw.request_count == 1 and len(named_emulator.tls_failures) == 1
    named = write_kubeconfig(
        tmp_path / "b",
        named_emulator.url,
        cluster={**ca, "tls-server-name": "kube.test"},
        user={"token": "t"},
    )
    assert gateway(named).list("Deployment") == []


def test_token_and_ca_data(tls_emulator: Emulator, pki: Pki, tmp_path: Path) -> None:
    path = write_kubeconfig(
        tmp_path / "kc",
        tls_emulator.url,
        cluster={"certificate-authority-data": b64(pki.cert("ca"))},
        user={"token": "s3cret"},
    )
    gw = gateway(path)
    assert gw.server == tls_emulator.url and (gw.context, gw.user) == ("staging", "u")
    assert gw.find("Namespace", NS) is not None
    assert [r.authorization for r in tls_emulator.requests] == ["Bearer s3cret"]


@pytest.mark.parametrize("form", ["data", "files"])
def test_client_certificate_and_key(
    form: str, tls_emulator: Emulator, pki: Pki, tmp_path: Path
) -> None:
    if form == "data":
        cluster = {"certificate-authority-data": b64(pki.cert("ca"))}
        user = {
            "client-certificate-data": b64(pki.cert("client")),
            "client-key-data": b64(pki.key("client")),
        }
    else:  # relative paths: relative to the kubeconfig's directory, as kubectl reads them
        certs = tmp_path / "conf" / "certs"
        certs.mkdir(parents=True)
        for name, src in (("ca.crt", pki.cert("ca")), ("me.crt", pki.cert("client"))):
            (certs / name).write_bytes(src.read_bytes())
        (certs / "me.key").write_bytes(pki.key("client").read_bytes())
        cluster = {"certificate-authority": "certs/ca.crt"}
        user = {"client-certificate": "certs/me.crt", "client-key": "certs/me.key"}
    path = write_kubeconfig(tmp_path / "conf" / "kc", tls_emulator.url, cluster=cluster, user=user)
    os.chdir(tmp_path)  # the relative paths must not depend on the working directory
    try:
        gateway(path).list("Deployment")
    finally:
        os.chdir(ROOT)
    (record,) = tls_emulator.requests
    assert record.client_cn == "tester" and record.authorization == ""


def test_insecure_skip_tls_verify_accepts_any_certificate(
    rogue_emulator: Emulator, tmp_path: Path
) -> None:
    path = write_kubeconfig(
        tmp_path / "kc",
        rogue_emulator.url,
        cluster={"insecure-skip-tls-verify": True},
        user={"username": "ada", "password": "pw:1"},
    )
    assert gateway(path).list("Deployment") == []
    expected = "Basic " + base64.b64encode(b"ada:pw:1").decode()
    assert [r.authorization for r in rogue_emulator.requests] == [expected]


def test_token_file_relative_and_preferred_to_token(emulator: Emulator, tmp_path: Path) -> None:
    (tmp_path / "token").write_text("from-file\n")
    path = write_kubeconfig(
        tmp_path / "kc", emulator.url, user={"tokenFile": "token", "token": "inline"}
    )
    gateway(path).list("Deployment")
    assert emulator.requests[-1].authorization == "Bearer from-file"


def test_a_missing_context_names_the_ones_there(emulator: Emulator, tmp_path: Path) -> None:
    path = write_kubeconfig(tmp_path / "kc", emulator.url, contexts=("staging", "prod"))
    with pytest.raises(ConfigError) as err:
        KubeGateway.from_kubeconfig(context="qa", config_file=str(path))
    assert "'qa'" in err.value.message and "staging, prod" in err.value.message
    assert err.value.exit_code == 2
    nocurrent = write_kubeconfig(tmp_path / "kc2", emulator.url, current=None)
    with pytest.raises(ConfigError) as err:
        KubeGateway.from_kubeconfig(config_file=str(nocurrent))
    assert "no current context" in err.value.message


def test_two_files_merge_like_kubectl(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = write_kubeconfig(
        tmp_path / "one", emulator.url, contexts=("a",), current="a", cluster_name="shared"
    )
    second = tmp_path / "two"
    second.write_text(
        yaml.safe_dump(
            {
                "clusters": [  # the first file named "shared" already: this one is ignored
                    {"name": "shared", "cluster": {"server": "http://127.0.0.1:9"}}
                ],
                "users": [{"name": "bob", "user": {"token": "bobs"}}],
                "contexts": [
                    {"name": "b", "context": {"cluster": "shared", "user": "bob", "namespace": "x"}}
                ],
                "current-context": "b",  # the first file's current-context wins
            }
        )
    )
    monkeypatch.setenv(
        "KUBECONFIG", f"{first}{os.pathsep}{tmp_path / 'absent'}{os.pathsep}{second}"
    )
    gw = KubeGateway.from_kubeconfig()
    assert (gw.context, gw.server, gw.namespace) == ("a", emulator.url, "default")
    other = KubeGateway.from_kubeconfig(context="b")
    assert (other.context, other.user, other.namespace, other.server) == (
        "b",
        "bob",
        "x",
        emulator.url,
    )
    other.list("Deployment", namespace=NS)
    assert emulator.requests[-1].authorization == "Bearer bobs"


@pytest.mark.parametrize(
    ("cluster", "user", "says"),
    [
        ({}, {"token": "t", "username": "u", "password": "p"}, "only one of them"),
        ({"insecure-skip-tls-verify": True, "certificate-authority": "/nope"}, {}, "cannot be"),
        ({"insecure-skip-tls-verify": True, "certificate-authority-data": "eA=="}, {}, "both"),
        ({}, {"client-certificate-data": "eA=="}, "client-key(-data) is missing"),
        ({"certificate-authority-data": "bm90IGEgY2VydA=="}, {}, "not a PEM certificate"),
        ({"server": ""}, {}, "has no server"),
        ({}, {"tokenFile": "/nonexistent/token"}, "tokenFile /nonexistent/token"),
    ],
)
def test_unusable_kubeconfigs_are_config_errors(
    cluster: dict[str, Any], user: dict[str, Any], says: str, tmp_path: Path
) -> None:
    path = write_kubeconfig(tmp_path / "kc", "https://127.0.0.1:9", cluster=cluster, user=user)
    with pytest.raises(ConfigError) as err:
        gateway(path)
    assert says in err.value.message


# -- login plugins: the kubernetes package's loader --------------------------------------------
EXEC_SCRIPT = """#!/bin/sh
echo "called with $1" >> "$(dirname "$0")/calls"
cat <<'EOF'
{"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential",
 "status": {"token": "from-exec"}}
EOF
"""


def _exec_user(tmp_path: Path, script: str) -> dict[str, Any]:
    plugin = tmp_path / "plugin.sh"
    plugin.write_text(script)
    plugin.chmod(0o755)
    return {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": str(plugin),
            "args": ["login"],
            "interactiveMode": "Never",
        }
    }


def test_an_exec_user_gets_its_token_from_the_plugin(emulator: Emulator, tmp_path: Path) -> None:
    path = write_kubeconfig(tmp_path / "kc", emulator.url, user=_exec_user(tmp_path, EXEC_SCRIPT))
    gw = gateway(path)
    gw.list("Deployment")
    gw.list("Pod")
    assert [r.authorization for r in emulator.requests] == ["Bearer from-exec"] * 2
    assert (tmp_path / "calls").read_text().startswith("called with login")


def test_a_failing_exec_plugin_is_a_config_error_naming_the_user(
    emulator: Emulator, tmp_path: Path
) -> None:
    script = "#!/bin/sh\necho 'token expired: run sso login' >&2\nexit 1\n"
    path = write_kubeconfig(tmp_path / "kc", emulator.url, user=_exec_user(tmp_path, script))
    with pytest.raises(ConfigError) as err:
        gateway(path)
    assert "user 'u'" in err.value.message and "token expired" in err.value.message
    assert emulator.requests == []


# -- in-cluster --------------------------------------------------------------------------------
def test_in_cluster_service_account(tls_emulator: Emulator, pki: Pki, tmp_path: Path) -> None:
    sa = tmp_path / "sa"
    sa.mkdir()
    (sa / "token").write_text("pod-token")
    (sa / "ca.crt").write_bytes(pki.cert("ca").read_bytes())
    (sa / "namespace").write_text(NS + "\n")
    environ = {
        "KUBERNETES_SERVICE_HOST": "127.0.0.1",
        "KUBERNETES_SERVICE_PORT": str(tls_emulator.port),
    }
    gw = KubeGateway(kc.in_cluster(environ, sa_dir=str(sa)))
    assert (gw.context, gw.namespace, gw.server) == ("in-cluster", NS, tls_emulator.url)
    assert gw.list("Deployment") == []
    assert tls_emulator.requests[-1].authorization == "Bearer pod-token"
    (sa / "token").unlink()
    with pytest.raises(UnreachableError) as err:
        kc.in_cluster(environ, sa_dir=str(sa))
    assert "token" in err.value.message


# -- the import the common case no longer pays ---------------------------------------------------
def _imported_modules(stderr: str) -> set[str]:
    names = set()
    for line in stderr.splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+\d+ \|\s+(\S+)", line)
        if m:
            names.add(m.group(1))
    return names


def test_status_with_a_token_kubeconfig_does_not_import_kubernetes(
    emulator: Emulator, tmp_path: Path
) -> None:
    token = write_kubeconfig(tmp_path / "token-kc", emulator.url, user={"token": "t"})
    args = ("-X", "importtime", "-m", "tradewise_ops", "--config", str(CONFIG), "status")
    code, out, err = run_tradewise(*args, "staging", "-o", "json", env={"KUBECONFIG": str(token)})
    assert code == 0, err
    assert json.loads(out)["release"] is None
    modules = _imported_modules(err)
    assert "urllib3" in modules  # the measurement sees imports
    assert not {m for m in modules if m == "kubernetes" or m.startswith("kubernetes.")}
    # an exec user goes through the kubernetes package: the same measurement sees it
    plugin = write_kubeconfig(
        tmp_path / "exec-kc", emulator.url, user=_exec_user(tmp_path, EXEC_SCRIPT)
    )
    code, _, err = run_tradewise(*args, "staging", "-o", "json", env={"KUBECONFIG": str(plugin)})
    assert code == 0, err
    assert "kubernetes.config" in _imported_modules(err)
