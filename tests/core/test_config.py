"""The config loader: the default file loads; every bad value is named with file, key, allowed."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tradewise_ops.core.config import load_config, parse_config
from tradewise_ops.errors import BadInputError, ConfigError
from tradewise_ops.resources import data_path

SOURCE = Path("/etc/tw/tradewise.yaml")


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    return yaml.safe_load(data_path("tradewise.yaml").read_text(encoding="utf-8"))


def parse(raw: dict[str, Any], change: Callable[[dict[str, Any]], Any]) -> Any:
    doc = copy.deepcopy(raw)
    change(doc)
    return parse_config(doc, source=SOURCE, environ={})


def test_the_default_config_loads_with_the_seed_numbers(raw: dict[str, Any]) -> None:
    config = parse_config(raw, source=SOURCE, environ={})
    assert config.default_environment == "local"
    assert [e for e in config.environments] == ["local", "compose", "staging", "prod"]
    prod = config.environment("production")
    assert prod.name == "prod" and prod.kind == "kubernetes" and prod.require_pinned_tag
    assert prod.namespace == "tradewise-ai"
    api = prod.components["api"].autoscaling
    assert api is not None and (api.min_replicas, api.max_replicas, api.p95_ms) == (3, 20, 500)
    worker = prod.components["worker"].autoscaling
    assert worker is not None and (worker.min_replicas, worker.max_replicas) == (2, 10)
    assert (worker.cpu_percent, worker.memory_percent, worker.queue_per_worker) == (75, 85, 5)
    assert prod.components["postgres"].resources.qos_class == "Guaranteed"
    assert prod.components["api"].resources.qos_class == "Burstable"
    assert prod.components["postgres"].storage == "20Gi"
    assert prod.components["redis"].storage == "5Gi"
    staging = config.environment("staging").components["api"].autoscaling
    assert staging is not None and (staging.min_replicas, staging.max_replicas) == (2, 6)
    profiles = {p.name: (p.api, p.workers) for p in config.profiles.values()}
    assert profiles == {"low": (2, 1), "medium": (5, 2), "high": (10, 4), "peak": (15, 6)}
    assert (config.slo.p95_ms, config.slo.error_rate) == (500, 0.01)
    assert (config.slo.scale_up_seconds, config.slo.recovery_seconds) == (120, 60)
    assert prod.postgres_image == "postgres:15" and prod.redis_image == "redis:7"
    assert (prod.ingress_namespace, prod.monitoring_namespace) == ("ingress-nginx", "monitoring")


def test_environment_variables_override(raw: dict[str, Any]) -> None:
    config = parse_config(
        raw,
        source=SOURCE,
        environ={"TRADEWISE_NAMESPACE": "tw-test", "TRADEWISE_KUBERNETES_VERSION": "1.30"},
    )
    assert config.environment("prod").namespace == "tw-test"
    assert config.kubernetes_version == "1.30"


def test_local_broker_defaults_to_auto_and_the_environment_variable_overrides(
    raw: dict[str, Any],
) -> None:
    assert parse_config(raw, source=SOURCE, environ={}).environment("local").local.broker == "auto"
    doc = copy.deepcopy(raw)
    doc["environments"]["local"]["local"]["broker"] = "redis"
    assert parse_config(doc, source=SOURCE, environ={}).environment("local").local.broker == "redis"
    forced = parse_config(doc, source=SOURCE, environ={"TRADEWISE_LOCAL_BROKER": "SQLite"})
    assert forced.environment("local").local.broker == "sqlite"
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, source=SOURCE, environ={"TRADEWISE_LOCAL_BROKER": "kafka"})
    assert (
        "TRADEWISE_LOCAL_BROKER (environment) is 'kafka'; expected one of auto, redis, sqlite"
        in (str(caught.value))
    )
    assert caught.value.exit_code == 2


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = doc
        for part in parents:
            node = node.setdefault(part, {}) if not part.isdigit() else node[int(part)]
        if last.isdigit():
            node[int(last)] = value
        else:
            node[last] = value

    return change


BAD: list[tuple[str, Any, str]] = [
    ("environments.prod.kind", "swarm", "environments.prod.kind is 'swarm'; expected one of "
     "kubernetes, compose, local"),
    ("environments.prod.namespace", "Trade_Wise", "environments.prod.namespace is 'Trade_Wise'; "
     "expected a DNS-1123 label"),
    ("environments.prod.components.api.autoscaling", {"min": 9, "max": 3},
     "environments.prod.components.api.autoscaling.min is 9; expected at most autoscaling.max (3)"),
    ("environments.prod.components.api.autoscaling", {"min": 0, "max": 3},
     "environments.prod.components.api.autoscaling.min is 0; expected a whole number >= 1"),
    ("environments.prod.components.api.autoscaling", {"min": 1, "max": 3, "cpu_percent": 170},
     "environments.prod.components.api.autoscaling.cpu_percent is 170; expected a whole number "
     "<= 100"),
    ("defaults.components.api.resources.requests.cpu", "lots",
     "defaults.components.api.resources.requests.cpu is 'lots'; expected a CPU "
     "quantity like 500m or 1"),
    ("defaults.components.worker.resources.requests.memory", "4Gi",
     "defaults.components.worker.resources.requests.memory is '4Gi'; expected at most "
     "the limit 1Gi"),
    ("defaults.components.postgres.storage", "twenty gigs",
     "defaults.components.postgres.storage is 'twenty gigs'; expected a memory "
     "quantity"),
    ("defaults.components.precompute.autoscaling", {"min": 1, "max": 2},
     "defaults.components.precompute.autoscaling is {'min': 1, 'max': 2}; expected "
     "autoscaling only on api and worker"),
    ("defaults.images.postgres", "postgres",
     "defaults.images.postgres is 'postgres'; expected an image pinned by a tag other "
     "than latest or by a digest"),
    ("defaults.images.redis", "redis:latest",
     "defaults.images.redis is 'redis:latest'; expected an image pinned"),
    ("defaults.ingress_namespace", "Ingress NGINX",
     "defaults.ingress_namespace is 'Ingress NGINX'; expected a DNS-1123 label"),
    ("environments.prod.confirm", "yes", "environments.prod.confirm is 'yes'; expected true or "
     "false"),
    ("environments.prod.url", "tradewise.example.com",
     "environments.prod.url is 'tradewise.example.com'; expected an http:// or https:// URL"),
    ("default_environment", "qa", "default_environment is 'qa'; expected one of local, compose, "
     "staging, prod"),
    ("kubernetes_version", "v1-37", "kubernetes_version is 'v1-37'; expected a version like 1.37"),
    ("profiles.low.api", -1, "profiles.low.api is -1; expected a whole number >= 0"),
    ("profiles.low.api", "two", "profiles.low.api is 'two'; expected a whole number"),
    ("schedules.0.profile", "turbo", "schedules[0].profile is 'turbo'; expected one of low, "
     "medium, high, peak"),
    ("schedules.0.cron", "every morning", "schedules[0].cron is 'every morning'; expected a "
     "five-field cron expression"),
    ("schedules.0.timezone", "Mars/Olympus", "schedules[0].timezone is 'Mars/Olympus'; expected "
     "an IANA time zone"),
    ("schedules.0.name", "Market Open", "schedules[0].name is 'Market Open'; expected a "
     "lower-case name"),
    ("slo.error_rate", 5, "slo.error_rate is 5; expected a fraction between 0 and 1"),
    ("slo.p95_ms", 0, "slo.p95_ms is 0; expected a number above 0"),
    ("load_test.endpoint", "api/health", "load_test.endpoint is 'api/health'; expected a path "
     "starting with '/'"),
    ("load_test.duration", "a minute", "load_test.duration is 'a minute'; expected a duration"),
    ("performance_test.hot_symbols", ["aapl"], "performance_test.symbols is 'aapl'; expected "
     "upper-case ticker symbols"),
    ("environments.staging.aliases", ["prod"], "environments.staging.aliases is 'prod'; expected "
     "a name no other environment uses"),
    ("environments.local.local.broker", "rabbitmq", "environments.local.local.broker is "
     "'rabbitmq'; expected one of auto, redis, sqlite"),
    ("environments.local.local.broker", True, "environments.local.local.broker is True; "
     "expected one of auto, redis, sqlite"),
    # replica counts: within int32 (what Kubernetes accepts) and max_replicas
    ("environments.prod.max_replicas", 2**31, "environments.prod.max_replicas is 2147483648; "
     "expected a whole number <= 2147483647 (the most Kubernetes accepts)"),
    ("environments.prod.components.api.autoscaling", {"min": 3, "max": 60},
     "environments.prod.components.api.autoscaling.max is 60; expected at most max_replicas (50)"),
    ("environments.prod.components.api.autoscaling", {"min": 2**31, "max": 3},
     "environments.prod.components.api.autoscaling.min is 2147483648; expected a whole number "
     "<= 2147483647"),
    ("environments.prod.components.precompute.replicas", 51,
     "environments.prod.components.precompute.replicas is 51; expected at most max_replicas (50)"),
    ("environments.prod.components.api.replicas", 25,
     "environments.prod.components.api.replicas is 25; expected at most autoscaling.max (20)"),
    ("defaults.components.worker.replicas", 10**12, "defaults.components.worker.replicas is "
     "1000000000000; expected a whole number <= 2147483647"),
    ("profiles.peak.api", 2**31, "profiles.peak.api is 2147483648; expected a whole number "
     "<= 2147483647 (the most Kubernetes accepts)"),
    ("profiles.peak.workers", 10**40, "profiles.peak.workers is 1000000000000000000000000000000"
     "0000000000; expected a whole number <= 2147483647"),
    # Secret names
    ("defaults.secret_name", "Tradewise_Secrets", "defaults.secret_name is 'Tradewise_Secrets'; "
     "expected the name of an existing Secret: a DNS-1123 subdomain"),
    ("environments.prod.secret_name", "a" * 254, "environments.prod.secret_name is 'aaaaaaa"),
    ("environments.prod.tls_secret", "tls secret", "environments.prod.tls_secret is 'tls secret'; "
     "expected the name of an existing Secret"),
    ("environments.prod.registry", "https://registry.example.com/tw", "environments.prod.registry "
     "is 'https://registry.example.com/tw'; expected a registry host and path"),
]  # fmt: skip


@pytest.mark.parametrize(("path", "value", "message"), BAD, ids=[b[0] for b in BAD])
def test_a_bad_value_names_file_key_value_and_what_is_allowed(
    raw: dict[str, Any], path: str, value: Any, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(raw, _set(path, value))
    assert str(caught.value).startswith(f"{SOURCE}: ")
    assert message in str(caught.value)
    assert caught.value.exit_code == 2
    if path.startswith("defaults."):
        assert str(caught.value).endswith("(inherited by environments.local)")


def test_an_override_is_named_by_the_environment_key(raw: dict[str, Any]) -> None:
    def change(doc: dict[str, Any]) -> None:
        doc["environments"]["staging"]["components"]["api"]["autoscaling"]["max"] = "six"

    with pytest.raises(ConfigError) as caught:
        parse(raw, change)
    assert "environments.staging.components.api.autoscaling.max is 'six'" in str(caught.value)
    assert "inherited" not in str(caught.value)


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("surprise", 1, "unknown key 'surprise'; allowed here: default_environment, defaults"),
        ("environments.prod.replicas", 3, "unknown key 'environments.prod.replicas'; allowed"),
        ("defaults.images.nginx", "nginx:1", "unknown key 'defaults.images.nginx'; allowed here: "
         "api, maintenance, postgres, redis, worker"),
        ("slo.p99_ms", 900, "unknown key 'slo.p99_ms'; allowed here: error_rate, p95_ms"),
    ],
)  # fmt: skip
def test_an_unknown_key_names_the_keys_allowed(
    raw: dict[str, Any], path: str, value: Any, message: str
) -> None:
    with pytest.raises(ConfigError, match="unknown key") as caught:
        parse(raw, _set(path, value))
    assert message in str(caught.value)


def test_no_environments(raw: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="environments is missing; expected a mapping"):
        parse(raw, lambda doc: doc.pop("environments"))


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=f"config file {tmp_path / 'nope.yaml'} does not exist"):
        load_config(tmp_path / "nope.yaml", environ={})


def test_invalid_yaml_names_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "tradewise.yaml"
    path.write_text("environments:\n  prod: {kind: kubernetes\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"{path} is not valid YAML at line \d+, column \d+"):
        load_config(path, environ={})


def test_a_document_that_is_not_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "tradewise.yaml"
    path.write_text("- just\n- a list\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="expected a mapping of keys to values"):
        load_config(path, environ={})


def test_unknown_environment_and_profile_list_the_choices(raw: dict[str, Any]) -> None:
    config = parse_config(raw, source=SOURCE, environ={})
    with pytest.raises(BadInputError, match=r"use one of local, compose, staging, prod \(prod"):
        config.environment("qa")
    with pytest.raises(BadInputError, match="use one of low, medium, high, peak"):
        config.profile("turbo")


def test_image_digests_are_accepted_for_third_party_images(raw: dict[str, Any]) -> None:
    digest = "redis@sha256:" + "0f" * 32
    config = parse(raw, _set("defaults.images.redis", digest))
    assert config.environment("prod").redis_image == digest


def test_replica_counts_at_the_limits_load(raw: dict[str, Any]) -> None:
    def change(doc: dict[str, Any]) -> None:
        doc["environments"]["prod"]["max_replicas"] = 2**31 - 1
        doc["environments"]["prod"]["components"] = {"api": {"autoscaling": {"max": 2**31 - 1}}}
        doc["profiles"]["peak"]["api"] = 2**31 - 1

    config = parse(raw, change)
    prod = config.environment("prod")
    assert prod.max_replicas == 2**31 - 1
    scaling = prod.components["api"].autoscaling
    assert scaling is not None and scaling.max_replicas == 2**31 - 1
    assert config.profile("peak").api == 2**31 - 1


SECRET = "s3cr3t-Pw"


@pytest.mark.parametrize(
    "value",
    [
        f"postgresql://tradewise:{SECRET}@postgres:5432/tradewise",
        f"redis://:{SECRET}@redis:6379/0",
        f"password={SECRET}",
        f"ops:{SECRET}@tradewise",
    ],
)
def test_a_secret_name_holding_a_credential_is_refused_without_echoing_it(
    raw: dict[str, Any], value: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(raw, _set("environments.prod.secret_name", value))
    message = str(caught.value)
    assert message.startswith(f"{SOURCE}: environments.prod.secret_name is a value that looks like")
    assert "a DNS-1123 subdomain" in message and caught.value.exit_code == 2
    assert SECRET not in message


def test_a_registry_with_credentials_is_refused_without_echoing_them(raw: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(raw, _set("defaults.registry", f"ops:{SECRET}@registry.example.com/tw"))
    assert "defaults.registry is a value that looks like a credential (not shown)" in str(
        caught.value
    )
    assert SECRET not in str(caught.value)
    with pytest.raises(ConfigError, match=r"TRADEWISE_REGISTRY \(environment\)") as caught:
        parse_config(raw, source=SOURCE, environ={"TRADEWISE_REGISTRY": f"https://u:{SECRET}@r/x"})
    assert SECRET not in str(caught.value)
    config = parse_config(raw, source=SOURCE, environ={"TRADEWISE_REGISTRY": "127.0.0.1:5000/tw"})
    assert config.environment("prod").registry == "127.0.0.1:5000/tw"


def test_a_file_that_is_not_utf8_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "tradewise.yaml"
    text = data_path("tradewise.yaml").read_bytes()
    path.write_bytes(text.replace(b"# Traffic-based scaling", "# Café".encode("latin-1"), 1))
    line = text[: text.index(b"# Traffic-based scaling")].count(b"\n") + 1
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    assert str(caught.value) == (
        f"config file {path} is not UTF-8 text: byte 0xe9 at line {line} (invalid continuation "
        "byte); save it as UTF-8"
    )
    assert caught.value.exit_code == 2


def test_a_number_too_long_for_yaml_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "tradewise.yaml"
    text = data_path("tradewise.yaml").read_text(encoding="utf-8")
    path.write_text(text.replace("max_replicas: 50", "max_replicas: " + "9" * 5000), "utf-8")
    with pytest.raises(ConfigError, match=f"{path} holds a value YAML cannot read") as caught:
        load_config(path, environ={})
    assert len(str(caught.value)) < 400


DUPLICATES = [
    ("environments:\n  prod: {kind: kubernetes}\n  prod: {kind: compose}\n", "'prod'", 2, 3),
    ("default_environment: local\nslo:\n  p95_ms: 500\n  error_rate: 0.01\n  p95_ms: 900\n",
     "'p95_ms'", 3, 5),
    ("profiles:\n  low: {api: 2, workers: 1, api: 3}\n", "'api'", 2, 2),
    ("default_environment: local\ndefault_environment: prod\n", "'default_environment'", 1, 2),
]  # fmt: skip


@pytest.mark.parametrize(("text", "key", "first", "again"), DUPLICATES)
def test_a_duplicate_key_names_the_key_and_both_lines(
    tmp_path: Path, text: str, key: str, first: int, again: int
) -> None:
    path = tmp_path / "tradewise.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    assert str(caught.value).startswith(
        f"{path}: duplicate key {key} at line {first} and again at line {again}"
    )
    assert caught.value.exit_code == 2


def test_the_default_file_has_no_duplicate_and_merge_keys_still_work(tmp_path: Path) -> None:
    text = data_path("tradewise.yaml").read_text(encoding="utf-8")
    load_config(data_path("tradewise.yaml"), environ={})
    assert "environments:\n  local:\n" in text and "\n  compose:\n" in text
    text = text.replace("environments:\n  local:\n", "environments:\n  local: &local\n")
    text = text.replace(
        "\n  compose:\n", '\n  local2: {<<: *local, url: "http://127.0.0.1:9000"}\n  compose:\n'
    )
    path = tmp_path / "tradewise.yaml"
    path.write_text(text, encoding="utf-8")
    config = load_config(path, environ={})  # the merged "url" is overridden, not a duplicate
    assert config.environment("local2").url == "http://127.0.0.1:9000"
    assert config.environment("local2").kind == "local"
