"""Tests for the JWT bearer, token exchange and custom grants, and for client authentication
and token exchange in pipeline steps."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

import pytest
import responses
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from requestforge import (
    BodyTokenFetcher,
    ClientAuthMethod,
    ClientCredentialsTokenProvider,
    ClientSecretBasic,
    ClientSecretJwt,
    ClientSecretPost,
    ConfigurationError,
    CustomGrantTokenProvider,
    FetchContext,
    InMemoryTokenStorage,
    JwtBearerTokenProvider,
    NoClientAuth,
    PrivateKeyJwt,
    TokenData,
    TokenEndpointError,
    TokenError,
    TokenExchangeFetcher,
    TokenExchangeTokenProvider,
    TokenFetchPipeline,
    TokenManager,
)
from requestforge_testing import FakeClock, FakeTokenProvider

TOKEN_URL = "https://auth.example.com/oauth/token"
SECRET = "s3cr3t-Client-Value-long-enough-for-HS256!"
TOKEN_JSON = {"access_token": "at-1", "token_type": "Bearer", "expires_in": 3600}
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS = "urn:ietf:params:oauth:token-type:access_token"
RSA = RSAKey.generate_key(2048)
EC = ECKey.generate_key("P-256")

Mock = responses.RequestsMock


def _form(mock: Mock, index: int = 0) -> dict[str, list[str]]:
    body = mock.calls[index].request.body
    text = body.decode() if isinstance(body, bytes) else str(body or "")
    return parse_qs(text, keep_blank_values=True)


def _header(mock: Mock, name: str, index: int = 0) -> str | None:
    return mock.calls[index].request.headers.get(name)


# -- JWT bearer ------------------------------------------------------------------------------


def test_jwt_bearer_posts_a_signed_assertion(forge_responses: Mock, forge_clock: FakeClock) -> None:
    """RFC 7523 2.1: grant_type jwt-bearer, assertion with iss/sub/aud/exp/iat/jti + extras."""
    forge_responses.post(TOKEN_URL, json=TOKEN_JSON)
    provider = JwtBearerTokenProvider(
        TOKEN_URL,
        RSA.as_pem(private=True).decode(),
        issuer="svc@project.iam.example",
        kid="k1",
        claims={"scope": "https://www.googleapis.com/auth/cloud-platform"},
    )
    assert provider.fetch_token().access_token == "at-1"
    form = _form(forge_responses)
    assert form["grant_type"] == [JWT_BEARER]
    assert "client_id" not in form  # no client authentication unless a client_id is given
    assert _header(forge_responses, "Authorization") is None
    decoded = jwt.decode(form["assertion"][0], RSA, algorithms=["RS256"])
    assert decoded.header["kid"] == "k1"
    now = int(forge_clock.now().timestamp())
    claims = dict(decoded.claims)
    assert claims == {
        "iss": "svc@project.iam.example",
        "sub": "svc@project.iam.example",
        "aud": TOKEN_URL,
        "scope": "https://www.googleapis.com/auth/cloud-platform",
        "jti": claims["jti"],
        "iat": now,
        "exp": now + 300,
    }


def test_jwt_bearer_subject_audience_and_client_auth(forge_responses: Mock) -> None:
    """subject= acts for a user, assertion_audience= sets aud, a client_id authenticates."""
    forge_responses.post(TOKEN_URL, json=TOKEN_JSON)
    JwtBearerTokenProvider(
        TOKEN_URL,
        EC,
        alg="ES256",
        issuer="svc",
        subject="ada@example.com",
        assertion_audience="https://auth.example.com",
        client_id="my-client",
        client_secret=SECRET,
    ).fetch_token()
    form = _form(forge_responses)
    claims = jwt.decode(form["assertion"][0], EC, algorithms=["ES256"]).claims
    assert (claims["sub"], claims["aud"]) == ("ada@example.com", "https://auth.example.com")
    assert (_header(forge_responses, "Authorization") or "").startswith("Basic ")


@pytest.mark.parametrize(
    "options",
    [
        {"claims": {"iss": "other"}},
        {"claims": {"jti": "fixed"}},
        {"claims": "scope"},
        {"alg": "HS512"},
        {"lifetime": 0},
        {"issuer": ""},
    ],
)
def test_jwt_bearer_bad_options_fail_at_construction(options: dict[str, Any]) -> None:
    """Reserved claims, unknown algorithms and bad values are ConfigurationErrors."""
    kwargs: dict[str, Any] = {"issuer": "svc", **options}
    with pytest.raises(ConfigurationError):
        JwtBearerTokenProvider(TOKEN_URL, RSA, **kwargs)


def test_jwt_bearer_service_names_differ_by_issuer_and_subject() -> None:
    """Tokens for different subjects are cached apart."""
    names = {
        JwtBearerTokenProvider(TOKEN_URL, RSA, issuer=i, subject=s).service_name
        for i, s in [("a", "x"), ("a", "y"), ("b", "x")]
    }
    assert len(names) == 3


# -- token exchange ------------------------------------------------------------------------


def test_token_exchange_sends_rfc_8693_fields(forge_responses: Mock) -> None:
    """Subject, actor, repeated resource, audience, requested type and scope are sent."""
    forge_responses.post(TOKEN_URL, json={**TOKEN_JSON, "issued_token_type": ACCESS})
    TokenExchangeTokenProvider(
        TOKEN_URL,
        "my-client",
        SECRET,
        subject_token="subject-token-value",
        actor_token=TokenData("actor-token-value"),
        actor_token_type=ACCESS,
        resource=["https://a.example/api", "https://b.example/api"],
        audience="orders",
        requested_token_type=ACCESS,
        scope="orders:read",
    ).fetch_token()
    form = _form(forge_responses)
    assert form["grant_type"] == [EXCHANGE]
    assert form["subject_token"] == ["subject-token-value"]
    assert form["subject_token_type"] == [ACCESS]
    assert form["actor_token"] == ["actor-token-value"]
    assert form["actor_token_type"] == [ACCESS]
    assert form["resource"] == ["https://a.example/api", "https://b.example/api"]
    assert form["audience"] == ["orders"]
    assert form["requested_token_type"] == [ACCESS]
    assert form["scope"] == ["orders:read"]


def test_token_exchange_chains_a_token_manager(forge_responses: Mock) -> None:
    """A TokenManager as subject: its (cached) token is exchanged on each fetch."""
    forge_responses.post(TOKEN_URL, json=TOKEN_JSON)
    forge_responses.post(TOKEN_URL, json=TOKEN_JSON)
    upstream = FakeTokenProvider()
    manager = TokenManager(upstream)
    provider = TokenExchangeTokenProvider(TOKEN_URL, "my-client", SECRET, subject_token=manager)
    provider.fetch_token()
    provider.fetch_token()
    subjects = [_form(forge_responses, i)["subject_token"][0] for i in range(2)]
    assert subjects[0] == subjects[1] == manager.get_token().access_token
    assert upstream.fetch_count == 1


def test_token_exchange_takes_providers_and_callables(forge_responses: Mock) -> None:
    """A provider and a function returning a string or TokenData are subject sources."""
    for _ in range(3):
        forge_responses.post(TOKEN_URL, json=TOKEN_JSON)
    sources: list[Any] = [
        FakeTokenProvider(),
        lambda: "from-a-function",
        lambda: TokenData("from-a-tokendata"),
    ]
    for source in sources:
        TokenExchangeTokenProvider(
            TOKEN_URL, "c", SECRET, subject_token=source, service_name="x"
        ).fetch_token()
    sent = [_form(forge_responses, i)["subject_token"][0] for i in range(3)]
    assert sent[1:] == ["from-a-function", "from-a-tokendata"]
    assert sent[0]


def test_token_exchange_source_that_returns_nothing_is_a_token_error() -> None:
    """A subject function returning no token raises TokenError before any request."""
    provider = TokenExchangeTokenProvider(TOKEN_URL, "c", SECRET, subject_token=lambda: "")
    with pytest.raises(TokenError, match="subject_token"):
        provider.fetch_token()


@pytest.mark.parametrize(
    "options",
    [
        {"subject_token": 42},
        {"subject_token": ""},
        {"subject_token": "t0ken-value", "actor_token": "actor-value"},  # no actor type
        {"subject_token": "t0ken-value", "actor_token_type": ACCESS},  # no actor
        {"subject_token": "t0ken-value", "resource": 5},
        {"subject_token": "t0ken-value", "requested_token_type": ""},
    ],
)
def test_token_exchange_bad_options_fail_at_construction(options: dict[str, Any]) -> None:
    """Missing types, bad sources and bad values are ConfigurationErrors."""
    with pytest.raises(ConfigurationError):
        TokenExchangeTokenProvider(TOKEN_URL, "c", SECRET, **options)


def test_token_exchange_identity_never_shows_the_subject_token() -> None:
    """Different fixed subjects get different service names, none containing the token."""
    first = TokenExchangeTokenProvider(TOKEN_URL, "c", SECRET, subject_token="subject-one")
    second = TokenExchangeTokenProvider(TOKEN_URL, "c", SECRET, subject_token="subject-two")
    assert first.service_name != second.service_name
    assert "subject-one" not in first.service_name


def test_token_exchange_errors_scrub_the_subject_token(forge_responses: Mock) -> None:
    """A server echoing the subject token in error_description never gets it shown."""
    body = {"error": "invalid_grant", "error_description": "bad subject-token-value-123"}
    forge_responses.post(TOKEN_URL, status=400, body=json.dumps(body))
    provider = TokenExchangeTokenProvider(
        TOKEN_URL, "c", SECRET, subject_token=lambda: "subject-token-value-123"
    )
    with pytest.raises(TokenEndpointError) as caught:
        provider.fetch_token()
    assert "subject-token-value-123" not in str(caught.value)
    assert caught.value.error == "invalid_grant"


# -- custom grants ---------------------------------------------------------------------------


def test_custom_grant_sends_any_grant_type_and_params(forge_responses: Mock) -> None:
    """grant_type and params are sent as given; a list is a repeated field."""
    forge_responses.post(TOKEN_URL, json=TOKEN_JSON)
    provider = CustomGrantTokenProvider(
        TOKEN_URL,
        "my-client",
        SECRET,
        grant_type="urn:example:grant:device",
        params={"device_code": "dc-value-1234", "resource": ["r1", "r2"]},
        secret_params=["device_code"],
        client_auth="body",
    )
    provider.fetch_token()
    form = _form(forge_responses)
    assert form["grant_type"] == ["urn:example:grant:device"]
    assert form["resource"] == ["r1", "r2"]
    assert form["device_code"] == ["dc-value-1234"]
    assert "urn:example:grant:device" in provider.service_name
    assert "dc-value-1234" not in provider.service_name


@pytest.mark.parametrize(
    "params",
    [{"client_id": "x"}, {"client_assertion": "x"}, {"grant_type": "x"}, {"k": 1}, {"": "x"}],
)
def test_custom_grant_params_may_not_set_what_others_set(params: dict[str, Any]) -> None:
    """Client authentication fields, grant_type and non-strings are refused."""
    with pytest.raises(ConfigurationError):
        CustomGrantTokenProvider(TOKEN_URL, "c", SECRET, grant_type="g", params=params)


def test_extra_params_still_cannot_override_grant_type() -> None:
    """The existing providers keep their rule; the custom grant is the way to choose one."""
    with pytest.raises(ConfigurationError):
        ClientCredentialsTokenProvider(TOKEN_URL, "c", SECRET, extra_params={"grant_type": "x"})


# -- every grant with every client authentication method ------------------------------------


def _methods() -> list[ClientAuthMethod]:
    return [
        ClientSecretBasic(SECRET),
        ClientSecretPost(SECRET),
        ClientSecretJwt(SECRET),
        PrivateKeyJwt(EC, alg="ES256"),
        NoClientAuth(),
    ]


def _grants(method: ClientAuthMethod) -> list[Any]:
    return [
        JwtBearerTokenProvider(TOKEN_URL, RSA, issuer="svc", client_id="c", client_auth=method),
        TokenExchangeTokenProvider(
            TOKEN_URL, "c", None, subject_token="subject-value", client_auth=method
        ),
        CustomGrantTokenProvider(TOKEN_URL, "c", None, grant_type="g", client_auth=method),
    ]


@pytest.mark.parametrize("which", range(5))
def test_every_grant_accepts_every_client_auth_method(forge_responses: Mock, which: int) -> None:
    """Each new grant sends the method's fields or header next to its own."""
    method = _methods()[which]
    for index, provider in enumerate(_grants(method)):
        forge_responses.post(TOKEN_URL, json=TOKEN_JSON)
        provider.fetch_token()
        form = _form(forge_responses, index)
        basic = _header(forge_responses, "Authorization", index)
        if isinstance(method, ClientSecretBasic):
            assert (basic or "").startswith("Basic ")
            assert "client_id" not in form
        else:
            assert basic is None
            assert form["client_id"] == ["c"]
        assert ("client_secret" in form) == isinstance(method, ClientSecretPost)
        assert ("client_assertion" in form) == isinstance(method, ClientSecretJwt | PrivateKeyJwt)


