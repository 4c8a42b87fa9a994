"""The in-cluster backup CronJobs (``backups.enabled``): rendered, validated, applied on the
emulator, and their scripts run for real, as rendered, against the session's PostgreSQL
(``pg_dump`` with retention; the weekly verification's restore into a throwaway server)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner, Result

from tests.app_data import store_analyses
from tests.conftest import PG_BIN
from tests.k8s_emulator import Emulator
from tradewise_ops.cli.main import app
from tradewise_ops.core.backup import NAME_RE
from tradewise_ops.core.config import load_config
from tradewise_ops.core.render import APPLY_ORDER, render_environment
from tradewise_ops.core.validate import validate

pytest_plugins = ["tests.k8s_emulator.fixtures"]

ROOT = Path(__file__).resolve().parents[2]
NS = "tradewise-ai"


def run(config: Path, *args: str) -> Result:
    return CliRunner().invoke(app, ["--config", str(config), *args])


@pytest.fixture
def config(tmp_path: Path) -> Path:
    raw = yaml.safe_load((ROOT / "tradewise.yaml").read_text())
    raw["environments"]["staging"]["backups"] = {"enabled": True, "keep": 2, "storage": "20Gi"}
    path = tmp_path / "tradewise.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def rendered(config: Path, env: str = "staging") -> list[dict[str, Any]]:
    cfg = load_config(str(config))
    return render_environment(cfg, env, tag="v1", k8s_version=cfg.kubernetes_version)


def by_name(objects: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(o["kind"], o["metadata"]["name"]): o for o in objects}


def test_rendered_only_when_enabled_and_valid(config: Path) -> None:
    objects = rendered(config)
    found = by_name(objects)
    claim = found[("PersistentVolumeClaim", "tradewise-backups")]
    assert claim["spec"]["resources"]["requests"]["storage"] == "20Gi"
    backup = found[("CronJob", "tradewise-db-backup")]
    verify = found[("CronJob", "tradewise-db-verify")]
    assert (backup["spec"]["schedule"], verify["spec"]["schedule"]) == ("0 2 * * *", "0 3 * * 0")
    assert backup["spec"]["timeZone"] == "America/New_York"
    container = backup["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "postgres:15"
    env = {e["name"]: e for e in container["env"]}
    assert env["KEEP"]["value"] == "2" and env["PGHOST"]["value"] == "postgres-service"
    assert env["PGPASSWORD"]["valueFrom"]["secretKeyRef"]["key"] == "POSTGRES_PASSWORD"
    assert "pg_dump --format=custom" in container["command"][2]
    # the claim before the jobs that mount it; schema and policy checks pass
    kinds = [o["kind"] for o in objects]
    assert kinds.index("PersistentVolumeClaim") < kinds.index("CronJob")
    assert [APPLY_ORDER.index(k) for k in kinds] == sorted(APPLY_ORDER.index(k) for k in kinds)
    assert validate(objects, "1.37") == []
    # PostgreSQL admits the backup pods (its NetworkPolicy)
    policy = found[("NetworkPolicy", "tradewise-postgres-ingress")]
    allowed = policy["spec"]["ingress"][0]["from"][0]["podSelector"]["matchExpressions"][0]
    assert "backup" in allowed["values"]
    redis = found[("NetworkPolicy", "tradewise-redis-ingress")]
    assert (
        "backup"
        not in redis["spec"]["ingress"][0]["from"][0]["podSelector"]["matchExpressions"][0][
            "values"
        ]
    )
    # off by default
    plain = by_name(rendered(ROOT / "tradewise.yaml"))
    assert ("CronJob", "tradewise-db-backup") not in plain
    assert not any(kind == "PersistentVolumeClaim" for kind, _ in plain)


def test_bad_backup_settings_name_the_key(config: Path) -> None:
    raw = yaml.safe_load(config.read_text())
    raw["environments"]["staging"]["backups"]["schedule"] = "every night"
    config.write_text(yaml.safe_dump(raw))
    result = run(config, "lint", "staging")
    assert result.exit_code == 2
    assert "environments.staging.backups.schedule" in result.stderr


def test_deploy_applies_the_claim_then_the_jobs(
    config: Path, emulator: Emulator, kubeconfig: Path
) -> None:
    emulator.controllers.auto(delay=0.01)
    result = run(config, "deploy", "staging", "--tag", "v1", "--timeout", "20s")
    assert result.exit_code == 0, result.stderr
    assert emulator.get("PersistentVolumeClaim", NS, "tradewise-backups") is not None
    assert emulator.get("CronJob", NS, "tradewise-db-verify") is not None
    applied = [
        r.path.rsplit("/", 2)[-2:]
        for r in emulator.requests
        if r.method == "PATCH" and r.content_type.endswith("yaml")
    ]
    order = [f"{kind}/{name}" for kind, name in applied]
    assert order.index("persistentvolumeclaims/tradewise-backups") < order.index(
        "cronjobs/tradewise-db-backup"
    )


# -- the scripts, run as rendered ---------------------------------------------------------------
def _script(config: Path, job: str) -> tuple[str, dict[str, Any]]:
    obj = by_name(rendered(config))[("CronJob", job)]
    container = obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][:2] == ["sh", "-c"]
    return container["command"][2], {e["name"]: e for e in container["env"]}


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory the ``postgres`` user may use (pytest's tmp dirs are root's, mode 700)."""
    path = Path(tempfile.mkdtemp(prefix="tw-backups-"))
    os.chmod(path, 0o755)
    if os.geteuid() == 0:
        shutil.chown(path, "postgres", "postgres")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _pg_env(postgres_server: Any, dbname: str, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["PATH"] = f"{PG_BIN}:{env.get('PATH', '')}"
    env.update(
        PGHOST=postgres_server.host,
        PGPORT=str(postgres_server.port),
        PGUSER="postgres",
        PGDATABASE=dbname,
    )
    env.update(extra)
    return env


def _as_postgres(argv: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


def test_the_backup_and_verify_scripts_work_as_rendered(
    config: Path, postgres_url: str, postgres_server: Any, shared_dir: Path
) -> None:
    store_analyses(postgres_url)
    dbname = postgres_url.rsplit("/", 1)[1]
    backup, backup_env = _script(config, "tradewise-db-backup")
    keep = backup_env["KEEP"]["value"]
    env = _pg_env(postgres_server, dbname, {"BACKUP_DIR": str(shared_dir), "KEEP": keep})
    outputs = []
    for _ in range(3):
        done = subprocess.run(
            _as_postgres(["sh", "-c", backup]), env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        outputs.append(done.stdout)
    dumps = sorted(p.name for p in shared_dir.glob("*.dump"))
    assert len(dumps) == 2  # KEEP=2: the oldest went
    assert "removed tradewise-" in outputs[-1]
    for name in dumps:
        assert NAME_RE.match(name), name  # the names `tradewise db` uses
        assert (shared_dir / f"{name}.sha256").is_file()
        assert (shared_dir / name).read_bytes()[:5] == b"PGDMP"

    verify, _ = _script(config, "tradewise-db-verify")
    scratch = shared_dir / "scratch"
    venv = _pg_env(
        postgres_server, dbname, {"BACKUP_DIR": str(shared_dir), "SCRATCH": str(scratch)}
    )

    def verify_run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            _as_postgres(["sh", "-c", verify]),
            env=venv,
            capture_output=True,
            text=True,
            timeout=180,
        )

    ok = verify_run()
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "rows stock_analyses 5" in ok.stdout.splitlines()
    assert re.search(r"verified tradewise-\d{8}T\d{12}Z\.dump", ok.stdout)

    newest = shared_dir / dumps[-1]
    data = newest.read_bytes()
    newest.write_bytes(data[: len(data) - 300])  # truncated after its checksum was taken
    bad = verify_run()
    assert bad.returncode != 0 and "FAILED" in bad.stdout + bad.stderr
    # truncated before (a checksum of the truncated file): the restore itself fails
    subprocess.run(
        _as_postgres(
            ["sh", "-c", f'cd "{shared_dir}" && sha256sum "{newest.name}" > "{newest.name}.sha256"']
        ),
        check=True,
    )
    worse = verify_run()
    assert worse.returncode != 0
    assert "pg_restore" in worse.stderr
