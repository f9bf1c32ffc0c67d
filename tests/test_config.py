"""Tests for requestforge._config: the frozen config and its fluent, validating builder."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest

from requestforge import (
    ApiKeyAuthHook,
    BasicAuthHook,
    BearerTokenAuthHook,
    CircuitBreakerRetryStrategy,
    CompositeAuthHook,
    ConfigurationError,
    CorrelationIdHook,
    ExponentialBackoffRetryStrategy,
    HttpClientConfig,
    HttpClientConfigBuilder,
    LoggingErrorHook,
    LoggingResponseHook,
    NoRetryStrategy,
    TokenAuthHook,
    TokenManager,
)
from requestforge_testing import FakeTokenProvider


def test_defaults_are_safe() -> None:
    """A default config has a finite timeout, verifies TLS and does not retry."""
    config = HttpClientConfigBuilder().build()
    assert config.base_url is None
    assert isinstance(config.default_timeout, float)
    assert 0 < config.default_timeout < float("inf")
    assert config.verify_ssl is True
    assert isinstance(config.retry_strategy, NoRetryStrategy)
    assert config.auth_hook is None
    assert (config.request_hooks, config.response_hooks, config.error_hooks) == ((), (), ())


def test_builder_sets_every_field() -> None:
    """Each fluent method lands in the built config."""
    hook = CorrelationIdHook()
    response_hook = LoggingResponseHook()
    error_hook = LoggingErrorHook()
    config = (
        HttpClientConfigBuilder()
        .with_base_url("https://api.example.com/v1/")
        .with_timeout(5)
        .with_header("X-App", "demo")
        .with_headers({"Accept": "application/json"})
        .with_verify_ssl(False)
        .with_pool_size(20, connections=4)
        .with_retry(max_retries=4)
        .with_request_hook(hook)
        .with_response_hook(response_hook)
        .with_error_hook(error_hook)
        .build()
    )
    assert config.base_url == "https://api.example.com/v1"
    assert config.default_timeout == 5.0
    assert dict(config.default_headers) == {"X-App": "demo", "Accept": "application/json"}
    assert config.verify_ssl is False
    assert (config.pool_maxsize, config.pool_connections) == (20, 4)
    assert isinstance(config.retry_strategy, ExponentialBackoffRetryStrategy)
    assert config.retry_strategy.max_retries == 4
    assert config.request_hooks == (hook,)
    assert config.response_hooks == (response_hook,)
    assert config.error_hooks == (error_hook,)


def test_config_is_frozen() -> None:
    """Assigning to a config field raises, and its headers cannot be mutated."""
    config = HttpClientConfigBuilder().with_header("A", "1").build()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.default_timeout = 1.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.default_headers["B"] = "2"  # type: ignore[index]


def test_builder_is_immutable_and_branches() -> None:
    """A with_* call returns a new builder and leaves the original untouched."""
    base = HttpClientConfigBuilder().with_base_url("https://a.example")
    one = base.with_timeout(1).build()
    two = base.with_timeout(2).build()
    assert (one.default_timeout, two.default_timeout) == (1.0, 2.0)
    assert base.build().default_timeout == HttpClientConfig().default_timeout


@pytest.mark.parametrize(
    ("timeout", "kept"), [(7, 7.0), ((3, 20), (3.0, 20.0)), ((0.5, 1.5), (0.5, 1.5))]
)
def test_timeout_is_seconds_or_a_connect_read_pair(timeout: Any, kept: Any) -> None:
    """with_timeout takes a number or a (connect, read) tuple and keeps floats."""
    assert HttpClientConfigBuilder().with_timeout(timeout).build().default_timeout == kept
    assert HttpClientConfig(default_timeout=timeout).default_timeout == kept


@pytest.mark.parametrize(
    "timeout",
    [
        0,
        -2,
        math.nan,
        math.inf,
        -math.inf,
        True,
        False,
        "30",
        None,
        (1,),
        (1, 2, 3),
        (0, 5),
        (5, math.nan),
        (None, 5),
        (5, None),
        (True, 5),
        [1, 2],
    ],
)
def test_bad_timeout_is_a_configuration_error(timeout: Any) -> None:
    """A timeout that is not finite, > 0 and a number (or a pair of them) fails build()."""
    builder = HttpClientConfigBuilder().with_timeout(timeout)
    with pytest.raises(ConfigurationError, match="timeout"):
        builder.build()
    with pytest.raises(ConfigurationError, match="timeout"):
        HttpClientConfig(default_timeout=timeout)


def test_single_auth_hook_is_used_as_is() -> None:
    """One auth method gives that hook; several combine into a CompositeAuthHook in order."""
    single = HttpClientConfigBuilder().with_bearer_token("t0k3n").build()
    assert isinstance(single.auth_hook, BearerTokenAuthHook)
    combined = HttpClientConfigBuilder().with_api_key("k3y").with_basic_auth("user", "pw").build()
    assert isinstance(combined.auth_hook, CompositeAuthHook)
    kinds = [type(h) for h in combined.auth_hook.hooks]
    assert kinds == [ApiKeyAuthHook, BasicAuthHook]


def test_token_auth_wires_a_token_auth_hook(forge_token_provider: FakeTokenProvider) -> None:
    """with_token_auth(token_manager=...) installs a TokenAuthHook over that manager."""
    manager = TokenManager(forge_token_provider)
    config = HttpClientConfigBuilder().with_token_auth(token_manager=manager).build()
    assert isinstance(config.auth_hook, TokenAuthHook)
    assert config.auth_hook.token_manager is manager
    assert forge_token_provider.fetch_count == 0  # nothing is fetched until the first request


def test_retry_strategy_instance_is_kept() -> None:
    """with_retry_strategy installs the given strategy object itself."""
    breaker = CircuitBreakerRetryStrategy(failure_threshold=2)
    config = HttpClientConfigBuilder().with_retry_strategy(breaker).build()
    assert config.retry_strategy is breaker


@pytest.mark.parametrize(
    ("builder", "message"),
    [
        (HttpClientConfigBuilder().with_base_url("api.example.com"), "base_url"),
        (HttpClientConfigBuilder().with_base_url("ftp://files.example.com"), "base_url"),
        (HttpClientConfigBuilder().with_base_url("https://"), "base_url"),
        (HttpClientConfigBuilder().with_base_url("https://a.example/?x=1"), "query"),
        (HttpClientConfigBuilder().with_timeout(0), "timeout"),
        (HttpClientConfigBuilder().with_timeout(-1.5), "timeout"),
        (HttpClientConfigBuilder().with_timeout(float("inf")), "timeout"),
        (HttpClientConfigBuilder().with_timeout(True), "timeout"),
        (HttpClientConfigBuilder().with_retry(max_retries=-1), "max_retries"),
        (HttpClientConfigBuilder().with_retry(max_retries=2, no_such_option=1), "retry"),
        (HttpClientConfigBuilder().with_header("X-Bad", "a\r\nInjected: yes"), "line break"),
        (HttpClientConfigBuilder().with_header("X-Num", 5), "string"),  # type: ignore[arg-type]
        (HttpClientConfigBuilder().with_pool_size(0), "pool_"),
        (HttpClientConfigBuilder().with_verify_ssl("/no/such/ca.pem"), "CA bundle"),
        (HttpClientConfigBuilder().with_request_hook(print), "RequestHookInterface"),  # type: ignore[arg-type]
        (
            HttpClientConfigBuilder().with_response_hook(CorrelationIdHook()),  # type: ignore[arg-type]
            "ResponseHookInterface",
        ),
        (HttpClientConfigBuilder().with_error_hook(object()), "ErrorHookInterface"),  # type: ignore[arg-type]
        (HttpClientConfigBuilder().with_auth_hook("Bearer x"), "AuthHookInterface"),  # type: ignore[arg-type]
        (HttpClientConfigBuilder().with_retry_strategy(3), "RetryStrategyInterface"),  # type: ignore[arg-type]
        (HttpClientConfigBuilder().with_bearer_token(""), "token"),
        (HttpClientConfigBuilder().with_token_auth("t0k3n"), "TokenManager"),  # type: ignore[arg-type]
    ],
)
def test_bad_input_raises_configuration_error_at_build(
    builder: HttpClientConfigBuilder, message: str
) -> None:
    """Invalid input is accepted by the fluent call and rejected, clearly, by build()."""
    with pytest.raises(ConfigurationError, match=message) as excinfo:
        builder.build()
    assert isinstance(excinfo.value, ValueError)


@pytest.mark.parametrize(
    "overrides",
    [
        {"base_url": 42},
        {"default_headers": [("A", "b")]},
        {"request_hooks": "not hooks"},
        {"pool_connections": 1.5},
    ],
)
def test_direct_construction_is_validated_too(overrides: dict[str, Any]) -> None:
    """HttpClientConfig validates itself, however it was created."""
    with pytest.raises(ConfigurationError):
        HttpClientConfig(**overrides)