# -- pipeline steps --------------------------------------------------------------------------

EXCHANGE_URL = "https://sts.example.com/token"


def test_pipeline_exchanges_an_earlier_steps_token(forge_responses: Mock) -> None:
    """A TokenExchangeFetcher posts the login step's token as subject_token, with client auth."""
    forge_responses.post(TOKEN_URL, json={"access_token": "login-token-value", "expires_in": 60})
    forge_responses.post(EXCHANGE_URL, json={**TOKEN_JSON, "access_token": "mesh-token"})
    login = BodyTokenFetcher(
        "login",
        TOKEN_URL,
        data={"grant_type": "client_credentials"},
        client_id="svc",
        client_auth=ClientSecretPost(SECRET),
    )
    exchange = TokenExchangeFetcher(
        "mesh",
        EXCHANGE_URL,
        subject_from="login",
        audience="orders",
        resource=["https://orders.internal"],
        client_id="svc",
        client_auth=PrivateKeyJwt(EC, alg="ES256"),
    )
    pipeline = TokenFetchPipeline([login, exchange], InMemoryTokenStorage())
    assert pipeline.execute().access_token == "mesh-token"
    assert exchange.depends_on == ("login",)
    first, second = _form(forge_responses, 0), _form(forge_responses, 1)
    assert first["client_secret"] == [SECRET]
    assert _header(forge_responses, "Authorization", 0) is None  # no bearer from nowhere
    assert second["grant_type"] == [EXCHANGE]
    assert second["subject_token"] == ["login-token-value"]
    assert second["subject_token_type"] == [ACCESS]
    assert second["audience"] == ["orders"]
    assert second["resource"] == ["https://orders.internal"]
    assert second["client_assertion"]
    assert _header(forge_responses, "Authorization", 1) is None  # the subject is in the form


