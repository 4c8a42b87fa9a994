"""Blue-green slots as data: slotted / unslotted manifests and the live slot."""

from __future__ import annotations

from pathlib import Path

import pytest

from tradewise_ops.core.bluegreen import live_slot, other_slot, slotted, switch_objects, unslotted
from tradewise_ops.core.config import load_config
from tradewise_ops.core.render import render_environment
from tradewise_ops.errors import BadInputError

ROOT = Path(__file__).resolve().parents[2]


def _by_name(objects: list[dict]) -> dict[tuple[str, str], dict]:
    return {(o["kind"], o["metadata"]["name"]): o for o in objects}


def test_slotted_moves_the_api_into_a_slot_and_back() -> None:
    rendered = render_environment(load_config(ROOT / "tradewise.yaml"), "prod", tag="v1")
    green = _by_name(slotted(rendered, "green", replicas=7))
    dep = green[("Deployment", "tradewise-api-deployment-green")]
    assert ("Deployment", "tradewise-api-deployment") not in green
    assert dep["spec"]["replicas"] == 7
    for labels in (
        dep["metadata"]["labels"],
        dep["spec"]["selector"]["matchLabels"],
        dep["spec"]["template"]["metadata"]["labels"],
    ):
        assert labels["tradewise.io/slot"] == "green"
    svc = green[("Service", "tradewise-api-service")]
    assert svc["spec"]["selector"]["tradewise.io/slot"] == "green"
    hpa = green[("HorizontalPodAutoscaler", "tradewise-api-hpa")]
    assert hpa["spec"]["scaleTargetRef"]["name"] == "tradewise-api-deployment-green"
    assert (
        live_slot(svc) == "green" and other_slot("green") == "blue" and other_slot(None) == "blue"
    )
    assert [o["kind"] for o in switch_objects(list(green.values()))] == [
        "Service",
        "HorizontalPodAutoscaler",
    ]
    # the other slot from a slotted release, and the rolling form back: as rendered (but replicas)
    blue = _by_name(slotted(list(green.values()), "blue"))
    assert ("Deployment", "tradewise-api-deployment-blue") in blue
    back = _by_name(unslotted(list(green.values())))
    plain = _by_name(rendered)
    for key in (
        ("Service", "tradewise-api-service"),
        ("HorizontalPodAutoscaler", "tradewise-api-hpa"),
    ):
        assert back[key] == plain[key]
    assert "tradewise.io/slot" not in str(back[("Deployment", "tradewise-api-deployment")])
    # the rendered objects were not changed
    assert "tradewise.io/slot" not in str(rendered)
    with pytest.raises(BadInputError):
        slotted(rendered, "purple")
