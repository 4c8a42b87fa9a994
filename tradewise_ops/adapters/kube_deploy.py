"""Carrying out deploys and rollbacks through the gateway: apply, prune, wait, record.

``Deployer`` is the side-effecting half of ``tradewise deploy`` and ``tradewise rollback``: the
plan, rollout evaluation and release records are data from ``core``; this module sends them to the
cluster with ``KubeGateway`` (so it imports no ``kubernetes`` itself) and watches the rollout.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from tradewise_ops.adapters.kube import KubeGateway
from tradewise_ops.core import release as rel
from tradewise_ops.core.bluegreen import (
    API_DEPLOYMENT,
    API_SERVICE,
    BLUE_GREEN,
    ROLLING,
    SLOT_LABEL,
    check_strategy,
    live_slot,
    other_slot,
    slot_deployment,
    slotted,
    switch_objects,
    unslotted,
)
from tradewise_ops.core.plan import (
    HELD_FIELDS,
    OPTIONAL_KINDS,
    SCALING_ANNOTATIONS,
    DeployPlan,
    ScalingHold,
    build_plan,
    hold_scaling,
)
from tradewise_ops.core.release import ObjectRef, Release
from tradewise_ops.core.rollout import (
    WORKLOAD_KINDS,
    RolloutState,
    WorkloadStatus,
    evaluate,
    ready_pods,
)
from tradewise_ops.errors import (
    AbortedError,
    BadInputError,
    ConflictError,
    GoalMissedError,
    NotFoundError,
    TradewiseError,
)

WATCHED_KINDS = ("Deployment", "StatefulSet", "Pod", "Event")
# the kinds ``tradewise scale`` changes (and annotates), read once per deploy to keep its choices
SCALED_KINDS = ("Deployment", "HorizontalPodAutoscaler")
PART_OF = "app.kubernetes.io/part-of=tradewise"


class ReleaseStore:
    """The release records of one environment (Secrets labelled ``owner=tradewise``)."""

    def __init__(self, gw: KubeGateway, environment: str, namespace: str | None = None) -> None:
        self.gw = gw
        self.environment = environment
        self.namespace = namespace or gw.namespace

    def list(self) -> list[Release]:
        """Every release of the environment, oldest first (one request)."""
        secrets = self.gw.list("Secret", rel.selector(self.environment), namespace=self.namespace)
        return rel.sort_history(
            rel.from_secret(s) for s in secrets if s.get("type") == rel.SECRET_TYPE
        )

    def create(self, release: Release) -> None:
        """Store a new release record; ``ConflictError`` when that revision exists (another
        deploy of the environment got there first: the record doubles as a lock)."""
        secret = rel.to_secret(release)
        try:
            self.gw.create(secret)
        except ConflictError:
            existing = self.gw.find("Secret", secret["metadata"]["name"], namespace=self.namespace)
            if existing is not None and existing.get("data") == secret["data"]:
                return  # our own create, retried after its answer was lost
            raise ConflictError(
                f"revision {release.revision} of {self.environment} was recorded by someone else "
                "meanwhile: another deploy or rollback is running; try again when it is done"
            ) from None

    def set_status(self, revision: int, status: str, note: str | None = None) -> None:
        """Change a record's status (a merge patch of its labels)."""
        self.gw.patch(
            "Secret",
            rel.secret_name(revision),
            rel.status_patch(status, note),
            namespace=self.namespace,
        )


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
class RolloutOutcome:
    """How the wait ended."""

    state: RolloutState
    timed_out: bool
    seconds: float

    @property
    def ok(self) -> bool:
        return self.state.done and not self.state.failed and not self.timed_out


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
        }


def check_served(
    gw: KubeGateway, objects: Sequence[dict[str, Any]], strict: bool
) -> Callable[[str, str], bool]:
    """Discover which rendered kinds the cluster serves, before anything is applied.

    Returns ``served(apiVersion, kind)``. An unserved optional kind (ServiceMonitor,
    PrometheusRule: the Prometheus operator is missing) is skipped, or fails under ``strict``;
    any other unserved kind fails (``GoalMissedError``), so no release is ever half applied.
    """
    missing: list[str] = []
    fatal: list[str] = []
    for api_version, kind in dict.fromkeys((o["apiVersion"], o["kind"]) for o in objects):
        if not gw.served(api_version, kind):
            missing.append(f"{kind} ({api_version})")
            if strict or kind not in OPTIONAL_KINDS:
                fatal.append(f"{kind} ({api_version})")
    if fatal:
        raise GoalMissedError(
            f"the cluster at {gw.server} does not serve {', '.join(fatal)}: nothing was applied",
            hint=None
            if not strict
            else "without --strict, kinds of the Prometheus operator are skipped when missing",
        )
    missing_set = set(missing)
    return lambda api_version, kind: f"{kind} ({api_version})" not in missing_set


