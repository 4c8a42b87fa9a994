"""Carrying out deploys and rollbacks through the gateway: apply, prune, wait, record.

``Deployer`` is the side-effecting half of ``tradewise deploy`` and ``tradewise rollback``: the
plan, rollout evaluation and release records are data from ``core``; this module sends them to the
cluster with ``KubeGateway`` (so it imports no ``kubernetes`` itself), reading live state through
``adapters.live``, recording releases in ``adapters.release_store`` and waiting with
``adapters.rollout_wait``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from tradewise_ops.adapters.kube import KubeGateway
from tradewise_ops.adapters.live import check_served, live_held_and_predicted, live_scaled
from tradewise_ops.adapters.release_store import ReleaseStore
from tradewise_ops.adapters.rollout_wait import RolloutOutcome, resource_version, wait_for_rollout
from tradewise_ops.core import release as rel
from tradewise_ops.core.bluegreen import (
    API_DEPLOYMENT,
    API_HPA,
    API_SERVICE,
    BLUE_GREEN,
    CANARY,
    ROLLING,
    SLOT_LABEL,
    SLOTS,
    SLOTTED,
    check_strategy,
    is_api_deployment,
    live_slot,
    other_slot,
    slot_deployment,
    slotted,
    unslotted,
)
from tradewise_ops.core.plan import (
    SCALING_ANNOTATIONS,
    ApplyObject,
    DeployPlan,
    EnsureNamespace,
    FinishRelease,
    PruneObject,
    RecordRelease,
    ResetScaling,
    ScalingHold,
    Step,
    SwitchTraffic,
    WaitForRollout,
    build_plan,
    hold_scaling,
    with_steps,
)
from tradewise_ops.core.release import ObjectRef, Release
from tradewise_ops.core.release_steps import (
    PREVIOUS_REVISION,
    PREVIOUS_UNTIL,
    CanaryStep,
    CloseCanary,
    ClosePreview,
    KeepPrevious,
    KeptSlot,
    OpenCanary,
    OpenPreview,
    ReleaseOptions,
    RetireSlot,
    VerifyRelease,
    keep_annotations,
    kept_slot,
)
from tradewise_ops.core.rollout import WORKLOAD_KINDS, WorkloadStatus, ready_pods
from tradewise_ops.core.verified_plan import with_canary, with_retired, with_verification
from tradewise_ops.errors import (
    AbortedError,
    BadInputError,
    NotFoundError,
    Terminated,
    TradewiseError,
)

__all__ = ["DeployOutcome", "Deployer", "Progress", "RolloutOutcome"]


@dataclass
class Progress:
    """What a deploy has done so far: kept current so Ctrl-C can say what was applied."""

    applied: list[ObjectRef] = field(default_factory=list)
    pending: list[ObjectRef] = field(default_factory=list)
    pruned: list[ObjectRef] = field(default_factory=list)
    answers: list[dict[str, Any]] = field(default_factory=list)
    phase: str = "plan"
    max_rv: int = 0  # the newest resourceVersion an answer carried
    watch_from: int | None = None  # the newest one before the first workload was applied


@dataclass
class DeployOutcome:
    """The result of a deploy or rollback, JSON-ready through ``to_dict``."""

    environment: str
    revision: int
    tag: str | None
    status: str
    plan: DeployPlan
    progress: Progress
    rollout: RolloutOutcome | None = None
    waited: bool = True
    rolled_back: DeployOutcome | None = None
    seconds: float = 0.0
    requests: int = 0
    message: str = ""
    executed: list[Step] = field(default_factory=list)  # the plan's steps carried out, in order
    verification: dict[str, Any] | None = None  # blue-green / canary: what the record keeps

    def to_dict(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            "revision": self.revision,
            "tag": self.tag,
            "status": self.status,
            "message": self.message,
            "applied": len(self.progress.applied),
            "pruned": [str(r) for r in self.progress.pruned],
            "skipped": [i.to_dict() for i in self.plan.skipped],
            "waited": self.waited,
            "timed_out": bool(self.rollout and self.rollout.timed_out),
            "workloads": [w.to_dict() for w in self.rollout.state.workloads]
            if self.rollout
            else [],
            "scaling": [h.to_dict() for h in self.plan.holds],
            "rolled_back": self.rolled_back.to_dict() if self.rolled_back else None,
            "seconds": round(self.seconds, 3),
            "requests": self.requests,
            **self._release_dict(),
        }

    def _release_dict(self) -> dict[str, Any]:
        if self.plan.strategy == ROLLING:
            return {}
        from tradewise_ops.core.release import verification_summary

        out: dict[str, Any] = {
            "strategy": self.plan.strategy,
            "slot": self.plan.slot,
            "verification": verification_summary(self.verification),
        }
        if self.plan.canary is not None:
            out["canary_steps"] = list((self.verification or {}).get("steps") or [])
        return out


class Deployer:
    """Deploys and rolls back one environment's releases through a gateway.

    ``plan`` reads the cluster and returns a ``DeployPlan`` whose ``steps`` (``core.plan``) are
    everything the release will do, in order; ``apply`` carries out exactly those steps, one by
    one, and nothing else (pyinfra's way: the plan is the thing that runs). ``deploy`` is the
    two in a row.
    """

    def __init__(
        self,
        gw: KubeGateway,
        environment: str,
        *,
        namespace: str | None = None,
        user: str = "unknown",
        on_step: Callable[[str], None] | None = None,
        on_progress: Callable[[WorkloadStatus], None] | None = None,
        on_warning: Callable[[str], None] | None = None,
        on_execute: Callable[[int, Step], None] | None = None,
        now: Callable[[], str] | None = None,
        holder: str | None = None,
        verifier: Any = None,
        clock: Callable[[], float] = time.time,
        prometheus: Any = None,
        on_info: Callable[[str], None] | None = None,
    ) -> None:
        from tradewise_ops.adapters.lock import process_identity

        self.gw = gw
        self.environment = environment
        self.namespace = namespace or gw.namespace
        self.user = user
        self.holder = holder or process_identity(user)  # recorded: whose lock the release ran under
        self.records = ReleaseStore(gw, environment, self.namespace)
        self._step = on_step or (lambda _m: None)
        self._progress = on_progress
        self._warn = on_warning or (lambda _m: None)
        self._execute = on_execute or (lambda _n, _s: None)
        self._now = now or _utc_now
        self.verifier = verifier  # adapters.verifier.ReleaseVerifier: runs the verify steps
        self._clock = clock
        self.prometheus = prometheus  # adapters.prometheus.PrometheusClient: canary analysis
        self._info = on_info or self._step
        self._sleep = time.sleep
        self.progress_seconds = 5.0  # how often a canary step says how it goes

    # -- planning -------------------------------------------------------------------------
    def plan(
        self,
        rendered: Sequence[dict[str, Any]],
        tag: str | None,
        *,
        strict: bool = False,
        releases: Sequence[Release] | None = None,
        with_live: bool = False,
        reset_scaling: bool = False,
        strategy: str = ROLLING,
        wait: bool = True,
        rolling_back_from: Release | None = None,
        release: ReleaseOptions | None = None,
    ) -> DeployPlan:
        """The plan of releasing ``rendered``, with its steps (``core.plan.release_steps``) as
        the next revision after ``releases``. Changes nothing.

        ``with_live`` reads each object to say create, update or unchanged (a dry-run apply per
        live object), else actions are ``apply``; the steps are the same either way. What
        ``tradewise scale`` recorded on live HPAs and Deployments (a traffic profile, ``scale
        api N``, emergency-down) is kept (``core.plan.hold_scaling``) unless ``reset_scaling``;
        without ``with_live`` that costs one list per scaled kind. ``strategy`` blue-green puts
        the API in the slot that is not live (``core.bluegreen``), with the live API's replicas
        (and its traffic-profile annotations): two more reads. ``wait``: the steps wait for the
        rollout (and switch a blue-green slot). ``rolling_back_from``: the release a rollback
        replaces (recorded as rolled back once the new revision is deployed). ``release``
        (blue-green): the preview, verification and kept previous slot of a release decided by
        evidence (``core.release_steps``); a slot Deployment that does not serve (a kept
        previous slot) is retired first, whatever the strategy: one more list.
        """
        releases = self.records.list() if releases is None else releases
        check_strategy(strategy)
        slot = serving = None
        if strategy in SLOTTED:
            rendered, slot, serving = self._slot(rendered, reset_scaling)
        else:
            rendered = unslotted(rendered)
        served = check_served(self.gw, rendered, strict)
        previous = _previous_manifests(releases)
        objects = [o for o in rendered if served(o["apiVersion"], o["kind"])]
        live = None
        if with_live:
            live, held, holds = live_held_and_predicted(
                self.gw, objects, reset_scaling=reset_scaling
            )
        else:
            scaled = live_scaled(self.gw, objects, self.namespace)
            held, holds = hold_scaling(objects, scaled, reset=reset_scaling)
        swapped = {ObjectRef.of(o): o for o in held}
        to_apply = [swapped.get(ObjectRef.of(o), o) for o in rendered]
        plan = build_plan(
            self.environment,
            self.namespace,
            tag,
            to_apply,
            served,
            previous,
            live,
            holds=holds,
            manifests=rendered,
        )
        plan = replace(plan, strategy=strategy, slot=slot, live_slot=serving)
        plan = with_steps(
            plan,
            rel.next_revision(releases),
            wait=wait,
            releases=releases,
            rolling_back_from=rolling_back_from,
        )
        if release is not None and slot is not None and wait and strategy == CANARY:
            if release.canary is None:
                raise BadInputError("--strategy canary needs its steps (release.canary)")
            from tradewise_ops.core.canary import canary_objects

            plan = with_canary(
                plan,
                canary=release.canary,
                objects=canary_objects(rendered, slot, release.domain),
                preview=release.preview(rendered, slot),
                keep_seconds=release.keep_seconds,
            )
        elif release is not None and slot is not None and wait:
            preview = release.preview(rendered, slot)
            plan = with_verification(
                plan, verify=release.verify, preview=preview, keep_seconds=release.keep_seconds
            )
        return with_retired(plan, self.idle_slots(serving if strategy in SLOTTED else None))

    def idle_slots(self, serving: str | None) -> list[KeptSlot]:
        """The slot Deployments that do not serve (not ``serving``): a kept previous slot, or
        one an interrupted release left. One list of the API Deployments."""
        names = {slot_deployment(s): s for s in SLOTS if s != serving}
        out = []
        for dep in self.gw.list("Deployment", _API_SELECTOR, namespace=self.namespace):
            name = (dep.get("metadata") or {}).get("name")
            if name in names:
                out.append(kept_slot(names[name], dep))
        return sorted(out, key=lambda k: k.slot)

    def _slot(
        self, rendered: Sequence[dict[str, Any]], reset_scaling: bool
    ) -> tuple[list[dict[str, Any]], str, str | None]:
        """``rendered`` with the API in the slot that is not live; that slot and the live one."""
        serving = live_slot(self.gw.find("Service", API_SERVICE, namespace=self.namespace))
        slot = other_slot(serving)
        old_name = slot_deployment(serving) if serving else API_DEPLOYMENT
        old = self.gw.find("Deployment", old_name, namespace=self.namespace)
        replicas = ((old or {}).get("spec") or {}).get("replicas")
        objects = slotted(rendered, slot, None if replicas is None else int(replicas))
        annotations = ((old or {}).get("metadata") or {}).get("annotations") or {}
        kept = {k: annotations[k] for k in SCALING_ANNOTATIONS if k in annotations}
        if kept and not reset_scaling:  # the profile moves with the traffic
            for obj in objects:
                if obj["kind"] == "Deployment" and obj["metadata"]["name"] == slot_deployment(slot):
                    obj["metadata"].setdefault("annotations", {}).update(kept)
        return objects, slot, serving

    # -- deploy / rollback ----------------------------------------------------------------
    def deploy(
        self,
        rendered: Sequence[dict[str, Any]],
        tag: str | None,
        change_cause: str,
        *,
        wait: bool = True,
        timeout: float = 300.0,
        atomic: bool = False,
        strict: bool = False,
        releases: Sequence[Release] | None = None,
        reset_scaling: bool = False,
        strategy: str = ROLLING,
        release: ReleaseOptions | None = None,
    ) -> DeployOutcome:
        """``plan`` then ``apply``: apply in order (server-side apply), prune, record, wait.

        ``releases``: the history, when the caller has just read it. ``reset_scaling``: apply
        the config's replica bounds even where a traffic profile holds others (see ``plan``).
        ``strategy`` blue-green (needs ``wait``): the new API slot is applied beside the live
        one and waited for; only then do the Service and the HPA switch to it, and the old slot
        is deleted. A new slot that does not become ready is deleted and traffic stays where it
        was. ``atomic``, Ctrl-C: see ``apply``.
        """
        check_strategy(strategy)
        if strategy in SLOTTED and not wait:
            raise BadInputError(f"--strategy {strategy} needs --wait: it switches only when ready")
        plan = self.plan(
            rendered,
            tag,
            strict=strict,
            releases=releases,
            reset_scaling=reset_scaling,
            strategy=strategy,
            wait=wait,
            release=release,
        )
        return self.apply(plan, change_cause, timeout=timeout, atomic=atomic)

    def apply(
        self,
        plan: DeployPlan,
        change_cause: str,
        *,
        timeout: float = 300.0,
        atomic: bool = False,
        rollback_timeout: float | None = None,
    ) -> DeployOutcome:
        """Carry out ``plan.steps`` (from ``plan``) in order, one by one; the outcome.

        A failed rollout (or blue-green switch) stops at that step: the release is recorded as
        failed. ``atomic``: when the wait failed, roll back to the previous healthy release (a
        new plan, applied and waited for up to ``rollback_timeout`` s, default ``timeout``: a
        budget of its own). Ctrl-C (or SIGTERM) records the release as failed, naming what was
        and was not applied, and raises ``AbortedError`` saying so. ``change_cause`` goes into
        the record.
        """
        if plan.revision is None or not plan.steps:
            raise BadInputError("the plan has no release steps: make it with Deployer.plan")
        for item in plan.skipped:
            self._warn(f"skipping {item.ref}: {item.reason}")
        outcome = self._release(plan, change_cause, timeout)
        if atomic and outcome.status == rel.FAILED and outcome.progress.phase == "wait":
            try:
                target = rel.rollback_target([*self.records.list()], None)
            except NotFoundError as exc:
                outcome.message += f"; --atomic could not roll back: {exc.message}"
                return outcome
            self._step(f"--atomic: rolling back to revision {target.revision}")
            budget = timeout if rollback_timeout is None else rollback_timeout
            outcome.rolled_back = self.rollback_to(target, wait=True, timeout=budget)
        return outcome

    def rollback(
        self,
        to_revision: int | None = None,
        *,
        wait: bool = True,
        timeout: float = 300.0,
        reset_scaling: bool = False,
    ) -> DeployOutcome:
        """Restore a whole earlier release (``to_revision``, else the previous healthy one)."""
        target = rel.rollback_target(self.records.list(), to_revision)
        return self.rollback_to(target, wait=wait, timeout=timeout, reset_scaling=reset_scaling)

    def rollback_to(
        self, target: Release, *, wait: bool, timeout: float, reset_scaling: bool = False
    ) -> DeployOutcome:
        """Apply ``target``'s manifests as a new revision and wait like deploy (a live traffic
        profile is kept as by deploy, unless ``reset_scaling``). A blue-green release comes back
        blue-green: in the slot that is not live, switched to once ready."""
        releases = self.records.list()
        strategy = target.strategy if target.strategy in (ROLLING, BLUE_GREEN) else ROLLING
        if target.strategy == CANARY:  # back into a slot, switched to once ready
            strategy = BLUE_GREEN
        if strategy == BLUE_GREEN and not wait:
            raise BadInputError(
                f"revision {target.revision} is a blue-green release: rolling back to it needs "
                "--wait (its slot is switched to only once ready)"
            )
        plan = self.plan(
            list(target.manifests),
            target.tag,
            releases=releases,
            reset_scaling=reset_scaling,
            strategy=strategy,
            wait=wait,
            rolling_back_from=rel.latest(releases),
        )
        return self.apply(plan, f"rollback to revision {target.revision}", timeout=timeout)

    def instant_plan(
        self,
        target: Release,
        *,
        keep_seconds: float,
        releases: Sequence[Release] | None = None,
    ) -> tuple[DeployPlan | None, str]:
        """The plan of an instant rollback to ``target``, or None and why not.

        Possible when the running release is blue-green in one slot and ``target``'s slot is
        the other one, kept since the switch (its annotation names ``target``'s revision, its
        window is not over) with ready pods: then only the Service and HPA move back (no new
        pod) and the slot left is kept in turn for ``keep_seconds``. The new record keeps the
        running release's objects with ``target``'s API (workers and config are not touched).
        Two reads (the Service, the kept slot) besides the history.
        """
        from tradewise_ops.core.scaling import PROFILE_ANNOTATION
        from tradewise_ops.core.verified_plan import instant_steps

        releases = self.records.list() if releases is None else releases
        running = rel.current(releases)
        if running is None or running.strategy not in SLOTTED or running.slot is None:
            return None, "the running release is not blue-green"
        if target.strategy not in SLOTTED or target.slot in (None, running.slot):
            return None, f"revision {target.revision} did not serve from the other slot"
        serving = live_slot(self.gw.find("Service", API_SERVICE, namespace=self.namespace))
        if serving != running.slot:
            return None, f"the Service does not select slot {running.slot}"
        assert target.slot is not None
        dep = self.gw.find("Deployment", slot_deployment(target.slot), namespace=self.namespace)
        if dep is None:
            return None, f"slot {target.slot} is gone"
        kept = kept_slot(target.slot, dep)
        if kept.revision != target.revision:
            return None, f"slot {target.slot} does not hold revision {target.revision}"
        if kept.expired(self._clock()):
            return None, f"slot {target.slot} was kept until {kept.until}"
        if kept.ready < 1:
            return None, f"slot {target.slot} has no ready pod"
        theirs = {_key(o): o for o in slotted(list(target.manifests), target.slot)}
        switched = [theirs[k] for k in _SWITCH_KEYS if k in theirs]
        # what ``tradewise scale`` holds on the live HPA stays (as a deploy keeps it)
        hpa_live = self.gw.find("HorizontalPodAutoscaler", API_HPA, namespace=self.namespace)
        if hpa_live is not None and _annotations(hpa_live).get(PROFILE_ANNOTATION):
            held, _holds = hold_scaling(switched, {("HorizontalPodAutoscaler", API_HPA): hpa_live})
            switched = held
        record: list[dict[str, Any]] = []
        for obj in running.manifests:
            if is_api_deployment(obj):
                record.append(theirs.get(("Deployment", slot_deployment(target.slot)), obj))
            else:
                record.append(theirs.get(_key(obj), obj) if _key(obj) in _SWITCH_KEYS else obj)
        revision = rel.next_revision(releases)
        supersede = [
            (old.revision, rel.ROLLED_BACK if old.revision == running.revision else status)
            for old, status in rel.after_success(releases, revision)
        ]
        plan = DeployPlan(
            self.environment,
            self.namespace,
            target.tag,
            (),
            tuple(record),
            strategy=BLUE_GREEN,
            slot=target.slot,
            live_slot=running.slot,
            revision=revision,
        )
        plan = instant_steps(
            plan,
            switch_objects=switched,
            leaving_revision=running.revision,
            keep_seconds=keep_seconds,
            supersede=supersede,
        )
        return plan, f"slot {target.slot} is kept until {kept.until} with {kept.ready} ready pods"

    def finalize(self, *, force: bool = False) -> tuple[list[KeptSlot], list[KeptSlot]]:
        """Delete the slot Deployments that do not serve and whose keep window is over (all of
        them with ``force``); ``(deleted, kept)``."""
        serving = live_slot(self.gw.find("Service", API_SERVICE, namespace=self.namespace))
        now = self._clock()
        deleted, kept = [], []
        for idle in self.idle_slots(serving):
            if force or idle.expired(now):
                self.gw.delete("Deployment", slot_deployment(idle.slot), namespace=self.namespace)
                deleted.append(idle)
            else:
                kept.append(idle)
        return deleted, kept

    # -- carrying out the steps -----------------------------------------------------------
    def _release(self, plan: DeployPlan, change_cause: str, timeout: float) -> DeployOutcome:
        start = time.monotonic()
        requests_before = self.gw.request_count
        assert plan.revision is not None
        revision = plan.revision
        progress = Progress(pending=[ObjectRef.of(o) for o in plan.to_apply])
        outcome = DeployOutcome(self.environment, revision, plan.tag, rel.PENDING, plan, progress)
        outcome.waited = plan.wait
        run = _Run(plan, change_cause, timeout, outcome)
        run.instant = any(isinstance(s, SwitchTraffic) and s.reclaim for s in plan.steps)
        run.verification = _skipped(plan)
        try:
            for number, step in enumerate(plan.steps, 1):
                progress.phase = step.phase
                self._execute(number, step)
                failure = self._carry_out(step, run)
                outcome.executed.append(step)
                if failure is not None:
                    if plan.slot is not None:
                        failure += self._abandon(plan, run)
                    outcome.status = rel.FAILED
                    outcome.message = failure
                    outcome.verification = run.verification
                    self.records.set_status(
                        revision, rel.FAILED, outcome.message[:1000], run.verification
                    )
                    return outcome
            return outcome
        except KeyboardInterrupt as exc:
            # Ctrl-C, or SIGTERM (errors.Terminated): the release is recorded with what was and
            # was not applied; traffic stays on one whole slot
            why = "SIGTERM" if isinstance(exc, Terminated) else "Ctrl-C"
            note = f"{why}: " + _interrupted_message(revision, progress, False)
            if run.switched:  # the new slot serves: keep it, record it as deployed
                with contextlib.suppress(Exception):
                    note += self._settle_switched(run, note)
                raise AbortedError(note) from None
            undone = ""
            if plan.slot is not None:
                with contextlib.suppress(Exception):
                    undone = self._abandon(plan, run)
            if run.recorded:
                with contextlib.suppress(Exception):
                    self.records.set_status(
                        revision, rel.FAILED, (note + undone)[:1000], run.verification
                    )
            message = _interrupted_message(revision, progress, run.recorded)
            if plan.slot is not None:
                recorded = f"; revision {revision} is recorded as failed" if run.recorded else ""
                if progress.phase in ("apply", "prune", "wait"):
                    message = message.removesuffix(recorded) + undone + recorded
                else:
                    message = note + undone + recorded
            if isinstance(exc, Terminated) and not message.startswith("SIGTERM"):
                message = "terminated (SIGTERM): " + message
            raise AbortedError(message) from None
        except TradewiseError as exc:
            if run.switched:  # never delete the slot that now serves
                with contextlib.suppress(Exception):
                    exc.message += self._settle_switched(run, exc.message[:200])
                raise
            if plan.slot is not None:
                with contextlib.suppress(Exception):
                    exc.message += self._abandon(plan, run)
            if run.recorded:
                with contextlib.suppress(Exception):
                    self.records.set_status(
                        revision, rel.FAILED, exc.message[:200], run.verification
                    )
            done = len(progress.applied)
            total = done + len(progress.pending)
            extra = f"applied {done} of {total} objects before this failure" + (
                f"; revision {revision} is recorded as failed" if run.recorded else ""
            )
            exc.hint = f"{exc.hint}; {extra}" if exc.hint else extra
            raise
        finally:
            outcome.seconds = time.monotonic() - start
            outcome.requests = self.gw.request_count - requests_before

    def _carry_out(self, step: Step, run: _Run) -> str | None:
        """Do one step; why the release failed there (a rollout or a switch), or None."""
        progress = run.outcome.progress
        if isinstance(step, ApplyObject):
            self._apply_one(step.obj, progress)
        elif isinstance(step, EnsureNamespace):
            self.gw.ensure_namespace(step.namespace)
        elif isinstance(step, RecordRelease):
            self._record(step, run)
        elif isinstance(step, ResetScaling):
            self._forget_scaling(step.hold)
        elif isinstance(step, PruneObject):
            self._prune(step.ref, progress)
        elif isinstance(step, WaitForRollout):
            return self._wait(run)
        elif isinstance(step, SwitchTraffic):
            return self._switch(step, run)
        elif isinstance(step, FinishRelease):
            self._finish(step, run)
        elif isinstance(step, RetireSlot):
            if self.gw.delete("Deployment", step.ref.name, namespace=self.namespace):
                self._step(f"deleted {step.ref}: {step.detail}")
        elif isinstance(step, OpenPreview):
            self._open_preview(step, run)
        elif isinstance(step, VerifyRelease):
            return self._verify(step, run)
        elif isinstance(step, ClosePreview):
            self._close_preview(run)
        elif isinstance(step, KeepPrevious):
            self._keep_previous(step)
        elif isinstance(step, OpenCanary):
            for obj in step.objects:
                run.canaried.append(ObjectRef.of(obj))
                self._apply_one(obj, run.outcome.progress)
            self._step(f"canary of slot {step.slot}: {step.detail}")
        elif isinstance(step, CanaryStep):
            return self._canary_step(step, run)
        elif isinstance(step, CloseCanary):
            self._close_canary(run)
        else:  # pragma: no cover - every Step type is handled above
            raise AssertionError(f"unknown step {step!r}")
        return None

    def _record(self, step: RecordRelease, run: _Run) -> None:
        """Store the pending release record, then say what the release will do."""
        plan = run.plan
        record = Release(
            revision=step.revision,
            environment=self.environment,
            namespace=self.namespace,
            tag=plan.tag,
            time=self._now(),
            user=self.user,
            change_cause=run.change_cause,
            status=rel.PENDING,
            manifests=tuple(plan.to_record),
            strategy=plan.strategy,
            slot=plan.slot,
            holder=self.holder,
            verification=_skipped(plan),
        )
        self.records.create(record)
        run.recorded = True
        self._step(f"revision {step.revision}: applying {step.objects} objects")
        for hold in plan.holds:
            self._step(f"{hold.kind}/{hold.name} {hold.sentence()}")
        if plan.slot is not None and not run.instant:
            verified = plan.verification is not None and not plan.verification.skipped
            self._step(
                f"blue-green: new API slot {plan.slot} beside "
                + (f"slot {plan.live_slot}" if plan.live_slot else "the running API")
                + "; the Service switches once it is "
                + ("ready and verified" if verified else "ready")
            )
        if plan.verification is not None and plan.verification.skipped:
            self._step(f"verification skipped ({plan.verification.reason}); the record says so")

    def _wait(self, run: _Run) -> str | None:
        """Wait for the workloads applied so far; the failure, or None when healthy."""
        progress = run.outcome.progress
        workloads = [a for a in progress.answers if a.get("kind") in WORKLOAD_KINDS]
        since = str(progress.watch_from or progress.max_rv)
        self._step(f"waiting up to {run.timeout:g}s for {len(workloads)} workloads")
        result = wait_for_rollout(
            self.gw, workloads, run.timeout, since_rv=since, on_change=self._progress
        )
        run.outcome.rollout = result
        return None if result.ok else _failure_message(result, run.timeout)

    def _finish(self, step: FinishRelease, run: _Run) -> None:
        """Record the release as deployed and the ones it replaces as superseded (or rolled
        back)."""
        outcome = run.outcome
        self.records.set_status(step.revision, rel.DEPLOYED, None, run.verification)
        outcome.verification = run.verification
        for revision, status in step.supersede:
            self.records.set_status(revision, status)
        outcome.status = rel.DEPLOYED
        if not run.plan.wait:
            outcome.message = f"applied revision {step.revision} (not waited for)"
            return
        outcome.message = f"revision {step.revision} is deployed and healthy"
        if run.plan.slot is not None:
            outcome.message += f" (serving from slot {run.plan.slot})"

    def _prune(self, ref: ObjectRef, progress: Progress) -> None:
        if self.gw.delete(ref.kind, ref.name, namespace=ref.namespace, api_version=ref.api_version):
            self._step(f"pruned {ref}")
        progress.pruned.append(ref)

    def _switch(self, step: SwitchTraffic, run: _Run) -> str | None:
        """Point the API Service and HPA at the slot once it has ready pods (never at an unready
        or empty one); the failure, or None. The Service is checked to select that slot after."""
        progress = run.outcome.progress
        service = next((o for o in step.objects if o["kind"] == "Service"), None)
        selector = dict(((service or {}).get("spec") or {}).get("selector") or {})
        pods: list[Any] = []
        if selector.get(SLOT_LABEL) == step.slot:
            text = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
            pods = ready_pods(self.gw.list("Pod", text, namespace=self.namespace))
        if not pods:
            return f"slot {step.slot} has no ready pod: the Service was not switched"
        self._step(f"switching {API_SERVICE} to slot {step.slot} ({len(pods)} ready pods)")
        run.switch_started = True
        answers: dict[str, dict[str, Any]] = {}
        for obj in step.objects:
            self._apply_one(obj, progress)
            answers[obj["kind"]] = progress.answers[-1]
        live = ((answers.get("Service") or {}).get("spec") or {}).get("selector") or {}
        if live.get(SLOT_LABEL) != step.slot:
            self._restore(step, run)
            return f"{API_SERVICE} did not take the selector of slot {step.slot}"
        run.switched = True
        if step.reclaim:
            patch = {
                "metadata": {"annotations": dict.fromkeys((PREVIOUS_UNTIL, PREVIOUS_REVISION))}
            }
            with contextlib.suppress(NotFoundError):
                self.gw.patch(
                    "Deployment", slot_deployment(step.slot), patch, namespace=self.namespace
                )
        self._step(f"{API_SERVICE} serves {len(pods)} ready pods of slot {step.slot}")
        return None

    def _restore(self, step: SwitchTraffic, run: _Run) -> None:
        """Point the Service and HPA back where they were (the old slot, or the rolling API)."""
        deferred = list(step.objects)
        back = slotted(deferred, step.live_slot) if step.live_slot else unslotted(deferred)
        for obj in back:
            with contextlib.suppress(TradewiseError):
                self.gw.apply(obj)
        run.switch_started = False

    def _abandon(self, plan: DeployPlan, run: _Run) -> str:
        """Undo a release that did not switch: the Service and HPA back if the switch had begun,
        the preview deleted, the new slot deleted (never a slot that serves, never the kept
        slot an instant rollback tried to return to); what to add to the failure message."""
        assert plan.slot is not None
        where = f"slot {plan.live_slot}" if plan.live_slot else "the running API"
        switch = next((s for s in plan.steps if isinstance(s, SwitchTraffic)), None)
        if run.switch_started and switch is not None:
            self._restore(switch, run)
            service = self.gw.find("Service", API_SERVICE, namespace=self.namespace)
            if live_slot(service) != plan.live_slot:  # the way back did not take: keep both
                return f"; the switch to slot {plan.slot} was interrupted; both slots stay"
        text = f"; traffic stays on {where}"
        if run.canaried:
            with contextlib.suppress(TradewiseError):
                self._close_canary(run)
            text += "; the canary got weight 0 and was deleted"
        if run.previewed:
            with contextlib.suppress(TradewiseError):
                self._close_preview(run)
            text += "; the preview was deleted"
        if run.instant:
            return text
        name = slot_deployment(plan.slot)
        self.gw.delete("Deployment", name, namespace=self.namespace)
        return text + f"; the new slot {plan.slot} ({name}) was deleted"

    def _settle_switched(self, run: _Run, why: str) -> str:
        """After the switch a later step failed (or Ctrl-C): the new slot serves, so the release
        is recorded as deployed (with ``why``) and what it replaces as superseded; the preview
        is deleted. What to add to the message."""
        plan = run.plan
        assert plan.revision is not None
        with contextlib.suppress(TradewiseError):
            if run.canaried:
                self._close_canary(run)
        with contextlib.suppress(TradewiseError):
            if run.previewed:
                self._close_preview(run)
        finish = next((s for s in plan.steps if isinstance(s, FinishRelease)), None)
        note = f"serving from slot {plan.slot}; cleanup incomplete: {why}"[:1000]
        recorded = "recorded as deployed"
        try:
            self.records.set_status(plan.revision, rel.DEPLOYED, note, run.verification)
            for revision, status in finish.supersede if finish is not None else ():
                self.records.set_status(revision, status)
        except TradewiseError as exc:
            recorded = f"its record could not be updated: {exc.message}"
        run.outcome.status = rel.DEPLOYED
        run.outcome.verification = run.verification
        return (
            f"; traffic is on the new slot {plan.slot} (revision {plan.revision}, {recorded}); "
            "what was left to clean up goes with the next deploy"
        )

    def _open_preview(self, step: OpenPreview, run: _Run) -> None:
        for obj in step.objects:
            run.previewed.append(ObjectRef.of(obj))
            self._apply_one(obj, run.outcome.progress)
        self._step(f"preview of slot {step.slot}: {step.detail}")

    def _close_preview(self, run: _Run) -> None:
        for ref in list(run.previewed):
            self.gw.delete(ref.kind, ref.name, namespace=self.namespace)
            run.previewed.remove(ref)

    def _verify(self, step: VerifyRelease, run: _Run) -> str | None:
        """Verify the new slot; the failure (with the numbers), or None when it passed."""
        if self.verifier is None:
            raise BadInputError("this deploy verifies the new slot but has no verifier")
        self._step(f"verifying slot {step.slot}: {step.detail}")
        result = self.verifier.verify(step.verify)
        run.verification = result.to_record()
        run.outcome.verification = run.verification
        if result.passed:
            self._step(result.sentence())
            return None
        return result.sentence()

    def _canary_step(self, step: CanaryStep, run: _Run) -> str | None:
        """Set the weight, hold it (the step, weight, time left and the canary's live numbers
        on the way), then judge the canary; the breach, or None."""
        from tradewise_ops.core.canary import (
            Numbers,
            StepVerdict,
            canary_record,
            judge,
            weight_patch,
        )

        canary = run.plan.canary
        assert canary is not None
        self.gw.patch("Ingress", step.ingress, weight_patch(step.weight), namespace=self.namespace)
        run.canary_weight = step.weight
        self._step(
            f"canary step {step.number}/{step.total}: weight {step.weight}% for "
            f"{step.hold_seconds:g}s"
        )
        analysis = canary.analysis
        end = time.monotonic() + step.hold_seconds
        while (left := end - time.monotonic()) > 0:
            self._sleep(min(self.progress_seconds, left))
            if analysis is not None:
                live = Numbers.of(self._numbers(analysis.canary_queries))
                left = max(0.0, end - time.monotonic())
                self._info(
                    f"  step {step.number}/{step.total}, weight {step.weight}%, {left:.0f}s "
                    f"left: {analysis.canary_version} {live.text()}"
                )
        if analysis is not None:
            numbers = Numbers.of(self._numbers(analysis.canary_queries))
            stable = Numbers.of(self._numbers(analysis.stable_queries))
            verdict = StepVerdict(
                step.number, step.weight, numbers, stable, judge(numbers, stable, analysis)
            )
            slo, url = analysis.slo, analysis.prometheus_url
        else:
            assert canary.verify is not None
            if self.verifier is None:
                raise BadInputError("this canary is judged by a verification load: no verifier")
            result = self.verifier.verify(canary.verify)
            problems = [] if result.passed else [result.problem or "the verification failed"]
            numbers = Numbers(result.error_rate, result.p95_ms, result.rps)
            verdict = StepVerdict(step.number, step.weight, numbers, breaches=problems)
            verdict.source = "load"
            slo, url = canary.verify.slo, result.url
        run.canary_steps.append(verdict)
        run.verification = canary_record(run.canary_steps, step.total, slo, url)
        run.outcome.verification = run.verification
        if verdict.passed:
            self._step(verdict.sentence(step.total))
            return None
        return verdict.sentence(step.total)

    def _numbers(self, queries: Any) -> dict[str, float | None]:
        if self.prometheus is None:
            raise BadInputError("this canary is judged by Prometheus, but none was given")
        return {name: self.prometheus.value(query) for name, query in queries.items()}

    def _close_canary(self, run: _Run) -> None:
        """Weight 0 first (when a step set one and the Service has not switched), then delete the
        canary Ingress and Service."""
        from tradewise_ops.core.canary import CANARY_INGRESS, weight_patch

        zero = run.canary_weight and not run.switched  # after the switch any weight is fine
        if zero and any(r.name == CANARY_INGRESS for r in run.canaried):
            with contextlib.suppress(NotFoundError):
                self.gw.patch("Ingress", CANARY_INGRESS, weight_patch(0), namespace=self.namespace)
            run.canary_weight = 0
        for ref in sorted(run.canaried, key=lambda r: r.kind != "Ingress"):
            self.gw.delete(ref.kind, ref.name, namespace=self.namespace)
            run.canaried.remove(ref)

    def _keep_previous(self, step: KeepPrevious) -> None:
        """Annotate the slot traffic left with until when it is kept (and its revision)."""
        until = self._clock() + step.seconds
        patch = {"metadata": {"annotations": keep_annotations(until, step.revision)}}
        try:
            self.gw.patch("Deployment", step.ref.name, patch, namespace=self.namespace)
        except NotFoundError:
            return
        self._step(
            f"slot {step.slot} stays until {keep_annotations(until, None)[PREVIOUS_UNTIL]}: "
            "`tradewise rollback` switches back to it in seconds until then"
        )

    def _forget_scaling(self, hold: ScalingHold) -> None:
        """Remove the traffic-profile annotations (``--reset-scaling``): a merge patch, as
        ``tradewise scale`` set them (an apply leaves fields another write set)."""
        patch = {"metadata": {"annotations": dict.fromkeys(SCALING_ANNOTATIONS)}}
        with contextlib.suppress(NotFoundError):
            self.gw.patch(hold.kind, hold.name, patch, namespace=self.namespace)

    def _apply_one(self, obj: dict[str, Any], progress: Progress) -> None:
        ref = ObjectRef.of(obj)
        if obj.get("kind") in WORKLOAD_KINDS and progress.watch_from is None:
            # status changes of a workload come after its apply: watch from before the first one
            progress.watch_from = progress.max_rv
        answer = self.gw.apply(obj)
        progress.max_rv = max(progress.max_rv, resource_version(answer))
        progress.answers.append(answer)
        progress.applied.append(ref)
        with contextlib.suppress(ValueError):
            progress.pending.remove(ref)


@dataclass
class _Run:
    """What the steps of one release share while they run."""

    plan: DeployPlan
    change_cause: str
    timeout: float
    outcome: DeployOutcome
    recorded: bool = False  # the release record exists (so a failure is recorded on it)
    switch_started: bool = False  # the Service/HPA of a switch were (maybe partly) applied
    switched: bool = False  # the new slot serves: never delete it
    previewed: list[ObjectRef] = field(default_factory=list)  # preview objects applied
    verification: dict[str, Any] | None = None  # what the verify step found
    instant: bool = False  # an instant rollback (the slot switched to is a kept one)
    canaried: list[ObjectRef] = field(default_factory=list)  # canary objects applied
    canary_weight: int = 0  # the weight the canary Ingress was given last
    canary_steps: list[Any] = field(default_factory=list)  # core.canary.StepVerdict, in order


_API_SELECTOR = "app.kubernetes.io/name=tradewise,app.kubernetes.io/component=api"
_SWITCH_KEYS = (("Service", API_SERVICE), ("HorizontalPodAutoscaler", API_HPA))


def _key(obj: dict[str, Any]) -> tuple[str, str]:
    return str(obj.get("kind")), str((obj.get("metadata") or {}).get("name"))


def _annotations(obj: dict[str, Any]) -> dict[str, Any]:
    return dict((obj.get("metadata") or {}).get("annotations") or {})


def _skipped(plan: DeployPlan) -> dict[str, Any] | None:
    """The record's verification of a plan that skips it (``--no-verify``), else None."""
    if plan.verification is None or not plan.verification.skipped:
        return None
    from tradewise_ops.core.verify import skipped_record

    return skipped_record(plan.verification.reason, plan.verification.slo)


