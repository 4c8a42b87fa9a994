"""MkDocs hook: the pages that are generated at build time, never committed by hand.

- ``reference/commands.md``: at ``<!-- generated: commands -->``, every command's ``--help`` as the
  CLI prints it (typer's own output through ``CliRunner``), so the page always matches ``--help``.
- ``reference/configuration.md``: at ``<!-- generated: config-keys -->``, every key the config
  model accepts, found by running the model itself: ``parse_config`` validates the shipped
  ``tradewise.yaml`` while this hook records the allowed keys of each mapping it checks. Each key
  needs a line in ``KEY_DOCS`` below and each line a key: the build fails naming the difference,
  so a key added to the model without documentation (or documentation of a removed key) breaks
  ``mkdocs build --strict``. At ``<!-- generated: config-env -->``, the ``TRADEWISE_*`` variables
  the model reads.
- ``migration.md`` is hand-written; ``tests/test_migration_table.py`` runs its commands.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # mkdocs run from a checkout without the package installed
    sys.path.insert(0, str(ROOT))

COMMANDS_MARK = "<!-- generated: commands -->"
KEYS_MARK = "<!-- generated: config-keys -->"
ENV_MARK = "<!-- generated: config-env -->"


class GenerationError(PluginError):
    """A generated page cannot be made (the build stops with this message)."""


# -- the command reference -------------------------------------------------------------------
def command_reference() -> str:
    """Every command's ``--help``, in the order and grouping of ``tradewise --help``."""
    import typer.main
    from typer.testing import CliRunner

    from tradewise_ops.cli import helpdocs
    from tradewise_ops.cli.main import app

    runner = CliRunner()

    def help_of(words: list[str]) -> str:
        result = runner.invoke(app, [*words, "--help"], terminal_width=100, env={"NO_COLOR": "1"})
        if result.exit_code != 0:
            raise GenerationError(f"`tradewise {' '.join(words)} --help` exited {result.exit_code}")
        return result.stdout.rstrip()

    out = ["## `tradewise`", "", "```text", help_of([]), "```", ""]
    root = typer.main.get_command(app)
    for key, _command in helpdocs.walk(root):
        doc = helpdocs.DOCS.get(key)
        out += [f"## `tradewise {key}`", ""]
        if doc is not None:
            out += [doc.summary, ""]
        out += ["```text", help_of(key.split()), "```", ""]
    return "\n".join(out)


