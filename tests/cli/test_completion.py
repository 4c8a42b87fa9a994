"""``tradewise completion bash|zsh|fish``: the scripts, and what they complete, as a shell sees it.

Bash runs the generated script for real: it registers the function with ``complete``, and the
function is called as bash's programmable completion calls it (``COMP_WORDS``/``COMP_CWORD``),
which runs ``tradewise`` with ``_TRADEWISE_COMPLETE`` in a child process; ``compgen`` then filters
the answers by the word typed, as bash does. zsh and fish are not installed here: their scripts'
protocol (``_TYPER_COMPLETE_ARGS``) is exercised by running ``tradewise`` the way their scripts do.
Release revisions come from the emulator's API server over real HTTP.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from tests.k8s_emulator import Emulator
from tradewise_ops.cli.main import app

pytest_plugins = ["tests.k8s_emulator.fixtures"]

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
BASH = shutil.which("bash")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRADEWISE_", "_TRADEWISE"))}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["TRADEWISE_CONFIG"] = str(ROOT / "tradewise.yaml")
    env.update(extra)
    return env


def _script(shell: str) -> str:
    result = CliRunner().invoke(app, ["completion", shell])
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.fixture(scope="module")
def bash_script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.helpers import require_binary

    require_binary("bash")  # skipped without bash; under CI=true that fails instead
    path = tmp_path_factory.mktemp("completion") / "tradewise.bash"
    path.write_text(_script("bash"), encoding="utf-8")
    return path


def bash_complete(script: Path, line: str, env: dict[str, str] | None = None) -> list[str]:
    """What bash offers for the last word of ``line`` (a trailing space: a new, empty word)."""
    assert BASH is not None
    words = line.split(" ")
    program = r"""
