"""A private Docker engine, a debootstrap base image and an offline wheelhouse for the tests.

Nothing here touches a system Docker: the engine is a ``dockerd`` started in a temp dir with no
bridge, no iptables and no masquerading (``DOCKER_HOST`` points at its own socket), stopped by the
pid in its pidfile, with what it left mounted under its dir unmounted before the dir is removed.

No registry is reachable, so the base image is made with ``debootstrap`` (Debian bookworm,
``python3`` + ``python3-venv``) and imported; its tarball is cached under
``~/.cache/tradewise-test/`` keyed by the recipe, so only the first run on a machine pays for it.
The wheelhouse (``pip wheel`` of the image's requirements on the host) is cached the same way,
keyed by the requirements and the host's Python.

The fixtures skip where no engine can be started, and fail instead under ``CI=true``
(``tests.helpers.require``), so CI never passes with the Docker tests skipped.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import require

CACHE_DIR = Path(os.environ.get("TRADEWISE_TEST_CACHE", Path.home() / ".cache" / "tradewise-test"))
BASE_IMAGE = "tradewise-test/bookworm-python3:base"
REPO_ROOT = Path(__file__).resolve().parent.parent

# the base image recipe: change anything here and the cached tarball is rebuilt
_SUITE = "bookworm"
_INCLUDE = "python3,python3-venv,ca-certificates"
_PRUNE = (
    "var/lib/apt/lists",
    "var/cache/apt",
    "var/cache/debconf/templates.dat-old",
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
    "var/log",
)
_RECIPE_VERSION = "1"


class DockerEngine:
    """A private ``dockerd``: ``.host`` is its ``unix://`` URL; ``stop()`` leaves nothing behind."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.sock = root / "docker.sock"
        self.pidfile = root / "docker.pid"
        self.log = root / "dockerd.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        """``unix:///tmp/.../docker.sock``: the value for ``DOCKER_HOST``."""
        return f"unix://{self.sock}"

    def start(self, timeout: float = 60.0) -> None:
        """Start dockerd and wait until it answers ``/_ping``."""
        dockerd = shutil.which("dockerd") or "/usr/sbin/dockerd"
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    dockerd,
                    "--host",
                    self.host,
                    "--data-root",
                    str(self.root / "data"),
                    "--exec-root",
                    str(self.root / "exec"),
                    "--pidfile",
                    str(self.pidfile),
                    "--bridge=none",
                    "--iptables=false",
                    "--ip-masq=false",
                    "--ip6tables=false",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dockerd exited {self.proc.returncode}: {self._log_tail()}")
            if self.sock.exists() and self._ping():
                return
            time.sleep(0.1)
        raise RuntimeError(f"dockerd did not answer within {timeout:.0f}s: {self._log_tail()}")

    def _ping(self) -> bool:
        import docker

        try:
            client = docker.DockerClient(base_url=self.host, version="auto", timeout=5)
        except docker.errors.DockerException:
            return False
        try:
            return bool(client.ping())
        except Exception:
            return False
        finally:
            client.close()

    def _log_tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-2000:]
        except OSError:
            return "(no log)"

    def client(self):  # type: ignore[no-untyped-def]
        """A ``docker.DockerClient`` on this engine (for the tests' own checks)."""
        import docker

        return docker.DockerClient(base_url=self.host, version="auto", timeout=300)

    def remove_containers(self) -> None:
        """Force-remove every container of this engine."""
        client = self.client()
        try:
            for container in client.containers.list(all=True):
                container.remove(force=True)
        finally:
            client.close()

    def stop(self) -> None:
        """TERM the pid in the pidfile (KILL after 20 s), unmount leftovers, remove the dir."""
        pid = None
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            pid = self.proc.pid if self.proc is not None else None
        if pid is not None:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        if self.proc is not None:
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        _unmount_under(self.root)
        shutil.rmtree(self.root, ignore_errors=True)


def _unmount_under(root: Path) -> None:
    """Unmount every mount point below ``root``, deepest first."""
    prefix = str(root.resolve()) + "/"
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return
    points = [line.split()[4] for line in lines if len(line.split()) > 4]
    for point in sorted({p for p in points if p.startswith(prefix)}, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)


def engine_available() -> tuple[bool, str]:
    """Whether a private engine can be started here, and why not."""
    if shutil.which("dockerd") is None and not os.access("/usr/sbin/dockerd", os.X_OK):
        return False, "dockerd (apt-get install docker.io)"
    if os.geteuid() != 0:
        return False, "root to start a private dockerd"
    return True, ""