# -- the configuration reference -------------------------------------------------------------
# what each key means, by its place in the file (NAME: any name; [] an item of a list)
KEY_DOCS: dict[str, str] = {
    "default_environment": "The environment used when none is named (`--env`, `TRADEWISE_ENV`).",
    "kubernetes_version": "The Kubernetes version manifests are validated for (1.27 to 1.37).",
    "defaults": "Keys every environment inherits (deep-merged under its own).",
    "environments": "The places tradewise deploys to, by name.",
    "profiles": "Traffic profiles for `tradewise scale traffic NAME`.",
    "schedules": "Profiles applied on a schedule inside the cluster (a CronJob each).",
    "slo": "The service-level objectives every verdict is checked against.",
    "load_test": "Defaults of `tradewise load-test`.",
    "performance_test": "The mixed workload of `tradewise performance-test`.",
    "compare": "Thresholds of `tradewise compare` and `--baseline` (beyond the noise).",
    "capacity": "How `tradewise capacity` measures one replica and plans each profile.",
    "cost": "Prices and margins of `tradewise rightsize`.",
    "stress": "Bounds and steps of `tradewise stress cpu|memory|db`.",
    "stress.duration": "Each scenario's bound.",
    "stress.duration.cpu": "`tradewise stress cpu`'s bound (`5m`).",
    "stress.duration.memory": "`tradewise stress memory`'s bound.",
    "stress.duration.db": "`tradewise stress db`'s bound.",
    "stress.step_seconds": "How long the cpu scenario holds each user count.",
    "stress.max_users": "The cpu scenario's ceiling of users.",
    "stress.db_users": "The db scenario's users (0: twice what the pools may open).",
    "stress.memory_step_mb": "How much the memory fault grows a process per step.",
    "stress.memory_step_seconds": "Seconds between the memory fault's steps.",
    "cost.cpu_hour": "One vCPU for an hour (USD).",
    "cost.gib_hour": "One GiB of memory for an hour (USD).",
    "cost.spot_discount_percent": "What spot saves over on-demand (%).",
    "cost.hours_per_month": "Hours in a month for the monthly figures.",
    "cost.headroom_percent": "Requests above the observed p95 (%).",
    "cost.limit_headroom_percent": "Limits above the observed max (%).",
    "cost.margin_percent": "Over-provisioned: a request this much above the recommendation (%).",
    "compare.p95_percent": "p95 may rise this much (%).",
    "compare.p50_percent": "p50 may rise this much (%); `null`: shown, not judged.",
    "compare.p99_percent": "p99 may rise this much (%); `null`: shown, not judged.",
    "compare.rps_percent": "req/s may fall this much (%).",
    "compare.error_rate_points": "The error rate may rise this many percentage points.",
    "compare.scale_up_percent": "The slowest scale-up may grow this much (%).",
    "compare.peak_replicas": "Peak replicas may grow by this many.",
    "capacity.headroom_percent": "Headroom over a band's top when counting replicas (%).",
    "capacity.max_seconds": "Bound of one measurement, seconds.",
    "capacity.step_seconds": "Seconds per load step.",
    # an environment (and `defaults`)
    "env.kind": "`kubernetes`, `compose` or `local` (render and lint know only `kubernetes`).",
    "env.aliases": "Other names for the environment (`production` for `prod`).",
    "env.namespace": "The Kubernetes namespace (default `tradewise-ai`).",
    "env.context": "The kubeconfig context (default: the current one).",
    "env.registry": "The registry of the app images: `{registry}/{image}:{tag}`.",
    "env.images": "Image names: the app's and the pinned third-party ones.",
    "env.secret_name": "The existing Secret pods read (`DATABASE_URL`, `POSTGRES_PASSWORD`, ...).",
    "env.max_replicas": "The highest N that `scale api N` and `scale workers N` accept.",
    "env.components": "The workloads: api, worker, precompute, postgres, redis.",
    "env.components.api": "The Flask API under gunicorn (a Deployment with an HPA).",
    "env.components.worker": "The Celery workers (a Deployment with an HPA).",
    "env.components.precompute": "The Celery beat scheduler (one replica, `Recreate`).",
    "env.components.postgres": "PostgreSQL (a StatefulSet, QoS Guaranteed).",
    "env.components.redis": "Redis, cache and broker (a StatefulSet).",
    "env.domain": "The Ingress host.",
    "env.tls_secret": "The Secret holding the Ingress's TLS certificate.",
    "env.url": "Where the API answers (load tests, monitor); default `https://DOMAIN`.",
    "env.confirm": "Ask before changing anything, unless `--yes`.",
    "env.require_pinned_tag": "Refuse a missing tag or `latest`.",
    "env.local": "How the `local` kind runs on this machine.",
    "env.ingress_class": "The Ingress controller's class.",
    "env.ingress_namespace": "Where the Ingress controller runs (the only way in to the API).",
    "env.monitoring_namespace": "Where Prometheus runs (may scrape the API's `/metrics`).",
    "env.kubernetes": "How long to wait for the Kubernetes API server.",
    "env.release": "Blue-green and canary releases: preview, verification, steps.",
    "env.release.keep_previous": "How long the old slot stays after a switch (`15m`).",
    "env.release.preview_host": "The preview Ingress host's first label (`preview`).",
    "env.release.preview_tls_secret": "The preview host's TLS Secret (default: the main one).",
    "env.release.verify": "The verification before traffic moves.",
    "env.release.verify.duration": "How long the verification load runs.",
    "env.release.verify.users": "Its Locust users.",
    "env.release.verify.spawn_rate": "Users started per second.",
    "env.release.verify.endpoints": "The paths it loads.",
    "env.release.verify.mix": "`true`: the performance-test mix instead.",
    "env.release.verify.p95_ms": "Its p95 objective (default `slo.p95_ms`).",
    "env.release.verify.error_rate": "Its error-rate objective (default `slo.error_rate`).",
    "env.release.verify.smoke_symbol": "The symbol of the smoke check's analysis.",
    "env.release.verify.image": "The Locust image when the verification runs in the cluster.",
    "env.release.canary": "Canary steps and their analysis.",
    "env.release.canary.steps": "Traffic weights in percent, ending at 100.",
    "env.release.canary.hold": "How long each weight holds before it is judged.",
    "env.release.canary.window": "The PromQL range of the analysis queries.",
    "env.release.canary.queries": "PromQL per figure, with `$version`.",
    "env.release.canary.queries.p95_ms": "The canary's p95 in ms.",
    "env.release.canary.queries.error_rate": "The canary's error rate.",
    "env.release.canary.queries.rps": "The canary's requests per second.",
    "env.release.canary.p95_percent": "How much slower than stable the canary may be (%).",
    "env.release.canary.p95_floor_ms": "Below this p95 the comparison with stable is not judged.",
    "env.release.canary.error_rate_points": "How many points above stable its error rate may be.",
    "env.database_pool": "Each process's database pool (`tradewise stress db` names these).",
    "env.database_pool.size": "Connections kept open.",
    "env.database_pool.overflow": "Connections opened above `size` under load.",
    "env.database_pool.timeout": "Seconds a request waits for a connection.",
    "env.faults": "Stress knobs the service enables (`memory`, `uncached`).",
    "env.backups": "In-cluster database backups (`tradewise db`); off unless `enabled`.",
    "env.backups.enabled": "Render the backup and verification CronJobs.",
    "env.backups.schedule": "When `pg_dump -Fc` runs (cron).",
    "env.backups.verify_schedule": "When the newest backup is restored and checked (cron).",
    "env.backups.timezone": "The crons' time zone.",
    "env.backups.keep": "How many backups are kept.",
    "env.backups.storage": "The backups claim's size.",
    "env.monitoring": "How a Prometheus install finds the ServiceMonitor and PrometheusRule.",
    "env.monitoring.prometheus_url": "Prometheus's URL (`rightsize`, canary analysis).",
    "env.cloud": "`gke`, `eks`, `aks` or `none`: whose spot-pool labels and taints.",
    "env.monitoring.labels": "Labels added to both (kube-prometheus-stack: `release: NAME`).",
    "env.kubernetes.connect_timeout": "A connection, seconds or `5s`.",
    "env.kubernetes.request_timeout": "An answer.",
    "env.kubernetes.total_timeout": "One call with its retries.",
    "env.images.api": "The API image's name.",
    "env.images.worker": "The worker (and precompute) image's name.",
    "env.images.postgres": "PostgreSQL's image, pinned by a tag other than `latest` or a digest.",
    "env.images.redis": "Redis's image, pinned likewise.",
    "env.images.maintenance": "The maintenance page's (unprivileged nginx) image, pinned likewise.",
    "component.replicas": "Replicas (API and workers: the HPA's start; they are not rendered).",
    "component.autoscaling": "HPA bounds and targets (api and worker).",
    "component.resources": "CPU and memory requests and limits.",
    "component.storage": "The volume size (postgres and redis).",
    "component.placement": "`spot` or `on-demand`: which node pool (see `cloud`).",
    "component.priority": "`critical`, `normal` or `batch`: its PriorityClass.",
    "component.autoscaling.min": "The HPA's minReplicas.",
    "component.autoscaling.max": "The HPA's maxReplicas.",
    "component.autoscaling.cpu_percent": "Target CPU utilisation (% of requests).",
    "component.autoscaling.memory_percent": "Target memory utilisation (% of requests).",
    "component.autoscaling.p95_ms": "API: target p95 latency in ms (a Pods metric).",
    "component.autoscaling.queue_per_worker": "Workers: target queued tasks per pod (External).",
    "component.resources.requests": "What the scheduler reserves: `cpu`, `memory`.",
    "component.resources.limits": "The most the container may use: `cpu`, `memory`.",
    "component.resources.requests.cpu": "CPU request (`500m`, `1`).",
    "component.resources.requests.memory": "Memory request (`512Mi`, `1Gi`).",
    "component.resources.limits.cpu": "CPU limit.",
    "component.resources.limits.memory": "Memory limit.",
    "env.local.api_port": "The API's port on 127.0.0.1.",
    "env.local.api_processes": "gunicorn workers of the API.",
    "env.local.worker_processes": "Celery worker processes.",
    "env.local.redis_port": "The private redis-server's port.",
    "env.local.state_dir": "Where pids, logs and SQLite files live.",
    "env.local.broker": "`auto` (Redis when installed), `redis` or `sqlite`.",
    "profile.api": "API replicas (and the HPA's floor).",
    "profile.workers": "Worker replicas (and the HPA's floor).",
    "profile.rps": "The request rate the profile is for (shown, not used).",
    "schedule.name": "The CronJob's name suffix (`tradewise-scale-NAME`).",
    "schedule.profile": "The profile to apply (or `emergency-down`).",
    "schedule.cron": "A five-field cron expression (`15 9 * * 1-5`).",
    "schedule.timezone": "The cron's time zone (`America/New_York`; default UTC).",
    "schedule.calendar": "`nyse`: no step on a weekend or an NYSE holiday.",
    "schedule.anchor": "`close`: the step follows the close (moved on an early close).",
    "schedule.windows": "Date windows (`from`, `until`, `profile`) selecting another profile.",
    "slo.p95_ms": "Highest acceptable p95 latency, ms.",
    "slo.error_rate": "Highest acceptable error rate (0.01 = 1%).",
    "slo.scale_up_seconds": "Longest acceptable scale-up, trigger to ready pods.",
    "slo.recovery_seconds": "Longest acceptable recovery from a lost pod.",
    "load_test.duration": "Default DURATION (`60s`, `5m`).",
    "load_test.users": "Default USERS.",
    "load_test.endpoint": "Default ENDPOINT (a path).",
    "load_test.spawn_rate": "Users started per second.",
    "performance_test.weights": "Relative weights of the request kinds.",
    "performance_test.hot_symbols": "Symbols asked often (cache hits).",
    "performance_test.cold_symbols": "Symbols asked rarely (cache misses).",
    "performance_test.stages": "The stages, in order: ramp, steady, spike, cool-down.",
    "performance_test.weights.health": "`GET /api/health`.",
    "performance_test.weights.analysis_hot": "An analysis of a hot symbol.",
    "performance_test.weights.analysis_cold": "An analysis of a cold symbol.",
    "performance_test.weights.stats": "`GET /api/performance/stats`.",
    "stage.name": "The stage's name in reports.",
    "stage.duration": "How long it lasts (`10s`).",
    "stage.users": "Users during the stage.",
    "stage.spawn_rate": "Users started (or stopped) per second.",
}
ENV_DOCS: dict[str, str] = {
    "TRADEWISE_CONFIG": "The config file (as `--config`).",
    "TRADEWISE_NAMESPACE": "Every environment's `namespace`.",
    "TRADEWISE_REGISTRY": "Every environment's `registry`.",
    "TRADEWISE_CONTEXT": "Every environment's `context`.",
    "TRADEWISE_KUBERNETES_VERSION": "`kubernetes_version`.",
    "TRADEWISE_LOCAL_BROKER": "`local.broker`: auto, redis or sqlite.",
}