def test_exchange_step_with_an_actor(forge_responses: Mock) -> None:
    """actor_from sends a second earlier token as actor_token."""
    forge_responses.post(EXCHANGE_URL, json=TOKEN_JSON)
    step = TokenExchangeFetcher(
        "x",
        EXCHANGE_URL,
        subject_from="user",
        actor_from="svc",
        actor_token_type=ACCESS,
    )
    context = FetchContext()
    context.add_token("user", TokenData("user-token"))
    context.add_token("svc", TokenData("svc-token"))
    step.fetch(context)
    form = _form(forge_responses)
    assert (form["subject_token"], form["actor_token"]) == (["user-token"], ["svc-token"])
    assert form["actor_token_type"] == [ACCESS]
    assert "client_id" not in form


def test_exchange_step_errors_are_mapped_and_scrubbed(forge_responses: Mock) -> None:
    """A 503 is transient; error_description is scrubbed of the subject token."""
    body = {"error": "temporarily_unavailable", "error_description": "no user-token-abc"}
    forge_responses.post(EXCHANGE_URL, status=503, body=json.dumps(body))
    step = TokenExchangeFetcher("x", EXCHANGE_URL, subject_from="user")
    context = FetchContext()
    context.add_token("user", TokenData("user-token-abc"))
    with pytest.raises(TokenEndpointError) as caught:
        step.fetch(context)
    assert caught.value.transient
    assert "user-token-abc" not in str(caught.value)


