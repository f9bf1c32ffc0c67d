"""Tests for requestforge._auth: the built-in auth hooks and how they combine."""

from __future__ import annotations

import base64
import logging
from typing import Any

import pytest

from requestforge import (
    ApiKeyAuthHook,
    AuthHookInterface,
    BasicAuthHook,
    BearerTokenAuthHook,
    CompositeAuthHook,
    ConfigurationError,
    HttpClient,
    HttpClientConfigBuilder,
    HttpMethod,
    HttpRequest,
    HttpResponse,
    RequestContext,
    Secrets,
    TokenAuthHook,
    TokenManager,
)
from requestforge._secrets import known_secrets
from requestforge_testing import FakeTokenProvider


def _request(**kwargs: Any) -> HttpRequest:
    return HttpRequest(HttpMethod.GET, "https://api.example.com/v1/items", **kwargs)


def _apply(hook: AuthHookInterface, request: HttpRequest | None = None) -> HttpRequest:
    request = request if request is not None else _request()
    return hook.before_request(request, RequestContext(request=request))


def _unauthorized(hook: AuthHookInterface) -> bool:
    request = _request()
    response = HttpResponse(401, {}, b"", request.url, request=request)
    return hook.on_unauthorized(request, response, RequestContext(request=request))


# -- BearerTokenAuthHook ------------------------------------------------------------------


def test_bearer_sets_authorization_header() -> None:
    """The token is sent as 'Authorization: Bearer <token>' on a copy of the request."""
    original = _request(headers={"Accept": "application/json"})
    sent = _apply(BearerTokenAuthHook("t0k3n"), original)
    assert sent.header("Authorization") == "Bearer t0k3n"
    assert sent.header("Accept") == "application/json"
    assert original.header("Authorization") is None


def test_bearer_replaces_an_existing_authorization_header() -> None:
    """A caller's Authorization header, in any case, is replaced rather than duplicated."""
    sent = _apply(BearerTokenAuthHook("t0k3n"), _request(headers={"authorization": "Basic old"}))
    assert dict(sent.headers) == {"Authorization": "Bearer t0k3n"}


def test_bearer_repr_hides_token() -> None:
    """repr shows the class and a placeholder, never the token."""
    hook = BearerTokenAuthHook("t0k3n-s3cr3t")
    assert repr(hook) == "BearerTokenAuthHook(token='[REDACTED]')"
    assert "t0k3n" not in str(hook)


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("", "token must not be empty"),
        ("   ", "token must not be empty"),
        (None, "token must be a string"),
        (123, "token must be a string"),
        (b"t0k3n", "token must be a string"),
        ("t0k\r\nX-Injected: 1", "line break"),
        ("Bearer t0k3n", "without the 'Bearer ' prefix"),
    ],
)
def test_bearer_rejects_bad_tokens(token: Any, message: str) -> None:
    """Unusable tokens raise ConfigurationError at construction, without quoting the token."""
    with pytest.raises(ConfigurationError, match=message) as excinfo:
        BearerTokenAuthHook(token)
    if isinstance(token, str) and token.strip():
        assert token not in str(excinfo.value)


def test_static_hooks_never_renew() -> None:
    """Static credentials cannot be renewed, so a 401 is not retried."""
    assert _unauthorized(BearerTokenAuthHook("t")) is False
    assert _unauthorized(ApiKeyAuthHook("k")) is False
    assert _unauthorized(BasicAuthHook("u", "p")) is False


# -- ApiKeyAuthHook -----------------------------------------------------------------------


def test_api_key_goes_in_x_api_key_by_default() -> None:
    """Without options the key is sent in the X-API-Key header, not in the query."""
    sent = _apply(ApiKeyAuthHook("k3y"))
    assert sent.header("X-API-Key") == "k3y"
    assert dict(sent.params) == {}


def test_api_key_custom_header_name() -> None:
    """header_name chooses the header, replacing one the request already had in any case."""
    hook = ApiKeyAuthHook("k3y", header_name="Api-Key")
    sent = _apply(hook, _request(headers={"api-key": "old"}))
    assert dict(sent.headers) == {"Api-Key": "k3y"}
    assert hook.header_name == "Api-Key"