def _section(path: str) -> str:
    """``environments.prod.components.api.autoscaling`` -> ``component.autoscaling``."""
    parts = re.sub(r"\[\d+\]", "[]", path).split(".") if path else []
    if not parts:
        return ""
    head = parts[0]
    if head in ("defaults", "environments"):
        rest = parts[1:] if head == "defaults" else parts[2:]
        if head == "environments" and len(parts) == 1:
            return "environments"
        if len(rest) >= 2 and rest[0] == "components":
            return ".".join(["component", *rest[2:]])
        return ".".join(["env", *rest])
    if head == "profiles":
        return "profile" if len(parts) > 1 else "profiles"
    if head.startswith("schedules"):
        return "schedule"
    if head == "performance_test" and len(parts) > 1 and parts[1].startswith("stages"):
        return "stage"
    return ".".join(parts)


def accepted_keys() -> dict[str, list[str]]:
    """The keys the config model accepts, by section, recorded while it validates the shipped
    ``tradewise.yaml`` (every mapping it checks, with the keys it allows there)."""
    from tradewise_ops.core import config as model

    seen: dict[str, set[str]] = {}
    original = model._Validator.mapping

    def recording(self: Any, value: Any, key: str, allowed: Any = None, **kw: Any) -> Any:
        if allowed is not None:
            seen.setdefault(_section(key), set()).update(allowed)
        return original(self, value, key, allowed=allowed, **kw)

    model._Validator.mapping = recording  # type: ignore[method-assign]
    try:
        model.load_config(ROOT / "tradewise.yaml", environ={})
    finally:
        model._Validator.mapping = original  # type: ignore[method-assign]
    if not seen:
        raise GenerationError("recorded no keys: the config model's validator has changed")
    return {section: sorted(keys) for section, keys in seen.items()}


