"""The project's errors. Each carries the exit code the CLI turns it into (one place: cli.main)."""

from __future__ import annotations


class TradewiseError(Exception):
    """Base of every error tradewise reports to a user; ``exit_code`` is what the CLI exits with."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class GoalMissedError(TradewiseError):
    """The operation ran but missed its goal (rollout unhealthy, SLO breached, lint findings)."""

    exit_code = 1


class BadInputError(TradewiseError):
    """Bad input: a usage error, a bad value on the command line (exit 2)."""

    exit_code = 2


class ConfigError(BadInputError):
    """A broken ``tradewise.yaml`` or ``TRADEWISE_*`` variable; names file, key and value."""


class UnreachableError(TradewiseError):
    """Something tradewise needs cannot be reached: cluster, Docker engine, target host (exit 3)."""

    exit_code = 3


class NotFoundError(TradewiseError):
    """An object that was expected to exist does not."""

    exit_code = 1


class ConflictError(TradewiseError):
    """A write lost a race with another writer and could not be retried to success."""

    exit_code = 1


class ForbiddenError(TradewiseError):
    """The cluster's RBAC refused a verb on a resource."""

    exit_code = 1


class AbortedError(TradewiseError):
    """The user pressed Ctrl-C; the message says what was and was not done."""

    exit_code = 130


class Terminated(KeyboardInterrupt):  # noqa: N818 - a KeyboardInterrupt, named as the signal's end
    """SIGTERM arrived (a CI cancel, a job timeout, ``timeout``): raised in the main thread by the
    CLI's handler, so every path that cleans up after Ctrl-C runs; the CLI then exits 143."""
