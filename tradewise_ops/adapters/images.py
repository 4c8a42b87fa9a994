"""Building and pushing the service images through the Docker SDK (the only importer of ``docker``).

``ImageBuilder(env).build(tag)`` sends a build context (the checkout filtered by ``.dockerignore``,
plus an optional wheelhouse) to the engine with host networking, streams the progress lines,
and turns an ``{"error": ...}`` item of the stream into a ``GoalMissedError`` carrying the failing
step's output. ``push(tag)`` pushes to the environment's registry and records the digests, which
``adapters.digest_record`` gives back to ``render``/``deploy`` for pinning.

``docker`` is imported inside the functions that talk to an engine, so reading digests or
importing this module costs nothing.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from tradewise_ops.adapters.digest_record import (  # the digest record, re-exported here
    images_file as images_file,
)
from tradewise_ops.adapters.digest_record import (
    pinnable_digests as pinnable_digests,
)
from tradewise_ops.adapters.digest_record import (
    read_image_digests as read_image_digests,
)
from tradewise_ops.adapters.digest_record import (
    record_digests as record_digests,
)
from tradewise_ops.core.config import Environment
from tradewise_ops.errors import BadInputError, GoalMissedError, UnreachableError

COMPONENTS = ("api", "worker")
DOCKERFILES = {"api": "Dockerfile", "worker": "Dockerfile.worker"}
DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
_STEP = re.compile(r"^Step (\d+)/(\d+) : (.*)$")
_UNREACHABLE_HINTS = (
    "no such host",
    "dial tcp",
    "connection refused",
    "i/o timeout",
    "tls handshake timeout",
    "network is unreachable",
    "server misbehaving",
    "temporary failure in name resolution",
    "context deadline exceeded",
)

LineSink = Callable[[str], None]


@dataclass(frozen=True)
class BuiltImage:
    """One image a build produced."""

    component: str
    image_id: str
    tags: list[str]
    size_bytes: int
    seconds: float


@dataclass
class _StepLog:
    """The output of the build step in progress, kept to report a failure."""

    number: str = ""
    instruction: str = ""
    lines: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# what the images install
# --------------------------------------------------------------------------------------------
IMAGE_EXTRAS = {"api": "service", "worker": "worker-image"}


def image_requirements(pyproject: Path, component: str | None = None) -> list[str]:
    """What an image installs: ``[project.optional-dependencies]`` ``service`` (API image) or
    ``worker-image`` (worker image); both lists (deduplicated) when ``component`` is None.

    The Dockerfiles install exactly that list (plus the project itself, without dependencies).
    """
    import tomllib

    data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    extras = data.get("project", {}).get("optional-dependencies", {})
    wanted = [IMAGE_EXTRAS[component]] if component else list(IMAGE_EXTRAS.values())
    reqs: list[str] = []
    for extra in wanted:
        if extra not in extras:
            raise BadInputError(
                f"{pyproject} has no [project.optional-dependencies] {extra} list: "
                "the images install that list"
            )
        reqs.extend(str(r) for r in extras[extra] if str(r) not in reqs)
    return reqs


def build_requirements(pyproject: Path) -> list[str]:
    """The project's build backend requirements (``[build-system].requires``)."""
    import tomllib

    data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    return [str(r) for r in data.get("build-system", {}).get("requires", [])]


def prepare_wheelhouse(
    dest: Path, pyproject: Path, python: str | None = None, on_line: LineSink | None = None
) -> Path:
    """Fill ``dest`` with wheels of everything the images install, so a build needs no index.

    Runs ``pip wheel`` on this machine (its Python should match the base image's minor version,
    3.11 for ``python:3.11-slim`` and Debian bookworm). Raises ``GoalMissedError`` with pip's
    output when pip fails.
    """
    dest.mkdir(parents=True, exist_ok=True)
    reqs = image_requirements(pyproject) + build_requirements(pyproject)
    cmd = [python or sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(dest)]
    # the host may run a later patch release than the base image (bookworm has 3.11.2), and some
    # dependencies hold only below one (async-timeout for python_full_version < "3.11.3"): add
    # what the earliest patch release of this minor version would need, until nothing is missing
    for _round in range(4):
        if on_line:
            on_line(f"pip wheel {len(reqs)} requirements into {dest}")
        result = subprocess.run([*cmd, *reqs], capture_output=True, text=True, timeout=1800)
        if result.returncode != 0:
            raise GoalMissedError(
                f"pip wheel failed (exit {result.returncode}) filling the wheelhouse {dest}:\n"
                + (result.stdout + result.stderr)[-3000:]
            )
        reqs = _missing_for_earliest_patch(dest)
        if not reqs:
            break
    return dest