def live_and_predicted(
    gw: KubeGateway, objects: Sequence[dict[str, Any]], *, reset_scaling: bool = False
) -> dict[ObjectRef, tuple[dict[str, Any] | None, dict[str, Any] | None]]:
    """For each object: the live one (None when absent) and the result of a server-side dry-run
    apply (the rendered object itself when absent), keeping the live scaling as a deploy does
    (``hold_scaling``) unless ``reset_scaling``. Changes nothing."""
    return live_held_and_predicted(gw, objects, reset_scaling=reset_scaling)[0]


def live_held_and_predicted(
    gw: KubeGateway, objects: Sequence[dict[str, Any]], *, reset_scaling: bool = False
) -> tuple[
    dict[ObjectRef, tuple[dict[str, Any] | None, dict[str, Any] | None]],
    list[dict[str, Any]],
    list[ScalingHold],
]:
    """``live_and_predicted``, plus the objects as a deploy would apply them and the scaling
    holds (``core.plan.hold_scaling``). One GET per object, one dry-run apply per live one."""
    lives: dict[ObjectRef, dict[str, Any] | None] = {}
    for obj in objects:
        meta = obj.get("metadata") or {}
        lives[ObjectRef.of(obj)] = gw.find(
            obj["kind"],
            meta["name"],
            namespace=meta.get("namespace"),
            api_version=obj["apiVersion"],
        )
    by_name = {(ref.kind, ref.name): live for ref, live in lives.items()}
    held, holds = hold_scaling(objects, by_name, reset=reset_scaling)
    out: dict[ObjectRef, tuple[dict[str, Any] | None, dict[str, Any] | None]] = {}
    for obj in held:
        ref = ObjectRef.of(obj)
        live = lives[ref]
        predicted = gw.apply(obj, dry_run=True) if live is not None else obj
        out[ref] = (live, predicted)
    return out, held, holds


def as_live_slot(
    gw: KubeGateway, rendered: Sequence[dict[str, Any]], namespace: str | None = None
) -> list[dict[str, Any]]:
    """``rendered`` with the API in the slot the live Service selects (with that Deployment's
    replicas), so a comparison with the cluster (``diff``) meets the same objects; unchanged when
    the live API is rolling. Two reads."""
    serving = live_slot(gw.find("Service", API_SERVICE, namespace=namespace))
    if serving is None:
        return list(rendered)
    dep = gw.find("Deployment", slot_deployment(serving), namespace=namespace)
    replicas = ((dep or {}).get("spec") or {}).get("replicas")
    return slotted(rendered, serving, None if replicas is None else int(replicas))


def live_scaled(
    gw: KubeGateway, objects: Sequence[dict[str, Any]], namespace: str
) -> dict[tuple[str, str], dict[str, Any]]:
    """The live Deployments and HPAs of tradewise by ``(kind, name)``: one list per kind that
    ``objects`` hold (what ``hold_scaling`` needs to keep a traffic profile)."""
    kinds = {o["kind"] for o in objects} & set(SCALED_KINDS) & set(HELD_FIELDS)
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for kind in SCALED_KINDS:
        if kind in kinds:
            for item in gw.list(kind, PART_OF, namespace=namespace):
                out[(kind, (item.get("metadata") or {}).get("name", ""))] = item
    return out


def _rv(obj: dict[str, Any]) -> int:
    try:
        return int((obj.get("metadata") or {}).get("resourceVersion") or 0)
    except ValueError:
        return 0