def test_api_key_in_query_merges_params() -> None:
    """With query_param the key joins the existing params instead of a header."""
    hook = ApiKeyAuthHook("k3y", query_param="api_key")
    original = _request(params={"page": 2, "api_key": "old"})
    sent = _apply(hook, original)
    assert dict(sent.params) == {"page": 2, "api_key": "k3y"}
    assert sent.header("X-API-Key") is None
    assert dict(original.params) == {"page": 2, "api_key": "old"}
    with pytest.raises(TypeError):
        sent.params["x"] = 1  # type: ignore[index]


def test_api_key_repr_hides_key() -> None:
    """repr names where the key goes but never the key."""
    assert repr(ApiKeyAuthHook("k3y-s3cr3t")) == (
        "ApiKeyAuthHook(api_key='[REDACTED]', header_name='X-API-Key')"
    )
    assert repr(ApiKeyAuthHook("k3y-s3cr3t", query_param="key")) == (
        "ApiKeyAuthHook(api_key='[REDACTED]', query_param='key')"
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"api_key": ""}, "api_key must not be empty"),
        ({"api_key": 42}, "api_key must be a string"),
        ({"api_key": "k\n"}, "api_key must not contain a line break"),
        ({"api_key": "k", "header_name": ""}, "header_name"),
        ({"api_key": "k", "header_name": "X Key"}, "header_name"),
        ({"api_key": "k", "header_name": "X-Key:"}, "header_name"),
        ({"api_key": "k", "header_name": None}, "header_name"),
        ({"api_key": "k", "query_param": ""}, "query_param"),
        ({"api_key": "k", "query_param": 5}, "query_param"),
    ],
)
def test_api_key_rejects_bad_input(kwargs: dict[str, Any], message: str) -> None:
    """Empty or mistyped keys and names raise ConfigurationError at construction."""
    with pytest.raises(ConfigurationError, match=message):
        ApiKeyAuthHook(**kwargs)


# -- BasicAuthHook ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("username", "password", "encoded"),
    [
        ("Aladdin", "open sesame", "QWxhZGRpbjpvcGVuIHNlc2FtZQ=="),  # RFC 7617 §2
        ("test", "123\u00a3", "dGVzdDoxMjPCow=="),  # RFC 7617 §2.1, UTF-8
        ("ann", "", "YW5uOg=="),
    ],
)
def test_basic_auth_header_matches_rfc_7617(username: str, password: str, encoded: str) -> None:
    """The header is 'Basic ' + base64 of the UTF-8 'user:password'."""
    sent = _apply(BasicAuthHook(username, password))
    assert sent.header("Authorization") == f"Basic {encoded}"
    assert base64.b64decode(encoded).decode() == f"{username}:{password}"


def test_basic_auth_repr_hides_password() -> None:
    """repr shows the user name but not the password."""
    hook = BasicAuthHook("ann", "hunter2")
    assert repr(hook) == "BasicAuthHook(username='ann', password='[REDACTED]')"
    assert hook.username == "ann"


@pytest.mark.parametrize(
    ("username", "password", "message"),
    [
        ("", "pw", "username must not be empty"),
        (None, "pw", "username must be a string"),
        ("ann:x", "pw", "must not contain ':'"),
        ("ann", None, "password must be a string"),
        ("ann", "pw\r\n", "control characters"),
        ("an\tn", "pw", "control characters"),
    ],
)
def test_basic_auth_rejects_bad_input(username: Any, password: Any, message: str) -> None:
    """Missing, mistyped or RFC-invalid credentials raise ConfigurationError."""
    with pytest.raises(ConfigurationError, match=message) as excinfo:
        BasicAuthHook(username, password)
    assert "pw" not in str(excinfo.value)


# -- CompositeAuthHook --------------------------------------------------------------------


class _Recording(AuthHookInterface):
    """Appends its name to a shared log, adds a header, and renews on request."""

    def __init__(self, name: str, log: list[str], *, renews: bool = False) -> None:
        self.name, self.log, self.renews = name, log, renews

    def before_request(self, request: HttpRequest, context: RequestContext) -> HttpRequest:
        self.log.append(f"before:{self.name}")
        order = request.header("X-Order", "")
        return request.with_headers({"X-Order": f"{order}{self.name}", "X-Last": self.name})

    def on_unauthorized(
        self, request: HttpRequest, response: HttpResponse, context: RequestContext
    ) -> bool:
        self.log.append(f"401:{self.name}")
        return self.renews