def _previous_manifests(releases: Sequence[Release]) -> list[dict[str, Any]]:
    """What earlier releases may have left in the cluster: the current and the newest release."""
    out: list[dict[str, Any]] = []
    for r in (rel.current(releases), rel.latest(releases)):
        if r is not None:
            out.extend(r.manifests)
    return out


def _failure_message(result: RolloutOutcome, timeout: float) -> str:
    failures = result.state.failures
    if failures:
        return "; ".join(
            f"{w.kind}/{w.name}: "
            + (f"pod {w.pod} " if w.pod else "")
            + f"{w.failure}"
            + (f": {w.message}" if w.message and w.message != w.failure else "")
            for w in failures
        )
    waiting = [w for w in result.state.workloads if not w.done]
    return f"not healthy after {timeout:g}s: " + "; ".join(
        f"{w.kind}/{w.name} {w.state}" for w in waiting
    )


def _interrupted_message(revision: int, progress: Progress, recorded: bool) -> str:
    applied = ", ".join(str(r) for r in progress.applied) or "nothing"
    pending = ", ".join(str(r) for r in progress.pending) or "nothing"
    text = (
        f"interrupted during {progress.phase}: applied {len(progress.applied)} objects "
        f"({applied}); not applied: {pending}"
    )
    if progress.phase == "wait":
        text = "interrupted while waiting for the rollout: every object was applied, the "
        text += "rollout was not verified"
    if recorded:
        text += f"; revision {revision} is recorded as failed"
    return text


def _utc_now() -> str:
    import datetime

    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
