"""``tradewise completion bash|zsh|fish``: the shell completion script, and what it completes.

The script (typer's, as kubectl and helm print theirs) calls ``tradewise`` back with
``_TRADEWISE_COMPLETE=complete_<shell>`` and the words typed so far; click's completion machinery
then finds the command and the parameter being completed. Beyond command and option names,
``attach`` gives the parameters their values: environment names, traffic profiles and components
from ``tradewise.yaml`` (read only when completing), the words of a ``on|off``-style metavar, and
release revisions from the cluster (only when it answers within a second; otherwise nothing).

Nothing here is imported at start-up beyond typer: the config, the kube gateway and typer's
completion classes load only in the completion process.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer

from tradewise_ops.cli.state import get_state
from tradewise_ops.errors import BadInputError

PROG_NAME = "tradewise"
COMPLETE_VAR = "_TRADEWISE_COMPLETE"
SHELLS = ("bash", "zsh", "fish")
# how long completing a revision may wait for the cluster to answer (connect + list), in seconds;
# TRADEWISE_COMPLETE_TIMEOUT changes it (a slow link to the cluster, a busy machine)
REVISION_TIMEOUT = 1.5
# a metavar such as on|off or rolling|blue-green: its words are the values (checked without
# `re`, which --help does not otherwise load)
_METAVAR_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")

Completer = Callable[[Any, Any, str], list[Any]]
# the words typed before the one being completed (set per completion request; see _environment)
_TYPED: list[str] = []


def register(app: typer.Typer) -> None:
    """Add ``completion`` to the root app."""
    app.command("completion")(completion)


def completion(
    ctx: typer.Context,
    shell: str = typer.Argument(..., metavar="bash|zsh|fish", help="The shell to complete for."),
) -> None:
    """Print the completion script for bash, zsh or fish (source it, or save it where the shell
    loads completions from).

    bash: `source <(tradewise completion bash)` in ~/.bashrc. zsh: `tradewise completion zsh >
    "${fpath[1]}/_tradewise"`. fish: `tradewise completion fish >
    ~/.config/fish/completions/tradewise.fish`.
    """
    from typer._completion_shared import get_completion_script

    if shell not in SHELLS:
        raise BadInputError(f"cannot complete for {shell!r}: use one of {', '.join(SHELLS)}")
    script = get_completion_script(prog_name=PROG_NAME, complete_var=COMPLETE_VAR, shell=shell)
    get_state(ctx).terminal.raw(script + "\n")


# -- the completion process ------------------------------------------------------------------
def init() -> None:
    """Register the shell classes that answer ``_TRADEWISE_COMPLETE=complete_<shell>``.

    Typer's classes, plus one rule: a global option's value typed after the command
    (``tradewise deploy --env <TAB>``, as kubectl allows) is completed by the root's option.
    """
    from typer._click.shell_completion import add_completion_class
    from typer._completion_classes import BashComplete, FishComplete, ZshComplete

    for base in (BashComplete, ZshComplete, FishComplete):
        cls = type(base.__name__, (_GlobalOptionsAnywhere, base), {})
        add_completion_class(cls, base.name)


class _GlobalOptionsAnywhere:
    """Mixed into typer's shell classes: global options complete after the command too."""

    cli: Any
    ctx_args: Any
    prog_name: str

    def get_completions(self, args: list[str], incomplete: str) -> list[Any]:
        from typer._click.shell_completion import CompletionItem, _resolve_context

        _TYPED[:] = args
        ctx = _resolve_context(self.cli, dict(self.ctx_args), self.prog_name, list(args))
        root = ctx.find_root()
        own = {opt for p in ctx.command.get_params(ctx) for opt in getattr(p, "opts", ())}
        if ctx is not root and args and args[-1] not in own and "--" not in args:
            for param in root.command.get_params(root):
                if args[-1] in getattr(param, "opts", ()) and not getattr(param, "is_flag", True):
                    return list(param.shell_complete(root, incomplete))
        items: list[Any] = list(super().get_completions(args, incomplete))  # type: ignore[misc]
        if ctx is not root and incomplete.startswith("-") and "--" not in args:
            seen = {item.value for item in items}
            for param in root.command.get_params(root):
                for opt in getattr(param, "opts", ()):
                    if opt.startswith(incomplete) and opt not in seen and opt != "--version":
                        items.append(CompletionItem(opt, help=getattr(param, "help", None)))
        return items


# -- completers ------------------------------------------------------------------------------
def attach(root: Any) -> None:
    """Give the parameters of every command (``root`` and below) their value completers."""
    _attach_params(root, "")
    for path, command in _walk(root):
        _attach_params(command, path)


def _walk(group: Any, path: str = "") -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = []
    for name, command in getattr(group, "commands", {}).items():
        key = f"{path} {name}".strip()
        found.append((key, command))
        found.extend(_walk(command, key))
    return found


def _attach_params(command: Any, path: str) -> None:
    for param in getattr(command, "params", ()):
        if getattr(param, "_custom_shell_complete", None) is not None:
            continue  # the command module chose its own
        completer = _completer_for(path, param)
        if completer is not None:
            param._custom_shell_complete = completer