def test_composite_applies_hooks_in_order() -> None:
    """Each hook sees the previous one's output, so later hooks win on shared headers."""
    log: list[str] = []
    hook = CompositeAuthHook(_Recording("a", log), _Recording("b", log), _Recording("c", log))
    sent = _apply(hook)
    assert log == ["before:a", "before:b", "before:c"]
    assert sent.header("X-Order") == "abc"
    assert sent.header("X-Last") == "c"


def test_composite_combines_real_hooks() -> None:
    """An API key and Basic credentials can be sent together."""
    hook = CompositeAuthHook(ApiKeyAuthHook("k3y"), BasicAuthHook("Aladdin", "open sesame"))
    sent = _apply(hook)
    assert sent.header("X-API-Key") == "k3y"
    assert sent.header("Authorization") == "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
    assert [type(h) for h in hook.hooks] == [ApiKeyAuthHook, BasicAuthHook]


def test_composite_on_unauthorized_asks_every_hook() -> None:
    """Every hook is asked to renew, even after one did; True if any renewed."""
    log: list[str] = []
    hook = CompositeAuthHook(
        _Recording("a", log, renews=True), _Recording("b", log), _Recording("c", log)
    )
    assert _unauthorized(hook) is True
    assert log == ["401:a", "401:b", "401:c"]


def test_composite_on_unauthorized_false_when_none_renewed() -> None:
    """If no hook renewed its credentials the composite reports False."""
    log: list[str] = []
    assert _unauthorized(CompositeAuthHook(_Recording("a", log), _Recording("b", log))) is False
    assert log == ["401:a", "401:b"]


def test_composite_repr_hides_inner_secrets() -> None:
    """The composite repr lists its hooks through their own redacting reprs."""
    text = repr(CompositeAuthHook(BearerTokenAuthHook("t0k3n"), BasicAuthHook("ann", "hunter2")))
    assert "t0k3n" not in text
    assert "hunter2" not in text
    assert text.startswith("CompositeAuthHook(BearerTokenAuthHook(")


@pytest.mark.parametrize(
    ("hooks", "message"),
    [
        ((), "at least one"),
        (("Bearer t0k3n",), "AuthHookInterface, got str"),
        ((BearerTokenAuthHook("t"), None), "AuthHookInterface, got NoneType"),
    ],
)
def test_composite_rejects_bad_hooks(hooks: tuple[Any, ...], message: str) -> None:
    """No hooks, or anything that is not an AuthHookInterface, raises ConfigurationError."""
    with pytest.raises(ConfigurationError, match=message) as excinfo:
        CompositeAuthHook(*hooks)
    assert "t0k3n" not in str(excinfo.value)


def test_auth_hooks_log_nothing(caplog: pytest.LogCaptureFixture) -> None:
    """Applying every built-in auth hook emits no log record at all, so no secret can leak."""
    caplog.set_level(logging.DEBUG)
    hook = CompositeAuthHook(
        BearerTokenAuthHook("t0k3n"),
        ApiKeyAuthHook("k3y", query_param="api_key"),
        BasicAuthHook("ann", "hunter2"),
    )
    _apply(hook)
    _unauthorized(hook)
    assert caplog.records == []


# -- TokenAuthHook -----------------------------------------------------------------------------


def test_token_auth_sends_the_managers_token(forge_token_provider: FakeTokenProvider) -> None:
    """The hook puts the manager's current token in the Authorization header."""
    hook = TokenAuthHook(TokenManager(forge_token_provider))
    sent = _apply(hook, _request(headers={"authorization": "Basic stale"}))
    assert dict(sent.headers) == {"Authorization": "Bearer fake-access-1"}
    assert _apply(hook).header("Authorization") == "Bearer fake-access-1"
    assert forge_token_provider.fetch_count == 1


def test_token_auth_refreshes_the_rejected_token_once(
    forge_token_provider: FakeTokenProvider,
) -> None:
    """A 401 for the token just sent refreshes it; a 401 for an older token does not."""
    manager = TokenManager(forge_token_provider)
    hook = TokenAuthHook(manager)
    sent = _apply(hook)
    response = HttpResponse(401, {}, b"", sent.url, request=sent)
    context = RequestContext(request=sent)
    assert hook.on_unauthorized(sent, response, context) is True
    assert manager.get_token().access_token == "fake-access-2"
    assert hook.on_unauthorized(sent, response, context) is True  # same old token: no fetch
    assert forge_token_provider.fetch_count == 2


