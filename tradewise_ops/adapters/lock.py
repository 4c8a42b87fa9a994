"""``ReleaseLock``: one writer per environment at a time, as a Lease in the cluster.

``deploy``, ``rollback`` and ``scale`` hold the environment's lock (``core.lock``: a
``coordination.k8s.io/v1`` Lease, ``tradewise-lock-<env>``) while they change anything, so a
second writer is refused before it changes anything (``LockHeldError``, exit 1, naming who holds
it, since when, with which command), or waits for it (``acquire(wait=...)``).

- Acquire: create the Lease (one request; 409: held). A held Lease that has expired (its holder
  stopped renewing it: killed, its machine gone) is taken over with an update that carries the
  resourceVersion just read (409: someone else won the race; read again).
- While held, a daemon thread renews it (``renewTime``) every third of ``leaseDurationSeconds``,
  with the same resourceVersion rule, so it expires only when its holder is gone.
- Release: delete it with a resourceVersion precondition (never someone else's Lease).

A deploy that ends quickly costs two requests (create, delete), plus one per renewal. Clocks:
expiry compares the holder's ``renewTime`` with this machine's clock; while waiting, a Lease whose
resourceVersion has not moved for a whole lease duration (this machine's monotonic clock) counts as
expired too, whatever the clocks say.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from tradewise_ops.adapters.kube import KubeGateway
from tradewise_ops.core import lock as core_lock
from tradewise_ops.core.lock import LockHolder
from tradewise_ops.errors import (
    ConflictError,
    GoalMissedError,
    NotFoundError,
    TradewiseError,
)

__all__ = ["LockHeldError", "ReleaseLock", "operator", "process_identity"]

POLL_SECONDS = 1.0  # how often a waiting writer reads the Lease again


class LockHeldError(GoalMissedError):
    """Another run holds the environment's lock (exit 1): nothing was changed."""


def operator(gw: KubeGateway) -> str:
    """Who runs this command: ``$USER``, else the kubeconfig user (as release records say)."""
    return os.environ.get("USER") or gw.user or "unknown"


def process_identity(user: str) -> str:
    """This process as a lock holder: ``user@host:pid``."""
    return core_lock.holder_identity(user, socket.gethostname(), os.getpid())


