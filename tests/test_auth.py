"""Tests for requestforge._auth: the built-in auth hooks and how they combine."""

from __future__ import annotations

import base64
import logging
from typing import Any

import pytest
import responses

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
    HttpStatusError,
    InsufficientScopeError,
    RequestContext,
    Secrets,
    TokenAuthHook,
    TokenEndpointError,
    TokenError,
    TokenManager,
)
from requestforge._challenge import parse_challenges, token_errors
from requestforge._secrets import known_secrets
from requestforge_testing import FakeClock, FakeTokenProvider


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


# -- issue 13: refresh triggers -----------------------------------------------------------

API = "https://api.example.com/v1/items"


def _answer(status: int, *challenges: str) -> tuple[HttpRequest, HttpResponse, RequestContext]:
    """A request and the response ``status`` with one WWW-Authenticate header per challenge
    joined as requests joins repeated headers."""
    request = _request(headers={"Authorization": "Bearer fake-access-1"})
    headers = {"WWW-Authenticate": ", ".join(challenges)} if challenges else {}
    response = HttpResponse(status, headers, b"", request.url, request=request)
    return request, response, RequestContext(request=request)


def _refused(hook: AuthHookInterface, status: int, *challenges: str) -> bool:
    return hook.credentials_refused(*_answer(status, *challenges))


def test_the_parser_reads_schemes_params_quoted_strings_and_token68() -> None:
    """Several challenges in one value, quoted strings with escapes and commas, token values,
    token68 and names of any case come apart as RFC 9110 says."""
    found = parse_challenges(
        'Basic realm="a, b", BEARER Error=invalid_token, error_description="say \\"hi\\", ok", '
        'Negotiate abc+/==, DPoP algs="ES256 RS256"'
    )
    assert [(c.scheme, dict(c.params), c.token68) for c in found] == [
        ("Basic", {"realm": "a, b"}, None),
        ("BEARER", {"error": "invalid_token", "error_description": 'say "hi", ok'}, None),
        ("Negotiate", {}, "abc+/=="),
        ("DPoP", {"algs": "ES256 RS256"}, None),
    ]
    assert found[1].is_scheme("bearer")


def test_the_parser_reads_several_headers_as_one_list() -> None:
    """Separate WWW-Authenticate values are parsed in order as one list."""
    found = parse_challenges(['Basic realm="x"', 'Bearer error="invalid_token"', ""])
    assert [c.scheme for c in found] == ["Basic", "Bearer"]
    assert [c.scheme for c in token_errors(found)] == ["Bearer"]


@pytest.mark.parametrize(
    "header",
    [
        "",
        ",,, ,",
        "=x",
        'Bearer error="unterminated',
        "Bearer;junk",
        'Bearer error=, realm="x"',
        'error="invalid_token"',
        '"quoted" Bearer',
        "Bearer \x00\xff, error=@",
    ],
)
def test_the_parser_never_raises_and_never_invents_an_error(header: str) -> None:
    """Malformed challenges are skipped: nothing raises and no token error appears."""
    assert token_errors(parse_challenges(header)) == []


def test_the_parser_keeps_good_challenges_around_bad_ones() -> None:
    """A malformed element does not hide the well-formed challenge after it."""
    found = parse_challenges('Bearer;junk, =x, DPoP error="invalid_token"')
    assert [(c.scheme, c.params.get("error")) for c in token_errors(found)] == [
        ("DPoP", "invalid_token")
    ]


@pytest.mark.parametrize(
    ("status", "challenges", "statuses", "refused"),
    [
        (401, (), (), True),
        (401, ('Basic realm="x"',), (), True),
        (403, (), (), False),
        (403, (), (403,), True),
        (400, ('Bearer error="invalid_token"',), (), True),
        (500, ('DPoP error="invalid_token"',), (), True),
        (403, ('Basic realm="x"', 'Bearer realm="api", error="invalid_token"'), (), True),
        (400, ('Basic error="invalid_token"',), (), False),
        (400, ('Bearer error="invalid_request"',), (), False),
        (404, (), (403,), False),
    ],
)
def test_token_auth_knows_which_answers_refuse_the_token(
    forge_token_provider: FakeTokenProvider,
    status: int,
    challenges: tuple[str, ...],
    statuses: tuple[int, ...],
    refused: bool,
) -> None:
    """401, an extra status, or a Bearer/DPoP invalid_token challenge on any status refuse
    the token; another scheme's or another error code does not."""
    hook = TokenAuthHook(TokenManager(forge_token_provider), refresh_on_statuses=statuses)
    assert _refused(hook, status, *challenges) is refused


