"""What ``--help`` shows beyond each command's own text: its task panel, summary and examples.

Kept in one table, apart from the command modules, and applied to the click commands once typer
has built them (``apply``, called by the root group). A command registered without an entry here
still works: it is listed under "Other commands" with its own docstring, and the test
``tests/cli/test_help.py`` fails naming it, so a new command gets its panel and examples here.

Every example is one ``tradewise`` command line and a comment; the test parses each with the
command's own parser, so an example cannot name an option that does not exist.
"""

from __future__ import annotations

from typing import Any, NamedTuple

# the task panels of ``tradewise --help``, in the order they are shown
PANELS: tuple[str, ...] = ("Release", "Scale", "Load", "Observe", "Local", "Images", "Shell")
OTHER_PANEL = "Other commands"


class HelpDoc(NamedTuple):
    """The help of one command: its panel (top-level commands only), summary and examples."""

    summary: str
    examples: tuple[tuple[str, str], ...]  # (command line, what it does)
    panel: str | None = None


DOCS: dict[str, HelpDoc] = {
    # -- Release ---------------------------------------------------------------------------
    "deploy": HelpDoc(
        "Deploy a release to ENV and wait until it is healthy.",
        (
            ("tradewise deploy staging --tag v1.2.0", "render, validate, apply, prune, wait"),
            ("tradewise deploy staging --tag v1.3.0 --dry-run", "the plan only; nothing sent"),
            (
                "tradewise deploy prod --tag v1.3.0 --strategy blue-green --atomic --yes",
                "new API slot, switched when ready; undone if it fails",
            ),
        ),
        "Release",
    ),
    "rollback": HelpDoc(
        "Put an earlier release of ENV back and wait for it.",
        (
            ("tradewise rollback staging", "back to the release before the current one"),
            ("tradewise rollback prod --to-revision 3 --yes", "back to revision 3"),
        ),
        "Release",
    ),
    "history": HelpDoc(
        "List the releases of ENV: tag, status, user, cause.",
        (
            ("tradewise history staging", "revision, time, status, tag, user, change cause"),
            ("tradewise history prod -o json", "the same as one JSON document"),
        ),
        "Release",
    ),
    "restart": HelpDoc(
        "Restart a component's pods one by one and wait.",
        (
            ("tradewise restart api --env prod --yes", "a rolling restart of the live slot"),
            ("tradewise restart all --env local", "the local processes, the API without a drop"),
            ("tradewise restart worker --env staging --dry-run", "the steps only"),
        ),
        "Release",
    ),
    "db": HelpDoc(
        "Back up, list, verify and restore the database.",
        (
            ("tradewise db backup --env local", "a consistent copy with its row counts"),
            ("tradewise db verify --env local", "restore the newest into a scratch database"),
            ("tradewise db backup --env prod", "run the backup CronJob now, in the cluster"),
        ),
        "Release",
    ),
    "db backup": HelpDoc(
        "Back up the database now and record its row counts.",
        (
            ("tradewise db backup --env local", "the local stack's SQLite file"),
            ("tradewise db backup --database-url postgresql://u@127.0.0.1/tw", "pg_dump -Fc"),
            ("tradewise db backup --env prod --force", "a Job, even if the claim looks full"),
        ),
    ),
    "db backups": HelpDoc(
        "List the backups with their size and verification.",
        (
            ("tradewise db backups --env local", "oldest first"),
            ("tradewise db backups --env compose -o json", "the compose stack's, as JSON"),
            ("tradewise db backups --env prod", "the claim's dumps and verification marks"),
        ),
    ),
    "db verify": HelpDoc(
        "Check that a backup restores to the recorded counts.",
        (
            ("tradewise db verify --env local", "the newest backup"),
            ("tradewise db verify NAME --env local", "one backup by name"),
            ("tradewise db verify --env prod", "in the cluster now; exit 1 when it fails"),
        ),
    ),
    "db restore": HelpDoc(
        "Replace the database with a verified backup.",
        (
            ("tradewise db restore NAME --env local", "asks first; checks the result"),
            ("tradewise db restore NAME --env compose --yes", "api, workers stopped meanwhile"),
            ("tradewise db restore NAME --env prod --yes", "service held, restored, given back"),
        ),
    ),
    "release": HelpDoc(
        "Finish a verified release: remove the kept previous slot.",
        (
            ("tradewise release finalize prod", "once release.keep_previous is over"),
            ("tradewise release finalize prod --now --yes", "now, giving up instant rollback"),
        ),
        "Release",
    ),
    "release finalize": HelpDoc(
        "Delete the previous API slot kept after a switch.",
        (
            ("tradewise release finalize staging", "only when its window is over"),
            ("tradewise release finalize prod --now --yes", "at once"),
        ),
    ),
    "unlock": HelpDoc(
        "Break the stale release lock of ENV after confirmation.",
        (
            ("tradewise unlock staging", "shows who holds it, asks, then deletes the Lease"),
            ("tradewise unlock prod --yes", "without asking"),
        ),
        "Release",
    ),
    "diff": HelpDoc(
        "Show what a deploy would change in ENV, as a unified diff.",
        (
            ("tradewise diff staging --tag v1.3.0", "exit 0: no change, 1: changes, 2+: error"),
            ("tradewise diff prod --tag v1.3.0 --context prod-eu", "against another context"),
        ),
        "Release",
    ),
    "render": HelpDoc(
        "Print every manifest of ENV, validated, in apply order.",
        (
            ("tradewise render prod --tag v1.2.3", "one YAML stream on stdout"),
            ("tradewise render staging --out manifests/", "one file per object"),
            ("tradewise render staging --k8s-version 1.27", "validated for an older cluster"),
        ),
        "Release",
    ),
    "lint": HelpDoc(
        "Check the manifests of ENV against schemas and policy.",
        (
            ("tradewise lint staging", "exit 1 when there are findings"),
            ("tradewise lint --all --k8s-version 1.27", "every Kubernetes environment"),
        ),
        "Release",
    ),
    "maintenance": HelpDoc(
        "Switch the maintenance page on or off in ENV.",
        (
            ("tradewise maintenance on staging", "the Ingress serves the maintenance page"),
            ("tradewise maintenance off prod --yes", "back to the API"),
            ("tradewise maintenance on prod --dry-run", "say what would change"),
        ),
        "Release",
    ),
    # -- Scale -----------------------------------------------------------------------------
    "scale": HelpDoc(
        "Scale the API and workers: to N, to a profile, or down.",
        (
            ("tradewise scale status --env prod", "replicas, HPAs, the traffic profile"),
            ("tradewise scale traffic high --env prod", "the guide's profiles: low ... peak"),
            ("tradewise scale api 8 --env prod --yes", "8 API replicas; the HPA floor moves"),
        ),
        "Scale",
    ),
    "scale status": HelpDoc(
        "Show replicas, autoscalers, profile and scaling events.",
        (
            ("tradewise scale status --env prod", "tables on a terminal"),
            ("tradewise scale status --env staging -o json", "one JSON document"),
        ),
    ),
    "scale api": HelpDoc(
        "Scale the API to N replicas (the HPA floor moves too).",
        (
            ("tradewise scale api 8 --env prod --yes", "at least 8 API pods"),
            ("tradewise scale api 25 --env prod --dry-run", "the plan: the ceiling rises too"),
        ),
    ),
    "scale workers": HelpDoc(
        "Scale the workers to N replicas (the HPA floor too).",
        (
            ("tradewise scale workers 5 --env prod --yes", "at least 5 worker pods"),
            ("tradewise scale workers 3 --env local", "3 local worker processes"),
        ),
    ),
    "scale traffic": HelpDoc(
        "Apply a traffic profile to the API and the workers.",
        (
            ("tradewise scale traffic high --env prod --yes", "API 10, workers 4"),
            ("tradewise scale traffic peak --env staging --dry-run", "the plan only"),
        ),
    ),
    "scale emergency-down": HelpDoc(
        "Shed load: precompute off, API and workers at their floor.",
        (
            ("tradewise scale emergency-down --env prod --yes", "the guide's overload response"),
            (
                "tradewise scale emergency-down --env prod --maintenance --yes",
                "and the maintenance page first",
            ),
        ),
    ),
    "scale suggest": HelpDoc(
        "Suggest a schedules block from recorded load.",
        (
            ("tradewise scale suggest --from timeline.jsonl", "from a `monitor --record` file"),
            (
                "tradewise scale suggest --from prometheus --env prod --per-replica-rps 400",
                "from Prometheus request rates",
            ),
        ),
    ),
    "rightsize": HelpDoc(
        "Compare requests and limits with real use, and the cost.",
        (
            ("tradewise rightsize --env prod", "per component: use, recommendation, cost"),
            ("tradewise rightsize --env prod --since 24h --write", "and write it to the config"),
        ),
        "Scale",
    ),
    # -- Load ------------------------------------------------------------------------------
    "load-test": HelpDoc(
        "Load one endpoint with Locust and check the SLOs.",
        (
            ("tradewise load-test 60s 50 /api/health", "the guide's health-check scenario"),
            (
                "tradewise load-test 120s 10 '/api/stock-analysis?symbol=AAPL' --report out/",
                "with an HTML and CSV report",
            ),
            ("tradewise load-test 3m 100 /api/health --env staging --monitor", "and watch it"),
        ),
        "Load",
    ),
    "performance-test": HelpDoc(
        "Run the mixed, staged workload and check the SLOs.",
        (
            ("tradewise performance-test --report out/", "ramp, steady, spike, cool-down"),
            ("tradewise performance-test --scale-duration 0.1", "the same shape, 10x shorter"),
        ),
        "Load",
    ),
    "stress": HelpDoc(
        "Run a stress scenario and judge it against the SLOs.",
        (
            ("tradewise stress cpu --env local --report out/", "prove the CPU autoscaling"),
            ("tradewise stress db --env staging -o json", "more requests than the pool holds"),
        ),
        "Load",
    ),
    "stress cpu": HelpDoc(
        "Push the API past its CPU target and time the scale-up.",
        (
            ("tradewise stress cpu --env local", "climb, trigger, rescale, ready"),
            ("tradewise stress cpu --env staging --through-scale-down", "and back to the floor"),
        ),
    ),
    "stress memory": HelpDoc(
        "Grow processes to their memory limit and judge recovery.",
        (
            ("tradewise stress memory --env local", "API and worker, OOM kill and recovery"),
            ("tradewise stress memory --env staging --target worker", "the workers only"),
        ),
    ),
    "stress db": HelpDoc(
        "Send more uncached requests than the database pool holds.",
        (
            ("tradewise stress db --env local", "pool waits, p95 and errors, and what to change"),
            ("tradewise stress db --env local --duration 30s -o json", "shorter, as JSON"),
        ),
    ),
    "compare": HelpDoc(
        "Say whether a load result regressed beyond the noise.",
        (
            ("tradewise compare out/v1/report.json out/v2/report.json", "exit 1 on a regression"),
            ("tradewise compare prod@3 out/v4 --p95-percent 20", "a release's recorded result"),
        ),
        "Load",
    ),
    "capacity": HelpDoc(
        "Measure one replica; replicas each profile needs.",
        (
            ("tradewise capacity --env local", "one API process started here, measured, stopped"),
            ("tradewise capacity --env prod --per-replica-rps 400", "plan from a known figure"),
        ),
        "Load",
    ),
    # -- Observe ---------------------------------------------------------------------------
    "doctor": HelpDoc(
        "Run the troubleshooting checklist and show the fixes.",
        (
            ("tradewise doctor --env prod", "findings worst first, with evidence and the fix"),
            ("tradewise doctor --env local -o json", "the local stack, as one JSON document"),
            ("tradewise doctor --env compose", "the compose stack: containers, PostgreSQL, Redis"),
        ),
        "Observe",
    ),
    "logs": HelpDoc(
        "Show the logs of every pod of a component.",
        (
            ("tradewise logs api --env prod --since 10m", "each line prefixed by its pod"),
            ("tradewise logs worker -f --env staging", "follow, new pods too, until Ctrl-C"),
        ),
        "Observe",
    ),
    "status": HelpDoc(
        "Show the release, workloads and health of ENV.",
        (
            ("tradewise status staging", "release, workloads, HPAs, recent warnings"),
            ("tradewise status prod -o json", "one JSON document"),
        ),
        "Observe",
    ),
    "monitor": HelpDoc(
        "Watch autoscaling live, then report how fast it was.",
        (
            ("tradewise monitor --env prod", "300 s, or until Ctrl-C"),
            (
                "tradewise monitor 10m --env prod --record scale.jsonl --report scale.html",
                "keep the timeline and an HTML report",
            ),
            ("tradewise monitor 60 --env local", "the local stack's processes and metrics"),
        ),
        "Observe",
    ),
    # -- Local -----------------------------------------------------------------------------
    "local": HelpDoc(
        "Run the whole service on this machine, no cluster needed.",
        (
            ("tradewise local up", "start the stack and wait until it is ready"),
            ("tradewise local logs -f worker", "follow the worker's log"),
            ("tradewise local down", "stop everything it started"),
        ),
        "Local",
    ),
    "local up": HelpDoc(
        "Start the local stack and wait until the API is ready.",
        (
            ("tradewise local up", "the default environment, local"),
            ("tradewise local up --env compose --timeout 180", "the docker-compose stack"),
        ),
    ),
    "local down": HelpDoc(
        "Stop every local process that tradewise started.",
        (
            ("tradewise local down", "TERM, then KILL after the grace period"),
            ("tradewise local down --env compose", "the docker-compose stack"),
        ),
    ),
    "local ps": HelpDoc(
        "List the local processes: state, uptime, port.",
        (
            ("tradewise local ps", "a table"),
            ("tradewise local ps -o json", "one JSON document"),
        ),
    ),
    "local logs": HelpDoc(
        "Show the logs of one local service, or of all of them.",
        (
            ("tradewise local logs api", "the last 100 lines of the API's log"),
            ("tradewise local logs -f worker", "follow the worker's log until Ctrl-C"),
        ),
    ),
    "local scale": HelpDoc(
        "Change the number of local API or worker processes.",
        (
            ("tradewise local scale api 4", "4 gunicorn workers"),
            ("tradewise local scale workers 3", "3 Celery worker processes"),
        ),
    ),
    # -- Images ----------------------------------------------------------------------------
    "build": HelpDoc(
        "Build the API and worker images, showing progress.",
        (
            ("tradewise build v2.0", "both images, tagged v2.0 and the git commit"),
            ("tradewise build v2.0 --only api --no-cache", "the API image, from scratch"),
            ("tradewise build v2.0 --wheelhouse wheels/ --push", "offline build, then push"),
        ),
        "Images",
    ),
    "push": HelpDoc(
        "Push the built images and record their digests.",
        (
            ("tradewise push v2.0 --env prod", "both images"),
            ("tradewise push v2.0 --only worker --env staging", "the worker image only"),
        ),
        "Images",
    ),
    # -- Shell -----------------------------------------------------------------------------
    "completion": HelpDoc(
        "Print the shell completion script for bash, zsh or fish.",
        (
            ("tradewise completion bash", "add `source <(tradewise completion bash)` to ~/.bashrc"),
            ("tradewise completion zsh", "or save it as _tradewise in your $fpath"),
            ("tradewise completion fish", "or save it in ~/.config/fish/completions/"),
        ),
        "Shell",
    ),
}