def wait_for_rollout(
    gw: KubeGateway,
    workloads: Sequence[dict[str, Any]],
    timeout: float,
    since_rv: str | None = None,
    on_change: Callable[[WorkloadStatus], None] | None = None,
) -> RolloutOutcome:
    """Watch (not poll) workloads, their pods and events until all are done, one fails, or
    ``timeout`` s pass. ``workloads`` are the objects as the apply answered them."""
    start = time.monotonic()
    state = {(w["kind"], w["metadata"]["name"]): w for w in workloads}
    pods: dict[str, dict[str, Any]] = {}
    events: list[dict[str, Any]] = []
    shown: dict[tuple[str, str], str] = {}

    def judge() -> RolloutState:
        result = evaluate(list(state.values()), list(pods.values()), events)
        for w in result.workloads:
            line = w.line()
            if shown.get((w.kind, w.name)) != line:
                shown[(w.kind, w.name)] = line
                if on_change is not None:
                    on_change(w)
        return result

    current = judge()
    if current.done or current.failed or not workloads:
        return RolloutOutcome(current, False, time.monotonic() - start)
    if since_rv is None:
        since_rv = str(max(_rv(w) for w in workloads))
    stop = threading.Event()
    stream: Generator[Any, None, None] = gw.watch(  # type: ignore[assignment]
        WATCHED_KINDS, since_rv=since_rv, timeout=timeout, stop=stop
    )
    try:
        for event in stream:
            key = (event.kind, event.name)
            if event.kind in WORKLOAD_KINDS:
                if key not in state:
                    continue
                if event.type == "DELETED" and _rv(event.obj) < _rv(state[key]):
                    continue  # an earlier object of that name (a blue-green slot's last round)
                if event.type == "DELETED":  # someone deleted it mid-rollout: it cannot finish
                    gone = dict(event.obj)
                    gone["metadata"] = {
                        **(gone.get("metadata") or {}),
                        "deletionTimestamp": "deleted",
                    }
                    state[key] = gone
                elif event.type == "SYNC" or _rv(event.obj) >= _rv(state[key]):
                    state[key] = event.obj  # (older ones were replayed from before our apply)
            elif event.kind == "Pod":
                if event.type == "DELETED":
                    pods.pop(event.name, None)
                else:
                    pods[event.name] = event.obj
            elif event.kind == "Event":
                if event.obj.get("type") == "Warning":
                    events.append(event.obj)
                if (event.obj.get("involvedObject") or {}).get("kind") != "Pod":
                    continue
            current = judge()
            if current.done or current.failed:
                stop.set()
                return RolloutOutcome(current, False, time.monotonic() - start)
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            stream.close()
    return RolloutOutcome(judge(), True, time.monotonic() - start)


