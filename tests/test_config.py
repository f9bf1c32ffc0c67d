"""Tests for requestforge._config: the frozen config and its fluent, validating builder."""

from __future__ import annotations

import dataclasses
import math
from http.cookiejar import Cookie
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
import requests
from requests.adapters import HTTPAdapter
from requests.models import DEFAULT_REDIRECT_LIMIT

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
from requestforge._secrets import known_secrets
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


# -- connection settings: proxies, client certificate, CA bundle, redirects, cookies, adapters


@pytest.fixture
def pem_files(tmp_path: Path) -> dict[str, str]:
    """Files standing in for a certificate, its key and a CA bundle (build() only checks
    that they exist), and a directory standing in for a c_rehash'd CA directory."""
    paths = {name: tmp_path / f"{name}.pem" for name in ("cert", "key", "ca")}
    for path in paths.values():
        path.write_text("-----BEGIN CERTIFICATE-----\n")
    (tmp_path / "ca-dir").mkdir()
    return {**{name: str(path) for name, path in paths.items()}, "ca_dir": str(tmp_path / "ca-dir")}


def test_builder_sets_every_connection_setting(pem_files: dict[str, str]) -> None:
    """Each connection method lands in its config field, proxies as a read-only mapping."""
    proxies = {"https": "http://proxy.internal:3128", "no_proxy": "localhost,.internal"}
    config = (
        HttpClientConfigBuilder()
        .with_proxies(proxies)
        .with_client_cert(pem_files["cert"], pem_files["key"])
        .with_ca_bundle(pem_files["ca"])
        .with_max_redirects(0)
        .with_cookies({"sid": "abc"}, shared=True)
        .with_adapter("https://api.example.com/", HTTPAdapter)
        .build()
    )
    assert dict(config.proxies) == proxies
    assert isinstance(config.proxies, MappingProxyType)
    assert config.client_cert == (pem_files["cert"], pem_files["key"])
    assert config.verify_ssl == pem_files["ca"]
    assert config.max_redirects == 0
    assert [(c.name, c.value, c.domain, c.path) for c in config.cookies] == [
        ("sid", "abc", "", "/")
    ]
    assert config.shared_cookies is True
    assert config.adapters == (("https://api.example.com/", HTTPAdapter),)
    single_file = HttpClientConfigBuilder().with_client_cert(pem_files["cert"]).build()
    assert single_file.client_cert == pem_files["cert"]


def test_connection_defaults_match_a_stock_session() -> None:
    """Without the new methods a config asks for nothing a stock session does not have."""
    config = HttpClientConfigBuilder().build()
    stock = requests.Session()
    assert HttpClientConfig.DEFAULT_MAX_REDIRECTS == DEFAULT_REDIRECT_LIMIT == 30
    assert (config.max_redirects, config.client_cert) == (stock.max_redirects, stock.cert)
    assert dict(config.proxies) == stock.proxies == {}
    assert (config.cookies, config.shared_cookies, config.adapters) == ((), False, ())


def test_ca_bundle_and_verify_ssl_set_one_field_and_the_later_wins(
    pem_files: dict[str, str],
) -> None:
    """with_ca_bundle sets verify_ssl (a file or a directory); the later call of the two wins."""
    bundle = HttpClientConfigBuilder().with_ca_bundle(pem_files["ca"])
    assert bundle.with_verify_ssl(False).build().verify_ssl is False
    assert (
        bundle.with_verify_ssl(False).with_ca_bundle(pem_files["ca_dir"]).build().verify_ssl
        == (pem_files["ca_dir"])
    )
    assert "ca_bundle" not in [f.name for f in dataclasses.fields(HttpClientConfig)]


def test_later_calls_replace_and_same_adapter_prefix_replaces() -> None:
    """with_proxies and with_cookies replace an earlier call; with_adapter replaces per prefix."""

    class Other(HTTPAdapter):
        pass

    config = (
        HttpClientConfigBuilder()
        .with_proxies({"http": "http://one:1"})
        .with_proxies({"https": "http://two:2"})
        .with_cookies({"a": "1"}, shared=True)
        .with_cookies({"b": "2"})
        .with_adapter("https://a.example/", HTTPAdapter)
        .with_adapter("https://b.example/", HTTPAdapter)
        .with_adapter("https://a.example/", Other)
        .build()
    )
    assert dict(config.proxies) == {"https": "http://two:2"}
    assert ([c.name for c in config.cookies], config.shared_cookies) == (["b"], False)
    assert config.adapters == (("https://b.example/", HTTPAdapter), ("https://a.example/", Other))


