"""Verifying a new slot through its preview: smoke checks, then Locust with the SLOs.

``ReleaseVerifier.verify`` carries out a ``core.verify.VerifyPlan``. In ``url`` mode the smoke
checks are plain GETs from this process and the load runs in Locust's child process
(``adapters.loadtest.LoadRunner``); when the URL is the preview host and it does not answer from
here, or in ``cluster`` mode, the load runs as the in-cluster load test does (Locust master and
worker Jobs, ``adapters.loadtest.run_in_cluster``) against the preview Service, with the smoke
paths among its tasks (judged by their status there: a Job cannot check the answers' shape).

Ctrl-C (or SIGTERM turned into it) during the load stops Locust and raises ``KeyboardInterrupt``,
so the release that asked is abandoned, never switched.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from tradewise_ops.core.loadplan import LoadSpec, TaskSpec
from tradewise_ops.core.verify import (
    CLUSTER,
    SmokeCheck,
    SmokeResult,
    Verification,
    VerifyPlan,
    check_answer,
    summarize_load,
)
from tradewise_ops.errors import BadInputError, UnreachableError

SMOKE_TIMEOUT = 10.0


class ReleaseVerifier:
    """Verifies releases of one environment: from here, or as Jobs in its namespace."""

    def __init__(
        self,
        gateway: Any,
        environment: str,
        namespace: str,
        *,
        on_line: Callable[[str], None] | None = None,
        on_interval: Callable[[Any], None] | None = None,
    ) -> None:
        self.gateway = gateway
        self.environment = environment
        self.namespace = namespace
        self._line = on_line or (lambda _m: None)
        self._interval = on_interval

    def verify(self, plan: VerifyPlan) -> Verification:
        """Run ``plan``: the verdict with its numbers (``passed`` False on a failed smoke check
        or a missed SLO). ``UnreachableError`` when ``--verify-url`` does not answer."""
        if plan.spec is None or plan.url is None:
            raise BadInputError("nothing to verify: the plan skips the verification")
        if plan.mode == CLUSTER:
            return self._in_cluster(plan, plan.url)
        try:
            smoke = self.smoke(plan.url, plan.smoke)
        except UnreachableError:
            if plan.fallback_url is None:
                raise
            self._line(
                f"{plan.url} does not answer from here: verifying in the cluster against "
                f"{plan.fallback_url}"
            )
            return self._in_cluster(plan, plan.fallback_url)
        failed = [s for s in smoke if s.problem]
        if failed:
            return Verification(
                url=plan.url,
                passed=False,
                smoke=smoke,
                slo=plan.slo,
                problem=f"smoke check {failed[0].name}: {failed[0].problem}",
                mode=plan.mode,
            )
        self._line("smoke checks passed: " + ", ".join(f"{s.name} {s.status}" for s in smoke))
        return self._load(plan, smoke)

    # -- smoke ---------------------------------------------------------------------------
    def smoke(self, base: str, checks: tuple[SmokeCheck, ...]) -> list[SmokeResult]:
        """GET each check's path once; the first that cannot be reached at all raises
        ``UnreachableError`` (nothing answers there)."""
        out = []
        for check in checks:
            url = base + check.path
            start = time.monotonic()
            request = urllib.request.Request(url, headers={"User-Agent": "tradewise-verify"})
            try:
                with urllib.request.urlopen(request, timeout=SMOKE_TIMEOUT) as response:
                    status, body = int(response.status), response.read()
            except urllib.error.HTTPError as exc:
                status, body = int(exc.code), exc.read()
            except (urllib.error.URLError, OSError, ValueError) as exc:
                reason = getattr(exc, "reason", exc)
                raise UnreachableError(f"the preview at {base} does not answer: {reason}") from None
            seconds = time.monotonic() - start
            out.append(
                SmokeResult(
                    check.name, check.path, status, seconds, check_answer(check, status, body)
                )
            )
        return out

    # -- load from here ------------------------------------------------------------------
    def _load(self, plan: VerifyPlan, smoke: list[SmokeResult]) -> Verification:
        from tradewise_ops.adapters.loadtest import LoadGeneratorError, LoadRunner
        from tradewise_ops.core.compare import load_summary
        from tradewise_ops.core.loadreport import LoadReport, run_totals
        from tradewise_ops.core.slo import evaluate

        spec = plan.spec
        assert spec is not None
        self._line(
            f"verification load: {spec.users} users against {spec.host} for "
            f"{spec.duration_seconds:g}s"
        )
        runner = LoadRunner()
        try:
            result = runner.run(spec, on_interval=self._interval)
        except LoadGeneratorError:
            if runner.stopped:  # Ctrl-C before the generator reported anything
                raise KeyboardInterrupt from None
            raise
        if result.aborted:
            raise KeyboardInterrupt
        totals = run_totals(result.intervals)
        verdict = evaluate(
            requests=totals.requests,
            failures=totals.failures,
            p95_ms=totals.latency.percentile(95),
            max_p95_ms=plan.p95_ms,
            max_error_rate=plan.error_rate,
        )
        report = LoadReport(
            target=spec.host,
            kind=spec.kind,
            started_at=result.started_at,
            planned_seconds=spec.duration_seconds,
            users=spec.users,
            spawn_rate=spec.spawn_rate,
            workers=spec.workers,
            intervals=result.intervals,
            verdict=verdict,
            stopped_by=result.stopped_by,
            errors=result.errors,
            generator=result.generator(),
            settings=spec.settings(),
        ).to_dict()
        p95, rate, rps = summarize_load(report["total"])
        return Verification(
            url=plan.url,
            passed=verdict.met,
            smoke=smoke,
            p95_ms=p95,
            error_rate=rate,
            rps=rps,
            requests=totals.requests,
            slo=plan.slo,
            load=load_summary(report),
            problem="" if verdict.met else verdict.sentence(),
            mode=plan.mode,
        )

    # -- load from the cluster -----------------------------------------------------------
    def _in_cluster(self, plan: VerifyPlan, url: str) -> Verification:
        from tradewise_ops.adapters.loadtest import run_in_cluster
        from tradewise_ops.core.loadplan import render_locust_jobs
        from tradewise_ops.core.slo import evaluate

        assert plan.spec is not None
        smoke_tasks = tuple(TaskSpec(c.path, (c.path,), 1) for c in plan.smoke)
        spec: LoadSpec = replace(plan.spec, host=url, tasks=plan.spec.tasks + smoke_tasks)
        if plan.image is None:
            raise BadInputError("an in-cluster verification needs the image of the new version")
        run_id = time.strftime("%Y%m%d%H%M%S") + "-" + uuid.uuid4().hex[:6]
        objects = render_locust_jobs(
            spec,
            namespace=self.namespace,
            environment=self.environment,
            image=plan.image,
            run_id=run_id,
            workers=1,
        )
        self._line(
            f"verification load in the cluster: Locust Jobs in {self.namespace}, {spec.users} "
            f"users against {url} for {spec.duration_seconds:g}s"
        )
        run = run_in_cluster(self.gateway, objects, timeout_seconds=spec.duration_seconds + 300)
        if run.aborted:
            raise KeyboardInterrupt
        summary = run.summary
        total = summary.get("total") or {}
        requests = int(total.get("requests") or 0)
        verdict = evaluate(
            requests=requests,
            failures=int(total.get("failures") or 0),
            p95_ms=total.get("p95_ms"),
            max_p95_ms=plan.p95_ms,
            max_error_rate=plan.error_rate,
        )
        endpoints = summary.get("endpoints") or {}
        smoke = []
        problem = ""
        for check in plan.smoke:
            counts = endpoints.get(check.path) or {}
            failures = int(counts.get("failures") or 0)
            issue = None
            if not counts.get("requests"):
                issue = f"{check.path} was not measured"
            elif failures:
                issue = f"{check.path} failed {failures} of {counts['requests']} requests"
            smoke.append(SmokeResult(check.name, check.path, None, 0.0, issue))
            if issue and not problem:
                problem = f"smoke check {check.name}: {issue}"
        p95, rate, rps = summarize_load(total)
        passed = verdict.met and not problem
        load: dict[str, Any] = {
            "v": 1,
            "kind": spec.kind,
            "target": url,
            "ran_seconds": summary.get("ran_seconds"),
            "users": spec.users,
            "settings": spec.settings(),
            "total": total,
            "endpoints": endpoints,
            "intervals": [],
            "verdict": verdict.to_dict(),
        }
        return Verification(
            url=url,
            passed=passed,
            smoke=smoke,
            p95_ms=p95,
            error_rate=rate,
            rps=rps,
            requests=requests,
            slo=plan.slo,
            job=run.master_job,
            load=load,
            problem=problem or ("" if verdict.met else verdict.sentence()),
            mode=CLUSTER,
        )