def _shipped_file() -> Any:
    import yaml

    return yaml.safe_load((ROOT / "tradewise.yaml").read_text(encoding="utf-8"))


def _at(node: Any, path: list[str]) -> Any:
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _places(section: str, doc: Any) -> list[tuple[str, list[str]]]:
    """Where a section's mappings are in the shipped file: (label, path) pairs."""
    envs = list(doc.get("environments") or {})
    components = ("api", "worker", "precompute", "postgres", "redis")
    if section == "":
        return [("", [])]
    if section.startswith("env"):
        rest = section.split(".")[1:]
        return [("defaults", ["defaults", *rest])] + [(e, ["environments", e, *rest]) for e in envs]
    if section.startswith("component"):
        rest = section.split(".")[1:]
        return [
            (f"{where}/{c}" if where != "defaults" else c, [*base, "components", c, *rest])
            for where, base in [("defaults", ["defaults"])]
            + [(e, ["environments", e]) for e in envs]
            for c in components
        ]
    if section == "profile":
        return [(name, ["profiles", name]) for name in (doc.get("profiles") or {})]
    if section == "schedule":
        return [(str(i), ["schedules", str(i)]) for i in range(len(doc.get("schedules") or []))]
    if section == "stage":
        stages = (doc.get("performance_test") or {}).get("stages") or []
        return [(str(i), ["performance_test", "stages", str(i)]) for i in range(len(stages))]
    return [("", section.split("."))]