def _completer_for(path: str, param: Any) -> Completer | None:
    special = _BY_COMMAND.get((path, param.name))
    if special is not None:
        return special
    by_name = _BY_NAME.get(param.name or "")
    if by_name is not None:
        return by_name
    words = (getattr(param, "metavar", None) or "").split("|")
    if len(words) > 1 and all(w[:1].isalpha() and set(w) <= _METAVAR_CHARS for w in words):
        return _words(*words)
    return None


def _items(values: list[tuple[str, str | None]], incomplete: str) -> list[Any]:
    from typer._click.shell_completion import CompletionItem

    return [CompletionItem(v, help=h) for v, h in values if v.startswith(incomplete)]


def _words(*words: str) -> Completer:
    def complete(ctx: Any, param: Any, incomplete: str) -> list[Any]:
        return _items([(w, None) for w in words], incomplete)

    return complete


def _config(ctx: Any) -> Any:
    """The config the command line names (``--config``, ``TRADEWISE_CONFIG``, ...), or None."""
    from tradewise_ops.core.config import load_config

    try:
        return load_config(ctx.find_root().params.get("config"))
    except Exception:  # a broken config completes nothing rather than breaking the shell
        return None


def _environments(ctx: Any, param: Any, incomplete: str) -> list[Any]:
    config = _config(ctx)
    if config is None:
        return []
    values: list[tuple[str, str | None]] = []
    for env in config.environments.values():
        about = f"{env.kind}" + (f", context {env.context}" if env.context else "")
        values.append((env.name, about))
        values.extend((alias, f"= {env.name}") for alias in env.aliases)
    return _items(values, incomplete)


def _profiles(ctx: Any, param: Any, incomplete: str) -> list[Any]:
    config = _config(ctx)
    if config is None:
        return []
    values: list[tuple[str, str | None]] = [
        (p.name, f"API {p.api}, workers {p.workers}" + (f", {p.rps} req/s" if p.rps else ""))
        for p in config.profiles.values()
    ]
    return _items(values, incomplete)


def _components(ctx: Any, param: Any, incomplete: str) -> list[Any]:
    config = _config(ctx)
    if config is None:
        return []
    env = _environment(ctx, config)
    names = list(env.components) if env is not None else []
    return _items([(n, None) for n in names], incomplete)


def _environment(ctx: Any, config: Any) -> Any:
    """The environment the command line names (positional ENV, then --env), else the default.

    While an option waits for its value (``rollback staging --to-revision <TAB>``), click's
    resilient parse stops at that option and leaves the positional ENV unset: the words before
    the option are parsed again, without it.
    """
    named = _named_environment(ctx)
    if named is None and _TYPED and _TYPED[-1].startswith("-"):
        import contextlib

        from typer._click.shell_completion import _resolve_context

        root = ctx.find_root()
        with contextlib.suppress(Exception):
            again = _resolve_context(root.command, {}, root.info_name, _TYPED[:-1])
            named = _named_environment(again)
    try:
        return config.environment(named)
    except Exception:
        return None


def _named_environment(ctx: Any) -> str | None:
    node = ctx
    while node is not None:
        named = node.params.get("env_name") or node.params.get("env")
        if named:
            return str(named)
        node = node.parent
    return None


def _revisions(ctx: Any, param: Any, incomplete: str) -> list[Any]:
    """The release revisions of the environment, newest first, when the cluster answers fast.

    The budget covers the cluster's answer (connect, list, decode), not loading the client.
    """
    import os
    import threading

    config = _config(ctx)
    env = _environment(ctx, config) if config is not None else None
    if env is None or not env.is_kubernetes:
        return []
    try:
        budget = float(os.environ.get("TRADEWISE_COMPLETE_TIMEOUT", REVISION_TIMEOUT))
        from tradewise_ops.adapters.kube import KubeGateway
        from tradewise_ops.adapters.release_store import ReleaseStore

        root = ctx.find_root().params
        gw = KubeGateway.from_environment(
            env,
            context=root.get("context"),
            namespace=root.get("namespace"),
            retries=0,
            request_timeout=budget,
        )
    except Exception:  # no kubeconfig, no such context: nothing to complete
        return []
    found: list[tuple[str, str | None]] = []

    def ask() -> None:
        try:
            releases = ReleaseStore(gw, env.name).list()
        finally:
            gw.close()
        for release in reversed(releases):
            found.append(
                (str(release.revision), f"{release.tag or '-'} {release.status} {release.time}")
            )

    worker = threading.Thread(target=_quietly(ask), daemon=True)
    worker.start()
    worker.join(budget)
    return _items(list(found), incomplete) if not worker.is_alive() else []


def _quietly(fn: Callable[[], None]) -> Callable[[], None]:
    def run() -> None:
        try:
            fn()
        except Exception:  # unreachable, forbidden, no kubeconfig: nothing to complete
            return

    return run


# by parameter name, for every command (new commands that name theirs alike get them too)
_BY_NAME: dict[str, Completer] = {
    "env": _environments,
    "env_name": _environments,
    "environment": _environments,
    "profile": _profiles,
    "component": _components,
    "components": _components,
    "to_revision": _revisions,
    "revision": _revisions,
    "output": _words("table", "json", "yaml"),
}
# where one command's parameter means something narrower
_BY_COMMAND: dict[tuple[str, str], Completer] = {
    ("local scale", "component"): _words("api", "workers"),
    ("local logs", "service"): _words("redis", "api", "worker", "precompute"),
    ("build", "only"): _words("api", "worker"),
    ("push", "only"): _words("api", "worker"),
}