@pytest.mark.parametrize(
    "options",
    [
        {"client_auth": ClientSecretPost(SECRET)},  # no client_id
        {"client_id": "svc"},  # no client_auth
        {"client_id": "svc", "client_auth": "basic"},  # a string, not a method
        {"client_id": "svc", "client_auth": ClientSecretPost(SECRET), "json": {"a": "b"}},
    ],
)
def test_step_client_auth_is_checked_at_construction(options: dict[str, Any]) -> None:
    """A step's client_auth needs a client_id, a method object and a form body."""
    with pytest.raises(ConfigurationError):
        BodyTokenFetcher("s", TOKEN_URL, **options)


def test_step_data_may_not_set_client_auth_fields(forge_responses: Mock) -> None:
    """data that sets client_id next to a client_auth is refused when it is sent."""
    step = BodyTokenFetcher(
        "s",
        TOKEN_URL,
        data={"client_id": "x"},
        client_id="svc",
        client_auth=ClientSecretBasic(SECRET),
    )
    with pytest.raises(ConfigurationError):
        step.fetch(FetchContext())


def test_basic_step_sends_the_header(forge_responses: Mock) -> None:
    """ClientSecretBasic on a step sends Basic and no form fields of its own."""
    forge_responses.post(TOKEN_URL, json=TOKEN_JSON)
    step = BodyTokenFetcher("s", TOKEN_URL, client_id="svc", client_auth=ClientSecretBasic(SECRET))
    step.fetch(FetchContext())
    assert (_header(forge_responses, "Authorization") or "").startswith("Basic ")
    assert step.client_auth is not None


# -- one token-endpoint error mapping ----------------------------------------------------------


@pytest.mark.parametrize("status", [400, 401, 403, 408, 425, 429, 500, 501, 503])
def test_providers_and_steps_agree_on_what_is_transient(forge_responses: Mock, status: int) -> None:
    """The same answer is transient (or not) from a provider and from a pipeline step."""
    forge_responses.post(TOKEN_URL, status=status, json={"error": "e"})
    forge_responses.post(TOKEN_URL, status=status, json={"error": "e"})
    provider = ClientCredentialsTokenProvider(TOKEN_URL, "c", SECRET, max_retries=0)
    step = BodyTokenFetcher("s", TOKEN_URL)
    with pytest.raises(TokenEndpointError) as from_provider:
        provider.fetch_token()
    with pytest.raises(TokenEndpointError) as from_step:
        step.fetch(FetchContext())
    assert from_provider.value.transient == from_step.value.transient
    assert from_provider.value.transient == (status >= 500 or status in (408, 425, 429))