class Deployer:
    """Deploys and rolls back one environment's releases through a gateway."""

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
        now: Callable[[], str] | None = None,
    ) -> None:
        self.gw = gw
        self.environment = environment
        self.namespace = namespace or gw.namespace
        self.user = user
        self.records = ReleaseStore(gw, environment, self.namespace)
        self._step = on_step or (lambda _m: None)
        self._progress = on_progress
        self._warn = on_warning or (lambda _m: None)
        self._now = now or _utc_now

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
    ) -> DeployPlan:
        """The plan of applying ``rendered``; ``with_live`` reads the cluster to say create,
        update or unchanged (dry-run apply), else actions are ``apply``. Changes nothing.

        What ``tradewise scale`` recorded on live HPAs and Deployments (a traffic profile,
        ``scale api N``, emergency-down) is kept (``core.plan.hold_scaling``) unless
        ``reset_scaling``; without ``with_live`` that costs one list per scaled kind.
        ``strategy`` blue-green puts the API in the slot that is not live (``core.bluegreen``),
        with the live API's replicas (and its traffic-profile annotations): two more reads.
        """
        releases = self.records.list() if releases is None else releases
        check_strategy(strategy)
        slot = serving = None
        if strategy == BLUE_GREEN:
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
        return replace(plan, strategy=strategy, slot=slot, live_slot=serving)

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
    ) -> DeployOutcome:
        """Plan, apply in order (server-side apply), prune, record, and wait for the rollout.

        ``atomic``: when the wait fails, roll back to the previous healthy release (and wait).
        Ctrl-C records the release as failed and raises ``AbortedError`` saying what was applied.
        ``releases``: the history, when the caller has just read it. ``reset_scaling``: apply
        the config's replica bounds even where a traffic profile holds others (see ``plan``).
        ``strategy`` blue-green: the new API slot is applied beside the live one and waited for;
        only then do the Service and the HPA switch to it, and the old slot is deleted. A new
        slot that does not become ready is deleted and traffic stays where it was.
        """
        check_strategy(strategy)
        if strategy == BLUE_GREEN and not wait:
            raise BadInputError("--strategy blue-green needs --wait: it switches only when ready")
        releases = self.records.list() if releases is None else releases
        plan = self.plan(
            rendered,
            tag,
            strict=strict,
            releases=releases,
            reset_scaling=reset_scaling,
            strategy=strategy,
        )
        for item in plan.skipped:
            self._warn(f"skipping {item.ref}: {item.reason}")
        outcome = self._release(plan, releases, change_cause, wait=wait, timeout=timeout)
        if atomic and outcome.status == rel.FAILED and outcome.progress.phase == "wait":
            try:
                target = rel.rollback_target([*self.records.list()], None)
            except NotFoundError as exc:
                outcome.message += f"; --atomic could not roll back: {exc.message}"
                return outcome
            self._step(f"--atomic: rolling back to revision {target.revision}")
            outcome.rolled_back = self.rollback_to(target, wait=True, timeout=timeout)
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
        newest = rel.latest(releases)
        strategy = target.strategy if target.strategy in (ROLLING, BLUE_GREEN) else ROLLING
        plan = self.plan(
            list(target.manifests),
            target.tag,
            releases=releases,
            reset_scaling=reset_scaling,
            strategy=strategy,
        )
        for item in plan.skipped:
            self._warn(f"skipping {item.ref}: {item.reason}")
        outcome = self._release(
            plan,
            releases,
            f"rollback to revision {target.revision}",
            wait=wait,
            timeout=timeout,
            rolling_back_from=newest,
        )
        return outcome

    def _release(
        self,
        plan: DeployPlan,
        releases: Sequence[Release],
        change_cause: str,
        *,
        wait: bool,
        timeout: float,
        rolling_back_from: Release | None = None,
    ) -> DeployOutcome:
        start = time.monotonic()
        requests_before = self.gw.request_count
        revision = rel.next_revision(releases)
        record = Release(
            revision=revision,
            environment=self.environment,
            namespace=self.namespace,
            tag=plan.tag,
            time=self._now(),
            user=self.user,
            change_cause=change_cause,
            status=rel.PENDING,
            manifests=tuple(plan.to_record),
            strategy=plan.strategy,
            slot=plan.slot,
        )
        progress = Progress(pending=[ObjectRef.of(o) for o in plan.to_apply])
        outcome = DeployOutcome(self.environment, revision, plan.tag, rel.PENDING, plan, progress)
        recorded = False
        try:
            progress.phase = "apply"
            objects = plan.to_apply
            namespaces = [o for o in objects if o["kind"] == "Namespace"]
            rest = [o for o in objects if o["kind"] != "Namespace"]
            for obj in namespaces:
                self._apply_one(obj, progress)
            if not namespaces:
                self.gw.ensure_namespace(self.namespace)
            self.records.create(record)
            recorded = True
            self._step(f"revision {revision}: applying {len(objects)} objects")
            for hold in plan.holds:
                self._step(f"{hold.kind}/{hold.name} {hold.sentence()}")
            deferred = switch_objects(rest) if plan.strategy == BLUE_GREEN else []
            if plan.slot is not None:
                self._step(
                    f"blue-green: new API slot {plan.slot} beside "
                    + (f"slot {plan.live_slot}" if plan.live_slot else "the running API")
                    + "; the Service switches once it is ready"
                )
            for obj in rest:
                if obj not in deferred:
                    self._apply_one(obj, progress)
            for hold in plan.to_reset:
                self._forget_scaling(hold)
            progress.phase = "prune"
            for ref in plan.to_prune:
                if self.gw.delete(
                    ref.kind, ref.name, namespace=ref.namespace, api_version=ref.api_version
                ):
                    self._step(f"pruned {ref}")
                progress.pruned.append(ref)
            if not wait:
                outcome.waited = False
                self._prune(plan.to_prune_late, progress)
                self._finish_ok(outcome, releases, rolling_back_from)
                outcome.message = f"applied revision {revision} (not waited for)"
                return outcome
            progress.phase = "wait"
            workloads = [a for a in progress.answers if a.get("kind") in WORKLOAD_KINDS]
            since = str(progress.watch_from or progress.max_rv)
            self._step(f"waiting up to {timeout:g}s for {len(workloads)} workloads")
            result = wait_for_rollout(
                self.gw, workloads, timeout, since_rv=since, on_change=self._progress
            )
            outcome.rollout = result
            failure = None if result.ok else _failure_message(result, timeout)
            if failure is None and plan.slot is not None:
                progress.phase = "switch"
                failure = self._switch(plan, deferred, progress)
            if failure is not None and plan.slot is not None:
                failure += self._abandon_slot(plan)
            if failure is None:
                progress.phase = "prune"
                self._prune(plan.to_prune_late, progress)
                self._finish_ok(outcome, releases, rolling_back_from)
                outcome.message = f"revision {revision} is deployed and healthy"
                if plan.slot is not None:
                    outcome.message += f" (serving from slot {plan.slot})"
            else:
                outcome.status = rel.FAILED
                outcome.message = failure
                self.records.set_status(revision, rel.FAILED, outcome.message[:1000])
            return outcome
        except KeyboardInterrupt:
            note = "interrupted (Ctrl-C) during " + progress.phase
            if plan.slot is not None and progress.phase in ("apply", "prune", "wait"):
                with contextlib.suppress(Exception):
                    note += self._abandon_slot(plan)
            if recorded:
                with contextlib.suppress(Exception):
                    self.records.set_status(revision, rel.FAILED, note)
            raise AbortedError(_interrupted_message(revision, progress, recorded)) from None
        except TradewiseError as exc:
            if plan.slot is not None and progress.phase in ("apply", "prune", "wait"):
                with contextlib.suppress(Exception):
                    exc.message += self._abandon_slot(plan)
            if recorded:
                with contextlib.suppress(Exception):
                    self.records.set_status(revision, rel.FAILED, exc.message[:200])
            done = len(progress.applied)
            total = done + len(progress.pending)
            extra = f"applied {done} of {total} objects before this failure" + (
                f"; revision {revision} is recorded as failed" if recorded else ""
            )
            exc.hint = f"{exc.hint}; {extra}" if exc.hint else extra
            raise
        finally:
            outcome.seconds = time.monotonic() - start
            outcome.requests = self.gw.request_count - requests_before

    def _prune(self, refs: Sequence[ObjectRef], progress: Progress) -> None:
        for ref in refs:
            if self.gw.delete(
                ref.kind, ref.name, namespace=ref.namespace, api_version=ref.api_version
            ):
                self._step(f"pruned {ref}")
            progress.pruned.append(ref)

    def _switch(
        self, plan: DeployPlan, deferred: Sequence[dict[str, Any]], progress: Progress
    ) -> str | None:
        """Point the API Service and HPA at the new slot, then check that the Service selects
        ready pods of it; the failure (after switching back), or None."""
        assert plan.slot is not None
        self._step(f"switching {API_SERVICE} to slot {plan.slot}")
        answers: dict[str, dict[str, Any]] = {}
        for obj in deferred:
            self._apply_one(obj, progress)
            answers[obj["kind"]] = progress.answers[-1]
        selector = ((answers.get("Service") or {}).get("spec") or {}).get("selector") or {}
        pods = []
        if selector.get(SLOT_LABEL) == plan.slot:
            text = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
            pods = ready_pods(self.gw.list("Pod", text, namespace=self.namespace))
        if pods:
            self._step(f"{API_SERVICE} serves {len(pods)} ready pods of slot {plan.slot}")
            return None
        back = slotted(deferred, plan.live_slot) if plan.live_slot else unslotted(deferred)
        for obj in back:
            with contextlib.suppress(TradewiseError):
                self.gw.apply(obj)
        return f"{API_SERVICE} selected no ready pod of slot {plan.slot} after the switch"

    def _abandon_slot(self, plan: DeployPlan) -> str:
        """Delete the new slot that did not make it; what to add to the failure message."""
        assert plan.slot is not None
        name = slot_deployment(plan.slot)
        self.gw.delete("Deployment", name, namespace=self.namespace)
        where = f"slot {plan.live_slot}" if plan.live_slot else "the running API"
        return f"; traffic stays on {where}; the new slot {plan.slot} ({name}) was deleted"

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
        progress.max_rv = max(progress.max_rv, _rv(answer))
        progress.answers.append(answer)
        progress.applied.append(ref)
        with contextlib.suppress(ValueError):
            progress.pending.remove(ref)

    def _finish_ok(
        self,
        outcome: DeployOutcome,
        releases: Sequence[Release],
        rolling_back_from: Release | None,
    ) -> None:
        self.records.set_status(outcome.revision, rel.DEPLOYED)
        for old, status in rel.after_success(releases, outcome.revision):
            if rolling_back_from is not None and old.revision == rolling_back_from.revision:
                status = rel.ROLLED_BACK
            self.records.set_status(old.revision, status)
        outcome.status = rel.DEPLOYED


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