def _missing_for_earliest_patch(wheelhouse: Path) -> list[str]:
    """Requirements of the wheels in ``wheelhouse`` that Python X.Y.0 needs and none provides."""
    import zipfile
    from email.parser import HeaderParser

    from packaging.markers import default_environment
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    environment: dict[str, str] = dict(default_environment())  # type: ignore[arg-type]
    environment["python_full_version"] = f"{sys.version_info.major}.{sys.version_info.minor}.0"
    have: set[str] = set()
    wanted: list[Requirement] = []
    for wheel in wheelhouse.glob("*.whl"):
        have.add(canonicalize_name(wheel.name.split("-", 1)[0]))
        with zipfile.ZipFile(wheel) as zf:
            meta = next((n for n in zf.namelist() if n.endswith(".dist-info/METADATA")), None)
            if meta is None:
                continue
            headers = HeaderParser().parsestr(zf.read(meta).decode("utf-8", "replace"))
        for line in headers.get_all("Requires-Dist") or []:
            try:
                req = Requirement(line)
            except InvalidRequirement:
                continue
            if req.marker is None or req.marker.evaluate(dict(environment, extra="")):
                wanted.append(req)
    missing = {}
    for req in wanted:
        name = canonicalize_name(req.name)
        if name not in have:
            missing[name] = f"{req.name}{req.specifier}"
    return sorted(missing.values())


# --------------------------------------------------------------------------------------------
# git facts for tags and labels
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Revision:
    """The checkout's commit: full and short hash, whether the tree has uncommitted changes."""

    commit: str
    short: str
    dirty: bool
    source: str | None = None

    @property
    def tag(self) -> str:
        """The image tag of this commit: the short hash, ``-dirty`` when the tree differs."""
        return self.short + ("-dirty" if self.dirty else "")


def git_revision(root: Path) -> Revision | None:
    """The commit ``root`` is checked out at, or None outside a git checkout."""

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=20
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if not commit:
        return None
    status = git("status", "--porcelain", "--untracked-files=no")
    source = git("config", "--get", "remote.origin.url") or None
    return Revision(commit, commit[:7], bool(status), source)


def oci_labels(version: str, revision: Revision | None, created: datetime | None = None) -> dict:
    """The OCI annotations of an image: version, revision, created (RFC 3339), source."""
    stamp = (created or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    labels = {
        "org.opencontainers.image.title": "tradewise-ai",
        "org.opencontainers.image.version": version,
        "org.opencontainers.image.created": stamp,
        "org.opencontainers.image.revision": (
            (revision.commit + ("-dirty" if revision.dirty else "")) if revision else "unknown"
        ),
    }
    if revision and revision.source:
        labels["org.opencontainers.image.source"] = revision.source
    return labels


# --------------------------------------------------------------------------------------------
# the build context
# --------------------------------------------------------------------------------------------
def context_tar(root: Path, wheelhouse: Path | None = None) -> io.BufferedRandom:
    """The build context as an uncompressed tar (a temp file, rewound).

    ``root`` filtered by its ``.dockerignore`` (the SDK's own matcher), plus the wheels of
    ``wheelhouse`` as ``wheelhouse/`` when given (replacing a ``wheelhouse/`` in ``root``).
    """
    from docker.utils.build import exclude_paths

    ignore = root / ".dockerignore"
    patterns: list[str] = []
    if ignore.is_file():
        patterns = [
            line.strip()
            for line in ignore.read_text().splitlines()
            if line.strip() and not line.strip().startswith("#")
        ]
    included = set(exclude_paths(str(root), patterns))
    # the Dockerfiles travel in the context even when .dockerignore leaves them out
    included |= {name for name in DOCKERFILES.values() if (root / name).is_file()}
    out = tempfile.TemporaryFile()  # noqa: SIM115 - returned to the caller
    with tarfile.open(fileobj=out, mode="w") as tar:
        for rel in sorted(included):
            if wheelhouse is not None and (rel == "wheelhouse" or rel.startswith("wheelhouse/")):
                continue
            tar.add(str(root / rel), arcname=rel, recursive=False)
        if wheelhouse is not None:
            tar.add(str(wheelhouse), arcname="wheelhouse", recursive=False)
            for wheel in sorted(wheelhouse.iterdir()):
                if wheel.suffix in (".whl", ".gz", ".zip"):
                    tar.add(str(wheel), arcname=f"wheelhouse/{wheel.name}", recursive=False)
    out.seek(0)
    return out


def find_context_root(start: Path | None = None) -> Path:
    """The directory holding the Dockerfiles: ``start`` (default cwd), else the checkout."""
    from tradewise_ops.resources import repo_root

    for candidate in (start or Path.cwd(), repo_root()):
        if candidate is not None and all((candidate / f).is_file() for f in DOCKERFILES.values()):
            return candidate
    raise BadInputError(
        "no Dockerfile and Dockerfile.worker here: run `tradewise build` in the tradewise checkout"
    )


# --------------------------------------------------------------------------------------------
# the engine
# --------------------------------------------------------------------------------------------
def docker_host() -> str:
    """The engine address the SDK will use: ``DOCKER_HOST`` or the default socket."""
    return os.environ.get("DOCKER_HOST") or DEFAULT_DOCKER_HOST


def connect(timeout: int = 900) -> Any:
    """A low-level ``docker.APIClient`` on ``DOCKER_HOST``; ``UnreachableError`` if it is silent."""
    import docker
    from docker.utils import kwargs_from_env

    host = docker_host()
    try:
        client = docker.APIClient(version="auto", timeout=timeout, **kwargs_from_env())
        client.ping()
    except Exception as exc:  # DockerException, requests' ConnectionError, OSError
        env_value = os.environ.get("DOCKER_HOST")
        shown = f"DOCKER_HOST={env_value}" if env_value else "DOCKER_HOST is unset"
        raise UnreachableError(
            f"cannot reach the Docker engine at {host} ({shown}): {_short(exc)}",
            hint="start dockerd, or point DOCKER_HOST at a running engine (unix:///path/docker.sock)",
        ) from None
    return client


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:300]