def _shipped_values(section: str, key: str, doc: Any) -> str:
    """The key's values in the shipped file, labelled by where they are when there are several."""
    found: list[str] = []
    for label, path in _places(section, doc):
        node: Any = doc
        for part in path:
            node = node[int(part)] if isinstance(node, list) else _at(node, [part])
            if node is None:
                break
        if isinstance(node, dict) and key in node:
            found.append(f"{label}: {_cell(node[key])}" if label else _cell(node[key]))
    if not found:
        return "-"
    if len(found) > 6:
        return ", ".join(found[:6]) + ", ..."
    return ", ".join(found)


_TITLES = {
    "": "Top level",
    "env": "An environment (`environments.NAME`, and `defaults`)",
    "env.images": "`images`",
    "env.components": "`components`",
    "env.local": "`local` (kind `local`)",
    "component": "A component (`components.api`, `.worker`, `.precompute`, `.postgres`, `.redis`)",
    "component.autoscaling": "`autoscaling`",
    "component.resources": "`resources`",
    "component.resources.requests": "`resources.requests`",
    "component.resources.limits": "`resources.limits`",
    "profile": "A traffic profile (`profiles.NAME`)",
    "schedule": "A schedule (`schedules[]`)",
    "slo": "`slo`",
    "compare": "`compare`",
    "capacity": "`capacity`",
    "cost": "`cost`",
    "stress": "`stress`",
    "stress.duration": "`stress.duration`",
    "env.database_pool": "`database_pool`",
    "env.kubernetes": "`kubernetes`",
    "env.release": "`release`",
    "env.release.verify": "`release.verify`",
    "env.release.canary": "`release.canary`",
    "env.release.canary.queries": "`release.canary.queries`",
    "env.backups": "`backups`",
    "env.monitoring": "`monitoring`",
    "load_test": "`load_test`",
    "performance_test": "`performance_test`",
    "performance_test.weights": "`performance_test.weights`",
    "stage": "A stage (`performance_test.stages[]`)",
}