def test_cookies_are_an_immutable_copy() -> None:
    """The caller's jar or dict can change after with_cookies; the config's cookies cannot."""
    jar = requests.cookies.RequestsCookieJar()
    jar.set("sid", "abc", domain="api.example.com", path="/v1")
    given = {"theme": "dark"}
    from_jar = HttpClientConfigBuilder().with_cookies(jar)
    from_dict = HttpClientConfigBuilder().with_cookies(given)
    jar.set("sid", "changed", domain="api.example.com", path="/v1")
    given["theme"] = "light"
    (cookie,) = from_jar.build().cookies
    assert (cookie.name, cookie.value, cookie.domain, cookie.path) == (
        "sid",
        "abc",
        "api.example.com",
        "/v1",
    )
    assert [c.value for c in from_dict.build().cookies] == ["dark"]
    assert isinstance(cookie, Cookie)
    with pytest.raises(AttributeError):
        cookie.value = "forged"
    with pytest.raises(AttributeError):
        cookie.set_nonstandard_attr("HttpOnly", "")
    assert next(iter(jar)).value == "changed"


def test_connection_settings_keep_config_frozen_and_equal(pem_files: dict[str, str]) -> None:
    """Configs built alike are equal, dataclasses.replace keeps the settings, nothing mutates."""
    strategy = NoRetryStrategy()

    def build() -> HttpClientConfig:
        return (
            HttpClientConfigBuilder()
            .with_retry_strategy(strategy)
            .with_proxies({"all": "socks5h://proxy:1080"})
            .with_client_cert(pem_files["cert"])
            .with_cookies({"sid": "abc"})
            .with_adapter("https://", HTTPAdapter)
            .build()
        )

    config = build()
    assert config == build()
    assert config != dataclasses.replace(config, cookies={"sid": "other"})  # type: ignore[arg-type]
    moved = dataclasses.replace(config, base_url="https://api.example.com")
    assert (moved.proxies, moved.cookies, moved.adapters) == (
        config.proxies,
        config.cookies,
        config.adapters,
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.max_redirects = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.proxies["http"] = "http://evil:1"  # type: ignore[index]


def test_repr_hides_proxy_passwords_and_cookie_values() -> None:
    """A proxy URL's credentials and a cookie's value never appear in the config's repr."""
    config = (
        HttpClientConfigBuilder()
        .with_proxies({"https": "http://user:pa55w0rd@proxy.internal:3128"})
        .with_cookies({"sid": "c00kie-s3cret"})
        .build()
    )
    shown = repr(config)
    assert "pa55w0rd" not in shown
    assert "c00kie-s3cret" not in shown
    assert "proxy.internal:3128" in shown
    assert "sid" in shown
    assert "c00kie-s3cret" not in str(config.cookies[0])


def test_bad_proxy_url_message_hides_the_password() -> None:
    """A rejected proxy URL is quoted redacted."""
    builder = HttpClientConfigBuilder().with_proxies({"https": "ftp://user:pa55w0rd@proxy:21"})
    with pytest.raises(ConfigurationError, match="proxies") as excinfo:
        builder.build()
    assert "pa55w0rd" not in str(excinfo.value)


@pytest.mark.parametrize(
    ("builder", "message"),
    [
        (HttpClientConfigBuilder().with_proxies("http://proxy:3128"), "proxies must be a mapping"),  # type: ignore[arg-type]
        (HttpClientConfigBuilder().with_proxies({"http": "proxy:3128"}), "must be a URL"),
        (HttpClientConfigBuilder().with_proxies({"http": "ftp://proxy:21"}), "must be a URL"),
        (HttpClientConfigBuilder().with_proxies({"http": "http://"}), "must be a URL"),
        (HttpClientConfigBuilder().with_proxies({"http": "http://proxy:99999"}), "must be a URL"),
        (HttpClientConfigBuilder().with_proxies({"http": 3128}), "proxy URL string"),  # type: ignore[dict-item]
        (HttpClientConfigBuilder().with_proxies({"http": None}), "proxy URL string"),  # type: ignore[dict-item]
        (HttpClientConfigBuilder().with_proxies({"HTTPS": "http://p:1"}), "never looked up"),
        (HttpClientConfigBuilder().with_proxies({"ftp": "http://p:1"}), "never looked up"),
        (
            HttpClientConfigBuilder().with_proxies({"https://api.example.com:443": "http://p:1"}),
            "never looked up",
        ),
        (
            HttpClientConfigBuilder().with_proxies({"https://API.example.com": "http://p:1"}),
            "never looked up",
        ),
        (HttpClientConfigBuilder().with_proxies({"https://": "http://p:1"}), "never looked up"),
        (HttpClientConfigBuilder().with_proxies({1: "http://p:1"}), "keys must be strings"),  # type: ignore[dict-item]
        (HttpClientConfigBuilder().with_proxies({"no_proxy": ["a"]}), "no_proxy"),  # type: ignore[dict-item]
        (HttpClientConfigBuilder().with_client_cert("/no/such/cert.pem"), "client_cert"),
        (HttpClientConfigBuilder().with_client_cert(5), "client_cert"),  # type: ignore[arg-type]
        (HttpClientConfigBuilder().with_client_cert(""), "client_cert"),
        (HttpClientConfigBuilder().with_ca_bundle("/no/such/ca.pem"), "ca_bundle"),
        (HttpClientConfigBuilder().with_ca_bundle(True), "ca_bundle must be a path"),  # type: ignore[arg-type]
        (HttpClientConfigBuilder().with_max_redirects(-1), "max_redirects"),
        (HttpClientConfigBuilder().with_max_redirects(2.0), "max_redirects"),  # type: ignore[arg-type]
        (HttpClientConfigBuilder().with_max_redirects(True), "max_redirects"),
        (HttpClientConfigBuilder().with_max_redirects("3"), "max_redirects"),  # type: ignore[arg-type]
        (HttpClientConfigBuilder().with_cookies("sid=abc"), "cookies must be a mapping"),  # type: ignore[arg-type]
        (HttpClientConfigBuilder().with_cookies({"sid": 1}), "string values"),  # type: ignore[dict-item]
        (HttpClientConfigBuilder().with_cookies({"a b": "1"}), "invalid cookie name"),
        (HttpClientConfigBuilder().with_cookies({"": "1"}), "invalid cookie name"),
        (HttpClientConfigBuilder().with_cookies({"sid": "1; admin=1"}), "value of cookie"),
        (HttpClientConfigBuilder().with_cookies({"sid": "1\r\nX: y"}), "value of cookie"),
        (HttpClientConfigBuilder().with_cookies({}, shared="yes"), "shared_cookies"),  # type: ignore[arg-type]
        (HttpClientConfigBuilder().with_adapter("", HTTPAdapter), "prefix"),
        (HttpClientConfigBuilder().with_adapter(b"https://", HTTPAdapter), "prefix"),  # type: ignore[arg-type]
        (HttpClientConfigBuilder().with_adapter("https://", HTTPAdapter()), "callable"),  # type: ignore[arg-type]
        (HttpClientConfigBuilder().with_adapter("https://", "HTTPAdapter"), "callable"),  # type: ignore[arg-type]
    ],
)
def test_bad_connection_settings_raise_configuration_error_at_build(
    builder: HttpClientConfigBuilder, message: str
) -> None:
    """Each connection method accepts anything and build() rejects what requests would not
    use as meant, naming the setting."""
    with pytest.raises(ConfigurationError, match=message):
        builder.build()


def test_certificate_files_must_exist_and_be_files(pem_files: dict[str, str]) -> None:
    """A missing key, or a directory where a certificate file belongs, fails build()."""
    cert, directory = pem_files["cert"], pem_files["ca_dir"]
    with pytest.raises(ConfigurationError, match="client_cert key file not found"):
        HttpClientConfigBuilder().with_client_cert(cert, "/no/such/key.pem").build()
    with pytest.raises(ConfigurationError, match="client_cert must be a file"):
        HttpClientConfigBuilder().with_client_cert(directory).build()
    with pytest.raises(ConfigurationError, match="client_cert certificate"):
        HttpClientConfigBuilder().with_client_cert(directory, cert).build()


@pytest.mark.parametrize(
    "overrides",
    [
        {"max_redirects": -1},
        {"proxies": {"http": "not a url"}},
        {"client_cert": ("only-one",)},
        {"adapters": [("https://", 5)]},
        {"adapters": "https://"},
        {"cookies": 5},
        {"shared_cookies": 1},
    ],
)
def test_direct_construction_validates_connection_settings(overrides: dict[str, Any]) -> None:
    """HttpClientConfig checks its connection fields however it was created."""
    with pytest.raises(ConfigurationError):
        HttpClientConfig(**overrides)


# -- issue 11: reprs and messages show no secret -------------------------------------------


def _secret_builder() -> HttpClientConfigBuilder:
    return (
        HttpClientConfigBuilder()
        .with_base_url("https://ann:CANARY-BASEPW-1@api.example.com/v1")
        .with_header("Authorization", "Bearer CANARY-DEFAULT-BEARER-2")
        .with_header("X-Client-Secret", "CANARY-CLIENT-SECRET-3")
        .with_header("X-Partner-Key", "CANARY-PARTNER-4", secret=True)
        .with_header("Accept", "application/json")
        .with_proxies({"https": "http://bob:CANARY-PROXYPW-5@proxy:3128"})
        .with_cookies({"sid": "CANARY-COOKIE-6"})
    )


CANARIES = [f"CANARY-{name}" for name in ("BASEPW-1", "DEFAULT-BEARER-2", "CLIENT-SECRET-3")] + [
    "CANARY-PARTNER-4",
    "CANARY-PROXYPW-5",
    "CANARY-COOKIE-6",
]


def test_the_builders_repr_shows_no_secret() -> None:
    """A builder's repr hides header values, URL user info, proxy passwords and cookies."""
    shown = repr(_secret_builder())
    assert [c for c in CANARIES if c in shown] == []
    assert "application/json" in shown
    assert "x-partner-key" in shown


def test_the_configs_repr_shows_no_secret() -> None:
    """A config's repr hides the same, and still shows what is not secret."""
    shown = repr(_secret_builder().build())
    assert [c for c in CANARIES if c in shown] == []
    assert "'Accept': 'application/json'" in shown
    assert "api.example.com/v1" in shown


def test_a_secret_marked_header_is_declared() -> None:
    """with_header(secret=True) makes the name and value known secrets once built."""
    config = _secret_builder().build()
    assert "x-partner-key" in config.secret_headers
    assert "x-partner-key" in known_secrets().headers
    assert {"CANARY-PARTNER-4", "CANARY-CLIENT-SECRET-3", "CANARY-BASEPW-1"} <= (
        known_secrets().values
    )


def test_with_headers_can_mark_several_secret() -> None:
    """with_headers(..., secret=True) marks every header it sets, and only those."""
    config = (
        HttpClientConfigBuilder()
        .with_headers({"X-A": "CANARY-A-valu", "X-B": "CANARY-B-valu"}, secret=True)
        .with_header("X-C", "plain")
        .build()
    )
    assert config.secret_headers == {"x-a", "x-b"}


@pytest.mark.parametrize(
    "url",
    [
        "https://api.example.com/v1?api_key=CANARY-BASEQ-7",
        "https://api.example.com/v1#access_token=CANARY-BASEQ-7",
        "ftp://ann:CANARY-BASEQ-7@api.example.com/",
    ],
)
def test_a_bad_base_url_is_refused_without_quoting_its_secret(url: str) -> None:
    """The ConfigurationError for a base URL redacts its query and user info."""
    with pytest.raises(ConfigurationError, match="base_url") as caught:
        HttpClientConfigBuilder().with_base_url(url).build()
    assert "CANARY-BASEQ-7" not in str(caught.value)


# -- every bad setter argument is a ConfigurationError at build time ------------------------

_CONFIG_SECRET = "cfg-canary-91b2"


def test_with_headers_of_none_fails_at_build_not_at_the_call() -> None:
    """with_headers(None) and with_header([], ...) return a builder; build() then raises
    ConfigurationError (it used to be a TypeError from the setter itself)."""
    for builder in (
        HttpClientConfigBuilder().with_headers(None),  # type: ignore[arg-type]
        HttpClientConfigBuilder().with_header([], "x"),  # type: ignore[arg-type]
        HttpClientConfigBuilder().with_headers({1: "x"}),  # type: ignore[dict-item]
    ):
        repr(builder)
        with pytest.raises(ConfigurationError, match="with_header"):
            builder.build()


@pytest.mark.parametrize(
    ("builder", "names"),
    [
        (HttpClientConfigBuilder().with_timeout(1e10), "timeout"),
        (HttpClientConfigBuilder().with_timeout((1, math.inf)), "timeout (read)"),
        (HttpClientConfigBuilder().with_timeout(10**400), "timeout"),
        (HttpClientConfigBuilder().with_bearer_token(f"{_CONFIG_SECRET}…"), "token"),
        (HttpClientConfigBuilder().with_api_key(f"{_CONFIG_SECRET}\u2603"), "api_key"),
        (HttpClientConfigBuilder().with_header("X-Key", f"{_CONFIG_SECRET}…"), "X-Key"),
        (HttpClientConfigBuilder().with_header("X-Key", f" {_CONFIG_SECRET}"), "X-Key"),
        (HttpClientConfigBuilder().with_header("X Key", "v"), "header name"),
        (HttpClientConfigBuilder().with_base_url("http://[::1"), "base_url"),
        (HttpClientConfigBuilder().with_base_url("http://" + "a" * 64 + ".com"), "label"),
        (HttpClientConfigBuilder().with_base_url("http://a.com:99999"), "base_url"),
        (HttpClientConfigBuilder().with_pool_size(2, connections=0), "pool_connections"),
        (HttpClientConfigBuilder().with_pool_size("2"), "pool_"),  # type: ignore[arg-type]
        (HttpClientConfigBuilder().with_retry_strategy(None), "retry_strategy"),  # type: ignore[arg-type]
    ],
)
def test_bad_setter_arguments_are_configuration_errors(
    builder: HttpClientConfigBuilder, names: str
) -> None:
    """Values that overflowed, failed to encode or failed to parse later are refused by
    build() with a message that names the setting and never quotes a secret."""
    with pytest.raises(ConfigurationError) as info:
        builder.build()
    assert names in str(info.value)
    assert _CONFIG_SECRET not in str(info.value)