def _utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class ReleaseLock:
    """The release lock of one environment, held by this process.

    ``acquire`` (or ``with``) takes it; ``release`` gives it back (idempotent). ``read`` tells who
    holds it without taking it; ``break_lock`` deletes it whoever holds it (``tradewise unlock``).
    """

    def __init__(
        self,
        gw: KubeGateway,
        environment: str,
        *,
        command: str,
        namespace: str | None = None,
        identity: str | None = None,
        lease_seconds: int = core_lock.DEFAULT_LEASE_SECONDS,
        on_info: Callable[[str], None] | None = None,
        on_warning: Callable[[str], None] | None = None,
        now: Callable[[], datetime.datetime] | None = None,
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        self.gw = gw
        self.environment = environment
        self.namespace = namespace or gw.namespace
        self.command = command
        self.identity = identity or process_identity(operator(gw))
        self.lease_seconds = max(int(lease_seconds), 3)
        self.name = core_lock.lease_name(environment)
        self.poll_seconds = poll_seconds
        self._info = on_info or (lambda _m: None)
        self._warn = on_warning or (lambda _m: None)
        self._now = now or _utc_now
        self._mine: LockHolder | None = None  # what our Lease says, while we hold it
        self._rv: str | None = None  # its resourceVersion, as the last answer gave it
        self._guard = threading.Lock()
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self.lost_to: LockHolder | None = None  # set when someone else took it over from us

    # -- reading --------------------------------------------------------------------------
    def read(self) -> tuple[LockHolder | None, dict[str, Any] | None]:
        """Who holds the lock now (None: free) and the Lease itself (None: none); one read."""
        lease = self.gw.find("Lease", self.name, namespace=self.namespace)
        return core_lock.holder_of(lease), lease

    @property
    def held(self) -> bool:
        """Whether this process holds the lock now."""
        return self._mine is not None

    # -- acquire --------------------------------------------------------------------------
    def acquire(self, wait: float = 0.0) -> LockHolder:
        """Take the lock; wait up to ``wait`` s while another live holder has it.

        ``LockHeldError`` (exit 1) when it is still held after that, naming holder, start and
        command. An expired Lease is taken over (and said so).
        """
        if self._mine is not None:
            return self._mine
        deadline = time.monotonic() + max(wait, 0.0)
        seen: tuple[str, float] | None = None  # (resourceVersion, when first seen)
        announced = False
        namespace_checked = False
        while True:
            mine = self._holder()
            try:
                answer = self.gw.create(
                    core_lock.lease_object(self.environment, self.namespace, mine)
                )
                return self._took(mine, answer)
            except NotFoundError:  # a first deploy: the namespace does not exist yet
                if namespace_checked:
                    raise
                namespace_checked = True
                with contextlib.suppress(ConflictError):  # (one request: no read first)
                    self.gw.create(
                        {
                            "apiVersion": "v1",
                            "kind": "Namespace",
                            "metadata": {"name": self.namespace},
                        }
                    )
                continue
            except ConflictError:
                pass
            holder, lease = self.read()
            if lease is None:
                continue  # released meanwhile: try to create it again
            rv = str((lease.get("metadata") or {}).get("resourceVersion") or "")
            if seen is None or seen[0] != rv:
                seen = (rv, time.monotonic())
            if holder is not None and self._is_mine(holder, mine):
                return self._took(mine, lease)  # our own create, retried after a lost answer
            unmoved = time.monotonic() - seen[1]
            stale = holder is None or holder.expired(self._now())
            stale = stale or (holder is not None and unmoved > holder.duration_seconds + 1)
            if stale:
                taken = self._take_over(lease, holder, mine)
                if taken is not None:
                    return taken
                continue  # someone else won the take-over: look again
            assert holder is not None
            left = deadline - time.monotonic()
            if left <= 0:
                raise LockHeldError(
                    f"{self.environment} is locked: {holder.sentence(self._now())}; "
                    "nothing was changed",
                    hint="wait for it with --wait-for-lock[=DURATION]; if that run is gone, "
                    f"`tradewise unlock {self.environment}` breaks the lock",
                )
            if not announced:
                announced = True
                self._info(
                    f"waiting up to {wait:g}s for the lock of {self.environment}: "
                    + holder.sentence(self._now())
                )
            time.sleep(min(self.poll_seconds, left))

    def _holder(self) -> LockHolder:
        now = self._now()
        return LockHolder(self.identity, self.command, now, now, self.lease_seconds, transitions=0)

    @staticmethod
    def _is_mine(holder: LockHolder, mine: LockHolder) -> bool:
        return holder.identity == mine.identity and holder.acquired == mine.acquired

    def _take_over(
        self, lease: dict[str, Any], holder: LockHolder | None, mine: LockHolder
    ) -> LockHolder | None:
        """Replace a stale Lease (carrying the resourceVersion read); None when another writer
        changed it first."""
        rv = str((lease.get("metadata") or {}).get("resourceVersion") or "")
        transitions = (holder.transitions if holder is not None else 0) + 1
        ours = dataclasses.replace(mine, transitions=transitions)
        try:
            answer = self.gw.replace(
                core_lock.lease_object(self.environment, self.namespace, ours, resource_version=rv)
            )
        except (ConflictError, NotFoundError):
            return None
        if holder is not None:
            self._warn(
                f"took over the lock of {self.environment}: it was " + holder.sentence(self._now())
            )
        return self._took(ours, answer)

    def _took(self, mine: LockHolder, answer: dict[str, Any]) -> LockHolder:
        with self._guard:
            self._mine = mine
            self._rv = str((answer.get("metadata") or {}).get("resourceVersion") or "") or None
        self._stop.clear()
        self._renewer = threading.Thread(
            target=self._renew_loop, name=f"lock-renew-{self.environment}", daemon=True
        )
        self._renewer.start()
        return mine

    # -- renew ----------------------------------------------------------------------------
    def _renew_loop(self) -> None:
        failing = False
        while not self._stop.wait(self.lease_seconds / 3):
            try:
                if not self.renew():
                    return
                failing = False
            except TradewiseError as exc:  # unreachable for a moment: try again next time
                if not failing:
                    self._warn(f"could not renew the lock of {self.environment}: {exc.message}")
                failing = True

    def renew(self) -> bool:
        """Move ``renewTime`` to now (an update carrying our resourceVersion); False when the
        lock is no longer ours (``lost_to`` says who has it)."""
        with self._guard:
            mine, rv = self._mine, self._rv
        if mine is None:
            return False
        renewed = dataclasses.replace(mine, renewed=self._now())
        body = core_lock.lease_object(
            self.environment, self.namespace, renewed, resource_version=rv
        )
        try:
            answer = self.gw.replace(body)
        except (ConflictError, NotFoundError):
            holder, lease = self.read()
            if holder is not None and self._is_mine(holder, mine) and lease is not None:
                with self._guard:  # our own renewal, retried after a lost answer
                    self._rv = str(lease["metadata"].get("resourceVersion") or "") or None
                return True
            with self._guard:
                self._mine = None
                self.lost_to = holder
            who = holder.identity if holder is not None else "nobody (it was deleted)"
            self._warn(
                f"lost the lock of {self.environment} to {who}: another run may change "
                "it at the same time"
            )
            return False
        with self._guard:
            if self._mine is not None:
                self._mine = renewed
                self._rv = str((answer.get("metadata") or {}).get("resourceVersion") or "") or rv
        return True

    # -- release --------------------------------------------------------------------------
    def release(self) -> None:
        """Stop renewing and delete our Lease (only the version we hold). Idempotent; never
        raises: a Lease it could not delete (cluster gone) expires by itself."""
        self._stop.set()
        renewer, self._renewer = self._renewer, None
        if renewer is not None and renewer is not threading.current_thread():
            renewer.join(timeout=5)
        with self._guard:
            mine, rv = self._mine, self._rv
            self._mine = None
        if mine is None:
            return
        try:
            self._delete_mine(mine, rv)
        except TradewiseError as exc:
            self._warn(
                f"could not release the lock of {self.environment} ({exc.message}): it expires "
                f"by itself {mine.duration_seconds}s after its last renewal"
            )

    def _delete_mine(self, mine: LockHolder, rv: str | None) -> None:
        try:
            gone = self.gw.delete("Lease", self.name, namespace=self.namespace, resource_version=rv)
        except ConflictError:
            holder, _lease = self.read()
            if holder is None or not self._is_mine(holder, mine):
                self._warn(f"the lock of {self.environment} was taken over meanwhile: left as is")
                return
            self.gw.delete("Lease", self.name, namespace=self.namespace)
            return
        if not gone:
            self._warn(f"the lock of {self.environment} had been removed meanwhile (unlock?)")

    def break_lock(self, resource_version: str | None = None) -> bool:
        """Delete the Lease whoever holds it (``tradewise unlock``); with ``resource_version``
        only that version (``ConflictError`` when it changed). False when there was none."""
        return self.gw.delete(
            "Lease", self.name, namespace=self.namespace, resource_version=resource_version
        )

    def __enter__(self) -> ReleaseLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
