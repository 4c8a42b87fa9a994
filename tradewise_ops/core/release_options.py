"""What a blue-green or canary deploy needs besides the rendered objects, from the options.

``check_verify_options`` checks ``--verify-url``/``--no-verify``; ``canary_plan`` builds a canary's
weights, hold and analysis; ``release_options`` the ``ReleaseOptions`` a ``Deployer.plan`` takes
(the verification plan, the preview host, how long the previous slot stays). Every bad input is
a ``BadInputError`` (exit 2) raised before anything is applied. Pure.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from tradewise_ops.core.bluegreen import CANARY, ROLLING, SLOTTED
from tradewise_ops.core.canary import CanaryAnalysis, CanaryPlan, queries_for
from tradewise_ops.core.config import Config, Environment, check_canary_steps
from tradewise_ops.core.preview import preview_hostname
from tradewise_ops.core.release_steps import ReleaseOptions
from tradewise_ops.core.render import image_reference, version_label
from tradewise_ops.core.units import parse_duration
from tradewise_ops.core.verify import SKIP, VerifyPlan, objectives, verify_plan
from tradewise_ops.errors import BadInputError


def check_verify_options(strategy: str, verify_url: str | None, no_verify: bool) -> None:
    """``--verify-url`` and ``--no-verify``: blue-green or canary only, not together, an
    http(s) URL; else ``BadInputError``."""
    if verify_url is None and not no_verify:
        return
    given = "--verify-url" if verify_url is not None else "--no-verify"
    if strategy == ROLLING:
        raise BadInputError(f"{given} goes with --strategy blue-green or canary (a rolling "
                            "deploy does not verify)")  # fmt: skip
    if verify_url is not None and no_verify:
        raise BadInputError("--verify-url and --no-verify contradict each other: give one")
    if verify_url is not None:
        parts = urlsplit(verify_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise BadInputError(f"--verify-url {verify_url!r} is not an http:// or https:// URL")


def release_options(
    cfg: Config,
    env: Environment,
    strategy: str,
    tag: str | None,
    *,
    api_digest: str | None = None,
    verify_url: str | None = None,
    no_verify: bool = False,
    canary: CanaryPlan | None = None,
) -> ReleaseOptions | None:
    """Blue-green and canary: how the new slot is previewed, verified (or, a canary, judged
    step by step) and the old one kept (``release`` of the environment, ``slo``); None for a
    rolling deploy."""
    if strategy not in SLOTTED:
        return None
    if canary is not None:
        return _canary_options(env, canary)
    settings = env.release
    verify = verify_plan(
        settings.verify,
        cfg.slo,
        namespace=env.namespace,
        verify_url=verify_url,
        preview_host=preview_hostname(env.domain, settings.preview_host),
        skip_reason="--no-verify" if no_verify else None,
        perf=cfg.performance_test,
        image=image_reference(env, "api", tag, api_digest),
    )
    return ReleaseOptions(
        verify,
        keep_seconds=settings.keep_previous_seconds,
        domain=env.domain,
        preview_host=settings.preview_host,
        preview_tls_secret=settings.preview_tls_secret,
    )


def _canary_options(env: Environment, canary: CanaryPlan) -> ReleaseOptions:
    verify = canary.verify
    if verify is None:  # judged by Prometheus: no verification load
        slo = canary.analysis.slo if canary.analysis is not None else {}
        verify = VerifyPlan(
            SKIP,
            None,
            None,
            slo.get("p95_ms", 0.0),
            slo.get("error_rate", 0.0),
            reason="the canary is judged by Prometheus",
        )
    settings = env.release
    return ReleaseOptions(
        verify,
        keep_seconds=settings.keep_previous_seconds,
        domain=env.domain,
        preview_host=settings.preview_host,
        preview_tls_secret=settings.preview_tls_secret,
        canary=canary,
    )


def canary_plan(
    cfg: Config,
    env: Environment,
    strategy: str,
    tag: str | None,
    running_tag: str | None,
    *,
    steps: str | None = None,
    hold: str | None = None,
    verify_url: str | None = None,
    no_verify: bool = False,
) -> CanaryPlan | None:
    """The canary's weights (``steps``: ``10,25,50,100``, else ``release.canary.steps``), hold
    and analysis: Prometheus at ``monitoring.prometheus_url`` comparing ``tag``'s version with
    ``running_tag``'s, else the verification load against the preview. Bad input (steps that do
    not go up to 100, a hold of 0, ``--no-verify`` without Prometheus, the same tag) is a
    ``BadInputError``; None when ``strategy`` is not canary."""
    if strategy != CANARY:
        if steps is not None or hold is not None:
            raise BadInputError("--canary-steps and --canary-hold go with --strategy canary")
        return None
    settings = env.release.canary
    weights = settings.steps
    if steps is not None:
        try:
            raw = [int(w) for w in steps.split(",") if w.strip()]
        except ValueError:
            raise BadInputError(f"--canary-steps {steps!r} are not whole percentages") from None
        weights = check_canary_steps(raw, "--canary-steps")
    seconds = settings.hold_seconds
    if hold is not None:
        seconds = parse_duration(hold, what="--canary-hold")
    url = env.prometheus_url
    if url is None:
        if no_verify:
            raise BadInputError(
                "--no-verify leaves a canary without Prometheus nothing to judge its steps by: "
                "set monitoring.prometheus_url, or let the verification load run"
            )
        verify = verify_plan(
            env.release.verify,
            cfg.slo,
            namespace=env.namespace,
            verify_url=verify_url,
            preview_host=None if verify_url else _preview_host(env),
            perf=cfg.performance_test,
            image=image_reference(env, "api", tag, None),
        )
        return CanaryPlan(weights, seconds, verify=verify, domain=env.domain)
    if verify_url is not None:
        raise BadInputError(
            "--verify-url goes with a canary only without Prometheus: this one is judged from "
            f"the real traffic at {url}"
        )
    new, old = version_label(tag), version_label(running_tag)
    if new is None or old is None or new == old:
        raise BadInputError(
            f"--strategy canary needs a tag other than the running one's ({old or 'none'}): the "
            "analysis tells the versions apart by it"
        )
    p95, rate = objectives(env.release.verify, cfg.slo)
    analysis = CanaryAnalysis(
        prometheus_url=url,
        canary_version=new,
        stable_version=old,
        canary_queries=queries_for(settings, new, env.namespace),
        stable_queries=queries_for(settings, old, env.namespace),
        p95_ms=p95,
        error_rate=rate,
        p95_percent=settings.p95_percent,
        p95_floor_ms=settings.p95_floor_ms,
        error_rate_points=settings.error_rate_points,
    )
    return CanaryPlan(weights, seconds, analysis=analysis, domain=env.domain)


def _preview_host(env: Environment) -> str | None:
    return preview_hostname(env.domain, env.release.preview_host)