def test_token_auth_rejects_a_non_manager() -> None:
    """Anything but a TokenManager is a ConfigurationError at construction."""
    with pytest.raises(ConfigurationError, match="TokenManager"):
        TokenAuthHook("t0k3n")  # type: ignore[arg-type]


def test_token_auth_repr_and_logs_hide_the_token(
    forge_token_provider: FakeTokenProvider, caplog: pytest.LogCaptureFixture
) -> None:
    """Neither the hook's repr nor anything it logs contains the token."""
    caplog.set_level(logging.DEBUG)
    hook = TokenAuthHook(TokenManager(forge_token_provider))
    _apply(hook)
    _unauthorized(hook)
    assert "fake-access" not in repr(hook)
    assert "fake-access" not in caplog.text


# -- issue 11: every hook says what it sends that is secret --------------------------------


@pytest.mark.parametrize(
    ("hook", "headers", "fields"),
    [
        (
            lambda: ApiKeyAuthHook("CANARY-APIKEY-7f3a", header_name="Ocp-Apim-Subscription-Key"),
            {"ocp-apim-subscription-key"},
            set(),
        ),
        (
            lambda: ApiKeyAuthHook("CANARY-APIKEY-7f3a", query_param="subscription-key"),
            set(),
            {"subscription-key"},
        ),
        (lambda: BearerTokenAuthHook("CANARY-APIKEY-7f3a"), {"authorization"}, set()),
    ],
    ids=["api-key-header", "api-key-query", "bearer"],
)
def test_hooks_declare_their_names_and_value(
    hook: Any, headers: set[str], fields: set[str]
) -> None:
    """Each hook's secrets name exactly where its key goes, and the key."""
    secrets = hook().secrets
    assert secrets.headers == headers
    assert secrets.fields == fields
    assert "CANARY-APIKEY-7f3a" in secrets.values
    assert "CANARY-APIKEY-7f3a" in known_secrets().values  # declared when built


def test_basic_auth_declares_the_password_and_the_whole_value() -> None:
    """The password, its base64 form and the whole Basic value are all known secrets."""
    encoded = base64.b64encode(b"ann:CANARY-BASIC-PW-1").decode()
    secrets = BasicAuthHook("ann", "CANARY-BASIC-PW-1").secrets
    assert {"CANARY-BASIC-PW-1", encoded, f"Basic {encoded}"} <= secrets.values
    assert "ann" not in secrets.values


def test_a_composite_hook_declares_what_its_hooks_do() -> None:
    """CompositeAuthHook's secrets are the union of its hooks'."""
    hook = CompositeAuthHook(
        ApiKeyAuthHook("CANARY-C1-aaaa", header_name="X-Partner-Key"),
        ApiKeyAuthHook("CANARY-C2-bbbb", query_param="sig2"),
    )
    assert hook.secrets.headers == {"x-partner-key"}
    assert hook.secrets.fields == {"sig2"}
    assert {"CANARY-C1-aaaa", "CANARY-C2-bbbb"} <= hook.secrets.values


def test_a_users_hook_is_declared_when_the_client_is_built() -> None:
    """A custom hook's secrets property is read when the client is built, and redacted."""

    class PartnerHook(AuthHookInterface):
        @property
        def secrets(self) -> Secrets:
            return Secrets.of(headers=["X-Canary-Partner"], values=["CANARY-USERHOOK-31"])

        def before_request(self, request: HttpRequest, context: RequestContext) -> HttpRequest:
            return request.with_headers({"X-Canary-Partner": "CANARY-USERHOOK-31"})

    config = HttpClientConfigBuilder().with_auth_hook(PartnerHook()).build()
    HttpClient(config).close()
    assert "x-canary-partner" in known_secrets().headers
    plain = HttpRequest(HttpMethod.GET, "https://h/")
    request = PartnerHook().before_request(plain, RequestContext(request=plain))
    assert "CANARY-USERHOOK-31" not in request.to_curl()


def test_the_default_interface_declares_nothing() -> None:
    """A hook that does not override secrets declares nothing."""

    class Plain(AuthHookInterface):
        def before_request(self, request: HttpRequest, context: RequestContext) -> HttpRequest:
            return request

    assert not Plain().secrets