@pytest.mark.parametrize(
    ("status", "challenge", "scope"),
    [
        (403, 'Bearer error="insufficient_scope", scope="orders:write orders:read"', None),
        (401, 'DPoP error="insufficient_scope"', None),
    ],
)
def test_insufficient_scope_is_an_error_never_a_refresh(
    forge_token_provider: FakeTokenProvider, status: int, challenge: str, scope: None
) -> None:
    """insufficient_scope raises InsufficientScopeError (with the scope and the response),
    even on a 401 or an extra status, and fetches nothing."""
    hook = TokenAuthHook(TokenManager(forge_token_provider), refresh_on_statuses={403})
    request, response, context = _answer(status, challenge)
    with pytest.raises(InsufficientScopeError) as caught:
        hook.credentials_refused(request, response, context)
    expected = "orders:write orders:read" if "scope=" in challenge else None
    assert (caught.value.scope, caught.value.response) == (expected, response)
    assert "insufficient_scope" in str(caught.value)
    assert isinstance(caught.value, TokenError)
    assert forge_token_provider.fetch_count == 0


def test_invalid_token_beats_insufficient_scope(forge_token_provider: FakeTokenProvider) -> None:
    """When one challenge says invalid_token, a renewal may help: it is a refusal, not an error."""
    hook = TokenAuthHook(TokenManager(forge_token_provider))
    both = ('DPoP error="insufficient_scope"', 'Bearer error="invalid_token"')
    assert _refused(hook, 403, *both) is True


@pytest.mark.parametrize("statuses", [{200}, {"403"}, {True}, 403, "403", {600}])
def test_refresh_on_statuses_must_be_error_statuses(
    forge_token_provider: FakeTokenProvider, statuses: Any
) -> None:
    """Anything but a collection of 400-599 ints is a ConfigurationError, on the hook and
    in the builder (at build())."""
    manager = TokenManager(forge_token_provider)
    with pytest.raises(ConfigurationError, match="refresh_on_statuses"):
        TokenAuthHook(manager, refresh_on_statuses=statuses)
    builder = HttpClientConfigBuilder().with_token_auth(manager, refresh_on_statuses=statuses)
    with pytest.raises(ConfigurationError, match="refresh_on_statuses"):
        builder.build()


def test_the_builder_passes_refresh_on_statuses(forge_token_provider: FakeTokenProvider) -> None:
    """with_token_auth(refresh_on_statuses=) reaches the hook, even from a one-shot iterator."""
    manager = TokenManager(forge_token_provider)
    builder = HttpClientConfigBuilder().with_token_auth(manager, refresh_on_statuses=iter([403]))
    for config in (builder.build(), builder.build()):
        assert isinstance(config.auth_hook, TokenAuthHook)
        assert config.auth_hook.refresh_on_statuses == {403}
    assert "refresh_on_statuses=[403]" in repr(config.auth_hook)


def test_a_failed_renewal_raises_its_error_chained_to_the_refusal(
    forge_token_provider: FakeTokenProvider,
) -> None:
    """The token endpoint down on a 401: the endpoint's error is raised (same type and
    fields, the shared original untouched), caused by an HttpStatusError with the 401; while
    the manager backs off the next 401 raises it again without a fetch."""
    manager = TokenManager(forge_token_provider)
    hook = TokenAuthHook(manager)
    sent = _apply(hook)
    down = TokenEndpointError("token endpoint down: 503", status_code=503, transient=True)
    forge_token_provider.fail_always(down)
    response = HttpResponse(401, {}, b"", sent.url, request=sent)
    for _ in range(2):
        with pytest.raises(TokenEndpointError) as caught:
            hook.on_unauthorized(sent, response, RequestContext(request=sent))
        error = caught.value
        assert error is not down
        assert down.__cause__ is None
        assert (str(error), error.status_code, error.transient) == (str(down), 503, True)
        assert isinstance(error.__cause__, HttpStatusError)
        assert error.__cause__.response is response
        assert "401 for GET" in str(error.__cause__)
    assert forge_token_provider.fetch_count == 2  # the first token, one failed refresh