class ImageBuilder:
    """Builds, tags and pushes the API and worker images of one environment."""

    def __init__(self, env: Environment, root: Path | None = None) -> None:
        self.env = env
        self._root = root
        self._client: Any = None

    @property
    def root(self) -> Path:
        """The build context directory (the checkout with the Dockerfiles)."""
        if self._root is None:
            self._root = find_context_root()
        return self._root

    @property
    def client(self) -> Any:
        """The engine connection, opened on first use."""
        if self._client is None:
            self._client = connect()
        return self._client

    def image_name(self, component: str) -> str:
        """The local repository name of a component's image (``tradewise-ai``, ...)."""
        return self.env.api_image if component == "api" else self.env.worker_image

    def remote_name(self, component: str) -> str:
        """The registry repository of a component's image."""
        return f"{self.env.registry.rstrip('/')}/{self.image_name(component)}"

    def build(
        self,
        tag: str = "latest",
        only: str | None = None,
        no_cache: bool = False,
        base_image: str | None = None,
        wheelhouse: Path | None = None,
        on_line: LineSink | None = None,
    ) -> list[BuiltImage]:
        """Build the images (both, or ``only`` one), tagged ``tag`` and the git commit.

        Raises ``GoalMissedError`` naming the failing step with its output, ``UnreachableError``
        when the engine cannot be reached.
        """
        components = _components(only)
        _check_tag(tag)
        revision = git_revision(self.root)
        labels = oci_labels(tag, revision)
        built = []
        for component in components:
            built.append(
                self._build_one(
                    component, tag, revision, labels, no_cache, base_image, wheelhouse, on_line
                )
            )
        return built

    def _build_one(
        self,
        component: str,
        tag: str,
        revision: Revision | None,
        labels: dict,
        no_cache: bool,
        base_image: str | None,
        wheelhouse: Path | None,
        on_line: LineSink | None,
    ) -> BuiltImage:
        name = self.image_name(component)
        started = time.monotonic()
        emit = on_line or (lambda _line: None)
        emit(f"building {name}:{tag} from {DOCKERFILES[component]}")
        with context_tar(self.root, wheelhouse) as context:
            stream = self._stream(
                lambda: self.client.build(
                    fileobj=context,
                    custom_context=True,
                    dockerfile=DOCKERFILES[component],
                    tag=f"{name}:{tag}",
                    buildargs={"BASE_IMAGE": base_image} if base_image else None,
                    labels=labels,
                    network_mode="host",
                    nocache=no_cache,
                    rm=True,
                    forcerm=True,
                    pull=False,
                    decode=True,
                )
            )
            image_id = _follow_build(stream, f"{name}:{tag}", emit, base_image)
        tags = [f"{name}:{tag}"]
        if revision is not None and revision.tag != tag:
            self.client.tag(image_id, name, revision.tag)
            tags.append(f"{name}:{revision.tag}")
        size = int(self.client.inspect_image(image_id).get("Size", 0))
        return BuiltImage(component, image_id, tags, size, time.monotonic() - started)

    def _stream(self, call: Callable[[], Iterable[dict]]) -> Iterable[dict]:
        import docker

        try:
            yield from call()
        except docker.errors.APIError as exc:
            reason = getattr(exc, "explanation", None) or _short(exc)
            raise GoalMissedError(f"the Docker engine refused: {reason}") from None
        except docker.errors.DockerException as exc:
            raise UnreachableError(
                f"lost the Docker engine at {docker_host()}: {_short(exc)}"
            ) from None
        except OSError as exc:  # requests' ConnectionError is an OSError
            raise UnreachableError(
                f"lost the Docker engine at {docker_host()}: {_short(exc)}"
            ) from None

    def push(
        self,
        tag: str = "latest",
        only: str | None = None,
        on_line: LineSink | None = None,
        images_file: Path | None = None,
    ) -> dict[str, str]:
        """Push the images built as ``tag`` to the registry; record and return their digests.

        Raises ``BadInputError`` when an image was not built, ``UnreachableError`` when the
        registry cannot be reached, ``GoalMissedError`` when it refuses (auth, quota).
        """
        import docker

        _check_tag(tag)
        emit = on_line or (lambda _line: None)
        digests: dict[str, str] = {}
        for component in _components(only):
            local = f"{self.image_name(component)}:{tag}"
            try:
                self.client.inspect_image(local)
            except docker.errors.ImageNotFound:
                raise BadInputError(
                    f"no image {local} to push: build it first (tradewise build {tag})"
                ) from None
            remote = self.remote_name(component)
            self.client.tag(local, remote, tag)
            emit(f"pushing {remote}:{tag}")
            stream = self._stream(
                partial(self.client.push, remote, tag=tag, stream=True, decode=True)
            )
            digest = _follow_push(stream, f"{remote}:{tag}", self.env.registry, emit)
            digests[component] = digest
            emit(f"pushed {remote}@{digest}")
        record_digests(self.env.name, tag, digests, images_file, registry=self.env.registry)
        return digests

    def close(self) -> None:
        """Close the engine connection."""
        if self._client is not None:
            self._client.close()
            self._client = None