source "$1"; shift
spec=$(complete -p tradewise) || exit 3
case "$spec" in *"-F _tradewise_completion"*) ;; *) echo "not registered: $spec"; exit 4;; esac
COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 ))
_tradewise_completion tradewise "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
compgen -W "${COMPREPLY[*]}" -- "${COMP_WORDS[COMP_CWORD]}" || true  # 1: no match
"""
    done = subprocess.run(
        [BASH, "--norc", "--noprofile", "-c", program, "bash", str(script), *words],
        capture_output=True,
        text=True,
        env=env or _env(),
        timeout=60,
    )
    assert done.returncode == 0, (done.stdout, done.stderr)
    return done.stdout.split()


def test_the_scripts_name_the_program_and_its_variable() -> None:
    bash = _script("bash")
    assert "_TRADEWISE_COMPLETE=complete_bash" in bash
    assert "complete -o default -F _tradewise_completion tradewise" in bash
    assert "compdef _tradewise_completion tradewise" in _script("zsh")
    fish = _script("fish")
    assert fish.startswith("complete --command tradewise")
    assert "_TRADEWISE_COMPLETE=complete_fish" in fish
    bad = CliRunner().invoke(app, ["completion", "tcsh"])
    assert bad.exit_code == 2
    assert "use one of bash, zsh, fish" in bad.stderr


def test_bash_completes_commands_options_and_config_values(bash_script: Path) -> None:
    assert bash_complete(bash_script, "tradewise de") == ["deploy"]
    assert set(bash_complete(bash_script, "tradewise ")) >= {
        "deploy",
        "scale",
        "load-test",
        "monitor",
        "local",
        "build",
        "completion",
    }
    assert bash_complete(bash_script, "tradewise scale tr") == ["traffic"]
    # environments and profiles come from tradewise.yaml (prod's alias too)
    assert bash_complete(bash_script, "tradewise deploy ") == [
        "local",
        "compose",
        "staging",
        "prod",
        "production",
    ]
    assert bash_complete(bash_script, "tradewise deploy st") == ["staging"]
    assert bash_complete(bash_script, "tradewise scale traffic ") == [
        "low",
        "medium",
        "high",
        "peak",
    ]
    assert bash_complete(bash_script, "tradewise scale traffic p") == ["peak"]
    # options, a metavar's words, a global option after the command (as kubectl allows it)
    assert bash_complete(bash_script, "tradewise deploy staging --str") == [
        "--strict",
        "--strategy",
    ]
    assert bash_complete(bash_script, "tradewise deploy staging --strategy ") == [
        "rolling",
        "blue-green",
        "canary",
    ]
    assert bash_complete(bash_script, "tradewise maintenance o") == ["on", "off"]
    assert bash_complete(bash_script, "tradewise scale status --env pr") == ["prod", "production"]
    assert bash_complete(bash_script, "tradewise status -o ") == ["table", "json", "yaml"]
    assert "--env" in bash_complete(bash_script, "tradewise scale status --e")
    assert bash_complete(bash_script, "tradewise local logs ") == [
        "redis",
        "api",
        "worker",
        "precompute",
    ]


def test_values_come_from_the_config_the_line_names(bash_script: Path, tmp_path: Path) -> None:
    doc = yaml.safe_load((ROOT / "tradewise.yaml").read_text(encoding="utf-8"))
    doc["environments"] = {
        "qa": {"kind": "kubernetes", "context": "qa"},
        "canary": {"kind": "kubernetes", "context": "canary", "aliases": ["edge"]},
    }
    doc["default_environment"] = "qa"
    doc["profiles"] = {"burst": {"api": 3, "workers": 2}}
    doc["schedules"] = []
    config = tmp_path / "other.yaml"
    config.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    assert bash_complete(bash_script, f"tradewise --config {config} deploy ") == [
        "qa",
        "canary",
        "edge",
    ]
    assert bash_complete(bash_script, f"tradewise --config {config} scale traffic ") == ["burst"]
    # TRADEWISE_CONFIG works as for every command
    env = _env(TRADEWISE_CONFIG=str(config))
    assert bash_complete(bash_script, "tradewise status ", env=env) == ["qa", "canary", "edge"]
    # a broken config completes nothing (and breaks nothing)
    config.write_text("environments: [\n", encoding="utf-8")
    assert bash_complete(bash_script, f"tradewise --config {config} deploy ") == []


def _complete_as(shell: str, typed: str, env: dict[str, str] | None = None) -> str:
    extra = {"_TRADEWISE_COMPLETE": f"complete_{shell}", "_TYPER_COMPLETE_ARGS": typed}
    if shell == "fish":
        extra["_TYPER_COMPLETE_FISH_ACTION"] = "get-args"
    done = subprocess.run(
        [str(BIN / "tradewise")],
        capture_output=True,
        text=True,
        env={**(env or _env()), **extra},
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_zsh_and_fish_get_the_same_answers_in_their_formats() -> None:
    zsh = _complete_as("zsh", "tradewise scale traffic ")
    assert zsh.startswith("_arguments '*: :((")
    for profile in ("low", "medium", "high", "peak"):
        assert f'"{profile}":"API ' in zsh
    fish = _complete_as("fish", "tradewise deploy pr")
    assert [line.split("\t")[0] for line in fish.splitlines()] == ["prod", "production"]
    assert "kubernetes, context prod" in fish


def _deploy(*args: str) -> None:
    result = CliRunner().invoke(app, ["--config", str(ROOT / "tradewise.yaml"), *args])
    assert result.exit_code == 0, result.stderr


def test_release_revisions_come_from_the_cluster(
    bash_script: Path, emulator: Emulator, kubeconfig: Path
) -> None:
    emulator.controllers.auto(delay=0.01)
    _deploy("deploy", "staging", "--tag", "v1.0", "--timeout", "20s")
    _deploy("deploy", "staging", "--tag", "v1.1", "--timeout", "20s")
    # a budget for a busy, shared machine (the default, 1.5 s, is held in the next test)
    env = _env(KUBECONFIG=str(kubeconfig), TRADEWISE_COMPLETE_TIMEOUT="15")
    offered = bash_complete(bash_script, "tradewise rollback staging --to-revision ", env=env)
    assert offered == ["2", "1"]  # newest first
    fish = _complete_as("fish", "tradewise rollback staging --to-revision ", env=env)
    assert fish.splitlines()[0].startswith("2\tv1.1 deployed ")
    assert fish.splitlines()[1].startswith("1\tv1.0 superseded ")
    # --env after the command names the environment too; the typed prefix filters
    assert bash_complete(
        bash_script, "tradewise rollback --env staging --to-revision 1", env=env
    ) == ["1"]
    # a local environment has no releases in a cluster
    assert bash_complete(bash_script, "tradewise rollback local --to-revision ", env=env) == []


def test_a_cluster_that_does_not_answer_completes_no_revision_quickly(
    bash_script: Path, tmp_path: Path
) -> None:
    """A server that takes the connection and never answers: the completion gives up in time."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # connections queue in the backlog; nothing ever reads them
        port = silent.getsockname()[1]
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
                    "users": [{"name": "u", "user": {"token": "t"}}],
                    "contexts": [{"name": "staging", "context": {"cluster": "c", "user": "u"}}],
                    "current-context": "staging",
                }
            ),
            encoding="utf-8",
        )
        env = _env(KUBECONFIG=str(kubeconfig))
        start = time.monotonic()
        offered = bash_complete(bash_script, "tradewise rollback staging --to-revision ", env=env)
        took = time.monotonic() - start
    assert offered == []
    # the budget (1.5 s) plus the completion process's start-up (loading the kube client
    # included), on a shared, busy machine
    assert took < 1.5 + 5.0, f"{took:.1f}s"


def test_help_does_not_load_the_config_or_kube_code() -> None:
    """The completers load what they need when they run, never for ``--help``."""
    probe = (
        "import sys\n"
        "from tradewise_ops.cli.main import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = ['tradewise_ops.core.config', 'tradewise_ops.adapters.kube', 'kubernetes',"
        " 'yaml', 'jinja2']\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=_env(), timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