def test_a_failed_fetch_of_an_expired_token_is_chained_too(
    forge_token_provider: FakeTokenProvider, forge_clock: FakeClock
) -> None:
    """When no valid token is left the manager raises itself; the hook chains that error."""
    manager = TokenManager(forge_token_provider)
    hook = TokenAuthHook(manager)
    sent = _apply(hook)
    forge_clock.advance(FakeTokenProvider.DEFAULT_LIFETIME + 1)
    forge_token_provider.fail_always(TokenError("no token today"))
    response = HttpResponse(401, {}, b"", sent.url, request=sent)
    with pytest.raises(TokenError, match="no token today") as caught:
        hook.on_unauthorized(sent, response, RequestContext(request=sent))
    assert isinstance(caught.value.__cause__, HttpStatusError)


def test_the_storm_window_still_hands_the_refusal_back(
    forge_token_provider: FakeTokenProvider,
) -> None:
    """A fresh token refused again (a 403 counted by refresh_on_statuses) opens the storm
    window: its next refusal returns False with no fetch and no error."""
    manager = TokenManager(forge_token_provider)
    hook = TokenAuthHook(manager, refresh_on_statuses={403})
    _apply(hook)
    request, response, context = _answer(403)
    assert hook.on_unauthorized(request, response, context) is True
    fresh = _apply(hook)
    refused = HttpResponse(403, {}, b"", fresh.url, request=fresh)
    hook.on_resend_answered(fresh, refused, RequestContext(request=fresh))
    assert hook.on_unauthorized(fresh, refused, RequestContext(request=fresh)) is False
    assert forge_token_provider.fetch_count == 2  # the first token and the one renewal


def test_an_insufficient_scope_resend_counts_as_accepted(
    forge_token_provider: FakeTokenProvider,
) -> None:
    """A resend answered insufficient_scope was a valid token: no storm window opens, so the
    next refusal of that token renews it."""
    manager = TokenManager(forge_token_provider)
    hook = TokenAuthHook(manager)
    _apply(hook)
    request, response, context = _answer(401)
    assert hook.on_unauthorized(request, response, context) is True
    fresh = _apply(hook)
    narrow = HttpResponse(
        403, {"WWW-Authenticate": 'Bearer error="insufficient_scope"'}, b"", fresh.url
    )
    hook.on_resend_answered(fresh, narrow, RequestContext(request=fresh))
    unauthorized = HttpResponse(401, {}, b"", fresh.url, request=fresh)
    assert hook.on_unauthorized(fresh, unauthorized, RequestContext(request=fresh)) is True
    assert forge_token_provider.fetch_count == 3


def test_composite_renews_only_the_hooks_refused_and_reports_resends() -> None:
    """A 403 one hook counts as a refusal renews that hook only, and every hook hears how
    the resend was answered."""

    class Picky(_Recording):
        def credentials_refused(
            self, request: HttpRequest, response: HttpResponse, context: RequestContext
        ) -> bool:
            return response.status_code in (401, 403)

        def on_resend_answered(
            self, request: HttpRequest, response: HttpResponse, context: RequestContext
        ) -> None:
            self.log.append(f"resend:{self.name}")

    log: list[str] = []
    hook = CompositeAuthHook(_Recording("a", log), Picky("b", log, renews=True))
    request, response, context = _answer(403)
    assert hook.credentials_refused(request, response, context) is True
    assert hook.on_unauthorized(request, response, context) is True
    hook.on_resend_answered(request, response, context)
    assert log == ["401:b", "resend:b"]


class _Api:
    """A responses-backed API answering a scripted list of (status, challenge) replies."""

    def __init__(self, mock: responses.RequestsMock, *replies: tuple[int, str | None]) -> None:
        self.tokens: list[str] = []
        self._replies = list(replies)
        mock.add_callback(responses.GET, API, callback=self)

    def __call__(self, request: Any) -> tuple[int, dict[str, str], str]:
        self.tokens.append(request.headers["Authorization"])
        status, challenge = self._replies.pop(0)
        return status, {"WWW-Authenticate": challenge} if challenge else {}, "{}"


def _token_client(manager: TokenManager, **options: Any) -> HttpClient:
    return HttpClient(HttpClientConfigBuilder().with_token_auth(manager, **options).build())


def test_the_client_renews_on_an_invalid_token_challenge_of_any_status(
    forge_responses: responses.RequestsMock, forge_token_provider: FakeTokenProvider
) -> None:
    """A 400 with Bearer error="invalid_token" renews the token and resends once."""
    api = _Api(forge_responses, (400, 'Bearer error="invalid_token"'), (200, None))
    with _token_client(TokenManager(forge_token_provider)) as client:
        assert client.get(API).status_code == 200
    assert api.tokens == ["Bearer fake-access-1", "Bearer fake-access-2"]