# one engine per test session, shared by every module that imports the fixture
_SHARED: dict[str, object] = {}


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[DockerEngine]:
    """A private dockerd for the session; skips (fails under CI=true) where none can start."""
    ok, why = engine_available()
    require(ok, why)
    engine = _SHARED.get("engine")
    if not isinstance(engine, DockerEngine):
        engine = DockerEngine(Path(tempfile.mkdtemp(prefix="twd-")))
        try:
            engine.start()
        except RuntimeError as exc:
            engine.stop()
            require(False, f"a private dockerd that starts ({exc})")
        _SHARED["engine"] = engine
        _SHARED["users"] = 0
    _SHARED["users"] = int(_SHARED["users"]) + 1  # type: ignore[call-overload]
    try:
        yield engine
    finally:
        _SHARED["users"] = int(_SHARED["users"]) - 1  # type: ignore[call-overload]
        if _SHARED["users"] == 0:
            try:
                engine.remove_containers()
            finally:
                engine.stop()
                _SHARED.clear()


# --------------------------------------------------------------------------------------------
# the base image
# --------------------------------------------------------------------------------------------
def _mirror() -> str:
    """The Debian mirror apt uses here (``URIs:`` of debian.sources), else deb.debian.org."""
    sources = Path("/etc/apt/sources.list.d/debian.sources")
    if sources.is_file():
        for line in sources.read_text().splitlines():
            if line.startswith("URIs:") and "security" not in line:
                return line.split(":", 1)[1].strip().split()[0]
    return "http://deb.debian.org/debian"


def base_recipe_key() -> str:
    """Hash of everything that decides the base tarball's content."""
    text = "|".join([_RECIPE_VERSION, _SUITE, "minbase", _INCLUDE, *_PRUNE])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def base_tarball(cache_dir: Path = CACHE_DIR) -> Path:
    """The cached base rootfs tarball, made with debootstrap on first use (about a minute)."""
    target = cache_dir / f"base-{_SUITE}-{base_recipe_key()}.tar"
    if target.is_file():
        return target
    debootstrap = shutil.which("debootstrap") or "/usr/sbin/debootstrap"
    if not os.access(debootstrap, os.X_OK):
        raise RuntimeError("debootstrap is not installed (apt-get install debootstrap)")
    cache_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="tw-rootfs-", dir=cache_dir))
    root = work / "root"
    try:
        result = subprocess.run(
            [
                debootstrap,
                "--variant=minbase",
                f"--include={_INCLUDE}",
                _SUITE,
                str(root),
                _mirror(),
            ],
            capture_output=True,
            text=True,
            timeout=900,
        )
        if result.returncode != 0:
            raise RuntimeError(f"debootstrap failed:\n{result.stdout[-3000:]}{result.stderr}")
        for rel in _PRUNE:
            path = root / rel
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
                path.mkdir(parents=True, exist_ok=True)
        partial = work / "base.tar"
        subprocess.run(
            ["tar", "-C", str(root), "--numeric-owner", "-cf", str(partial), "."],
            check=True,
            capture_output=True,
            timeout=300,
        )
        partial.replace(target)
    finally:
        _unmount_under(work)
        shutil.rmtree(work, ignore_errors=True)
    return target


def import_base_image(engine: DockerEngine, name: str = BASE_IMAGE) -> str:
    """Import the base tarball into ``engine`` as ``name`` (no-op when it is there)."""
    client = engine.client()
    try:
        try:
            client.images.get(name)
            return name
        except Exception:
            pass
        tarball = base_tarball()
        repo, tag = name.rsplit(":", 1)
        with open(tarball, "rb") as fh:
            client.api.import_image_from_data(fh.read(), repository=repo, tag=tag)
        client.images.get(name)
        return name
    finally:
        client.close()


@pytest.fixture(scope="session")
def base_image(docker_engine: DockerEngine) -> str:
    """The debootstrap'ed bookworm + python3 base image, imported into the private engine."""
    try:
        return import_base_image(docker_engine)
    except RuntimeError as exc:
        require(False, f"a debootstrap base image ({exc})")
        raise


# --------------------------------------------------------------------------------------------
# the wheelhouse
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def wheelhouse() -> Path:
    """Wheels of everything the images install, made on the host and cached (offline builds)."""
    from tradewise_ops.adapters.images import image_requirements, prepare_wheelhouse

    reqs = image_requirements(REPO_ROOT / "pyproject.toml")
    key = hashlib.sha256(
        ("\n".join(reqs) + f"|{sys.version_info[:2]}|{sys.platform}").encode()
    ).hexdigest()[:16]
    target = CACHE_DIR / f"wheelhouse-{key}"
    if not (target / ".complete").is_file():
        shutil.rmtree(target, ignore_errors=True)
        prepare_wheelhouse(target, REPO_ROOT / "pyproject.toml")
        (target / ".complete").write_text("ok\n")
    return target