def _components(only: str | None) -> tuple[str, ...]:
    if only is None:
        return COMPONENTS
    if only not in COMPONENTS:
        raise BadInputError(f"--only {only!r}: use one of {', '.join(COMPONENTS)}")
    return (only,)


_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


def _check_tag(tag: str) -> None:
    if not _TAG.match(tag):
        raise BadInputError(
            f"image tag {tag!r} is not valid: letters, digits, '_', '.', '-', at most 128, "
            "not starting with '.' or '-'"
        )


def _follow_build(stream: Iterable[dict], what: str, emit: LineSink, base_image: str | None) -> str:
    """Stream build output to ``emit``; return the image id or raise on an error item."""
    step = _StepLog()
    image_id = None
    for item in stream:
        if "error" in item or "errorDetail" in item:
            detail = item.get("errorDetail") or {}
            message = str(item.get("error") or detail.get("message") or "unknown error").strip()
            where = f"step {step.number}: {step.instruction}" if step.number else "the start"
            output = "\n".join(step.lines[-40:])
            hint = None
            if step.instruction.upper().startswith("FROM") or "pull access" in message:
                hint = (
                    "the base image is not in the engine and cannot be pulled: "
                    "pass --base-image with a local image"
                )
            raise GoalMissedError(
                f"building {what} failed at {where}\n{output}\n{message}".replace("\n\n", "\n"),
                hint=hint,
            )
        if "aux" in item and isinstance(item["aux"], dict) and "ID" in item["aux"]:
            image_id = str(item["aux"]["ID"])
        text = item.get("stream") or item.get("status")
        if not text:
            continue
        for line in str(text).splitlines():
            line = line.rstrip()
            if not line:
                continue
            match = _STEP.match(line)
            if match:
                step = _StepLog(f"{match.group(1)}/{match.group(2)}", match.group(3))
            else:
                step.lines.append(line)
                found = re.match(r"^Successfully built ([0-9a-f]+)$", line)
                if found and image_id is None:
                    image_id = found.group(1)
            emit(line)
    if image_id is None:
        raise GoalMissedError(f"building {what} ended without an image (the stream was cut)")
    return image_id


def _follow_push(stream: Iterable[dict], what: str, registry: str, emit: LineSink) -> str:
    """Stream push output; return the digest or raise on an error item."""
    digest = None
    last_status = ""
    for item in stream:
        if "error" in item or "errorDetail" in item:
            detail = item.get("errorDetail") or {}
            message = str(item.get("error") or detail.get("message") or "unknown error").strip()
            if any(h in message.lower() for h in _UNREACHABLE_HINTS):
                host = registry.split("/", 1)[0]
                raise UnreachableError(
                    f"cannot reach the registry {host} to push {what}: {message}",
                    hint="check the environment's registry in tradewise.yaml and the network",
                )
            raise GoalMissedError(f"the registry refused {what}: {message}")
        aux = item.get("aux")
        if isinstance(aux, dict) and aux.get("Digest"):
            digest = str(aux["Digest"])
        status = item.get("status")
        if status and status != last_status and "id" not in item:
            emit(str(status))
            last_status = str(status)
    if digest is None:
        raise GoalMissedError(f"pushing {what} ended without a digest")
    return digest