def test_the_client_renews_on_an_extra_status(
    forge_responses: responses.RequestsMock, forge_token_provider: FakeTokenProvider
) -> None:
    """A bare 403 renews only with refresh_on_statuses={403}."""
    api = _Api(forge_responses, (403, None), (403, None), (200, None))
    manager = TokenManager(forge_token_provider)
    with _token_client(manager) as client:
        assert client.get(API).status_code == 403
    with _token_client(manager, refresh_on_statuses={403}) as client:
        assert client.get(API).status_code == 200
    assert api.tokens == ["Bearer fake-access-1", "Bearer fake-access-1", "Bearer fake-access-2"]


def test_the_client_raises_insufficient_scope_after_one_send(
    forge_responses: responses.RequestsMock, forge_token_provider: FakeTokenProvider
) -> None:
    """insufficient_scope is raised with the response; the request is sent once."""
    challenge = 'Bearer error="insufficient_scope", scope="orders:write"'
    api = _Api(forge_responses, (403, challenge))
    client = _token_client(TokenManager(forge_token_provider))
    with client, pytest.raises(InsufficientScopeError) as caught:
        client.get(API)
    assert caught.value.scope == "orders:write"
    assert caught.value.response is not None
    assert caught.value.response.status_code == 403
    assert (len(api.tokens), forge_token_provider.fetch_count) == (1, 1)


def test_the_client_raises_insufficient_scope_on_the_resend_too(
    forge_responses: responses.RequestsMock, forge_token_provider: FakeTokenProvider
) -> None:
    """A renewed token that lacks the scope raises too, after the one resend."""
    narrow = 'Bearer error="insufficient_scope"'
    api = _Api(forge_responses, (401, None), (403, narrow))
    client = _token_client(TokenManager(forge_token_provider))
    with client, pytest.raises(InsufficientScopeError):
        client.get(API)
    assert api.tokens == ["Bearer fake-access-1", "Bearer fake-access-2"]


def test_a_401_while_the_token_endpoint_is_down_raises_the_token_error(
    forge_responses: responses.RequestsMock, forge_token_provider: FakeTokenProvider
) -> None:
    """The refused token is not sent again and no bare 401 comes back: the renewal's error
    is raised, its cause the 401."""
    api = _Api(forge_responses, (401, None), (401, None))
    manager = TokenManager(forge_token_provider)
    with _token_client(manager) as client:
        manager.get_token()
        forge_token_provider.fail_always(TokenEndpointError("endpoint down", transient=True))
        with pytest.raises(TokenEndpointError) as caught:
            client.get(API)
    cause = caught.value.__cause__
    assert isinstance(cause, HttpStatusError)
    assert cause.response is not None
    assert cause.response.status_code == 401
    assert api.tokens == ["Bearer fake-access-1"]


class _Answers(_Recording):
    """Logs the status of every answer it is shown."""

    def on_response(
        self, request: HttpRequest, response: HttpResponse, context: RequestContext
    ) -> None:
        self.log.append(f"answer:{self.name}:{response.status_code}")


def test_every_answer_to_our_credentials_reaches_on_response_first(
    forge_responses: responses.RequestsMock,
) -> None:
    """on_response sees the 200 and the 401 alike, before the refusal is asked about, and a
    composite passes each answer to every hook."""
    forge_responses.get(API, status=200)
    forge_responses.get(API, status=401)
    log: list[str] = []
    hook = CompositeAuthHook(_Answers("a", log), _Answers("b", log))
    with HttpClient(HttpClientConfigBuilder().with_auth_hook(hook).build()) as client:
        client.get(API)
        client.get(API)
    assert [entry for entry in log if not entry.startswith("before")] == [
        "answer:a:200",
        "answer:b:200",
        "answer:a:401",
        "answer:b:401",
        "401:a",
        "401:b",
    ]


def test_an_answer_from_another_origin_is_not_shown_to_the_hook(
    forge_responses: responses.RequestsMock,
) -> None:
    """After a redirect to another origin (our credentials stayed home), on_response is not
    called: that server's headers say nothing about our credentials."""
    elsewhere = "https://elsewhere.example.org/landing"
    forge_responses.get(API, status=302, headers={"Location": elsewhere})
    forge_responses.get(elsewhere, status=200)
    log: list[str] = []
    with HttpClient(HttpClientConfigBuilder().with_auth_hook(_Answers("a", log)).build()) as c:
        assert c.get(API).status_code == 200
    assert log == ["before:a"]