def _cell(value: Any) -> str:
    import json

    if value is None:
        return "-"
    if isinstance(value, dict | list):
        text = json.dumps(value)
        return (
            f"`{text}`"
            if len(text) <= 40
            else ("(a mapping)" if isinstance(value, dict) else "(a list)")
        )
    return f"`{json.dumps(value) if isinstance(value, bool) else value}`"


def config_reference() -> str:
    """Tables of every accepted key with its meaning and its value in the shipped file."""
    keys = accepted_keys()
    documented = set(KEY_DOCS)
    found = {f"{s}.{k}" if s else k for s, ks in keys.items() for k in ks}
    missing, stale = sorted(found - documented), sorted(documented - found)
    if missing or stale:
        raise GenerationError(
            "docs/hooks/generate.py KEY_DOCS and the config model disagree: "
            f"undocumented keys {missing}, documented keys the model does not accept {stale}"
        )
    doc = _shipped_file()
    out: list[str] = []
    order = list(_TITLES)
    for section in sorted(keys, key=lambda s: order.index(s) if s in order else len(order)):
        if section not in _TITLES:
            raise GenerationError(f"config section {section!r} has no title in _TITLES")
        out += [
            f"### {_TITLES[section]}",
            "",
            "| key | meaning | in the shipped `tradewise.yaml` |",
            "|---|---|---|",
        ]
        for key in keys[section]:
            full = f"{section}.{key}" if section else key
            out.append(f"| `{key}` | {KEY_DOCS[full]} | {_shipped_values(section, key, doc)} |")
        out.append("")
    return "\n".join(out)


def env_reference() -> str:
    """The ``TRADEWISE_*`` variables the config model reads (found in its source)."""
    from tradewise_ops.core import config as model

    source = Path(model.__file__).read_text(encoding="utf-8")
    found = set(re.findall(r"[\"'](TRADEWISE_[A-Z_]+)[\"']", source))
    missing, stale = sorted(found - set(ENV_DOCS)), sorted(set(ENV_DOCS) - found)
    if missing or stale:
        raise GenerationError(
            f"docs/hooks/generate.py ENV_DOCS: undocumented {missing}, "
            f"not read by the model {stale}"
        )
    rows = ["| variable | overrides |", "|---|---|"]
    rows += [f"| `{name}` | {ENV_DOCS[name]} |" for name in sorted(found)]
    return "\n".join(rows) + "\n"


# -- the hook --------------------------------------------------------------------------------
_GENERATORS = {
    "reference/commands.md": {COMMANDS_MARK: command_reference},
    "reference/configuration.md": {KEYS_MARK: config_reference, ENV_MARK: env_reference},
}


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Replace each page's generation marks with what they stand for."""
    wanted = _GENERATORS.get(page.file.src_uri, {})
    for mark, generate in wanted.items():
        if mark not in markdown:
            raise GenerationError(f"{page.file.src_uri} has lost its mark {mark}")
        markdown = markdown.replace(mark, generate())
    return markdown