def format_examples(examples: tuple[tuple[str, str], ...]) -> str:
    """The ``Examples:`` epilog: kubectl's layout, a comment line above each command line.

    The ``\\b`` line keeps click from re-wrapping a block.
    """
    blocks = ["Examples:"]
    for command, what in examples:
        blocks.append(f"\b\n  # {what}\n  {command}")
    return "\n\n".join(blocks)


def walk(group: Any, path: tuple[str, ...] = ()) -> list[tuple[str, Any]]:
    """Every command under ``group`` as (``"scale traffic"``, command), groups included."""
    found: list[tuple[str, Any]] = []
    for name, command in getattr(group, "commands", {}).items():
        key = " ".join((*path, name))
        found.append((key, command))
        found.extend(walk(command, (*path, name)))
    return found


def apply(root: Any) -> None:
    """Give every command that has an entry its panel, summary and examples (in place)."""
    for key, command in walk(root):
        doc = DOCS.get(key)
        if doc is None:
            continue
        command.short_help = doc.summary
        if doc.panel is not None:
            command.rich_help_panel = doc.panel
        examples = format_examples(doc.examples)
        own = (command.epilog or "").strip()
        if examples not in own:  # (the same command object applied twice)
            command.epilog = f"{own}\n\n{examples}" if own else examples


def order_of(name: str) -> int:
    """Where a top-level command comes within its panel: the order of ``DOCS``."""
    keys = list(DOCS)
    return keys.index(name) if name in DOCS else len(keys)


def panel_of(command: Any) -> str:
    """The panel ``tradewise --help`` lists ``command`` under."""
    panel = getattr(command, "rich_help_panel", None)
    return panel if panel in PANELS else OTHER_PANEL
