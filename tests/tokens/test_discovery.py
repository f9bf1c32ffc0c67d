"""Tests for discovery: metadata URLs, the issuer check, the cache and from_issuer()."""

from __future__ import annotations

import base64
import json
import threading
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs

import pytest
import requests
import responses
from joserfc.jwk import RSAKey

from requestforge import (
    AuthorizationServer,
    ClientCredentialsTokenProvider,
    ConfigurationError,
    JwtBearerTokenProvider,
    PasswordGrantTokenProvider,
    ServerMetadata,
    SystemClock,
    TokenEndpointError,
    discover,
)
from requestforge_testing import FakeClock

Mock = responses.RequestsMock

ISSUER = "https://auth.example.com"
OIDC_URL = ISSUER + "/.well-known/openid-configuration"
OAUTH_URL = ISSUER + "/.well-known/oauth-authorization-server"
TOKEN_URL = ISSUER + "/oauth/token"
SECRET = "s3cr3t-Client-Value"
TOKEN_JSON = {"access_token": "at-1", "token_type": "Bearer", "expires_in": 3600}


def _document(**fields: Any) -> dict[str, Any]:
    """The default document, with ``fields`` replaced or added (None removes one)."""
    document: dict[str, Any] = {
        "issuer": ISSUER,
        "token_endpoint": TOKEN_URL,
        "revocation_endpoint": ISSUER + "/oauth/revoke",
        "introspection_endpoint": ISSUER + "/oauth/introspect",
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "grant_types_supported": ["client_credentials", "refresh_token"],
    }
    for name, value in fields.items():
        if value is None:
            document.pop(name, None)
        else:
            document[name] = value
    return document


def _form(mock: Mock, index: int) -> dict[str, str]:
    body = mock.calls[index].request.body
    text = body.decode() if isinstance(body, bytes) else str(body)
    return {k: v[0] for k, v in parse_qs(text).items()}


# -- where the documents are ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("issuer", "oidc", "oauth"),
    [
        (
            "https://a.example",
            "https://a.example/.well-known/openid-configuration",
            "https://a.example/.well-known/oauth-authorization-server",
        ),
        (
            "https://a.example/",
            "https://a.example/.well-known/openid-configuration",
            "https://a.example/.well-known/oauth-authorization-server",
        ),
        (
            "https://a.example:8443/tenant/v2.0",
            "https://a.example:8443/tenant/v2.0/.well-known/openid-configuration",
            "https://a.example:8443/.well-known/oauth-authorization-server/tenant/v2.0",
        ),
        (
            "https://a.example/realms/prod/",
            "https://a.example/realms/prod/.well-known/openid-configuration",
            "https://a.example/.well-known/oauth-authorization-server/realms/prod",
        ),
    ],
)
def test_document_urls_follow_oidc_and_rfc_8414(issuer: str, oidc: str, oauth: str) -> None:
    """OIDC appends its suffix to the issuer; RFC 8414 puts its own between host and path."""
    assert AuthorizationServer(issuer).document_urls == (oidc, oauth)
    assert AuthorizationServer(issuer, well_known="openid-configuration").document_urls == (oidc,)
    only_oauth = AuthorizationServer(issuer, well_known="oauth-authorization-server")
    assert only_oauth.document_urls == (oauth,)


@pytest.mark.parametrize(
    "issuer",
    [
        "auth.example.com",
        "ftp://auth.example.com",
        "https://",
        "https://a.example/?tenant=1",
        "https://a.example/#x",
        42,
    ],
)
def test_a_bad_issuer_is_a_configuration_error(issuer: Any) -> None:
    """An issuer that is not an absolute http(s) URL without query or fragment is refused."""
    with pytest.raises(ConfigurationError):
        AuthorizationServer(issuer)


def test_bad_options_are_configuration_errors() -> None:
    """A negative ttl or an unknown well_known is refused before any request."""
    with pytest.raises(ConfigurationError):
        AuthorizationServer(ISSUER, ttl=-1)
    with pytest.raises(ConfigurationError):
        AuthorizationServer(ISSUER, well_known="webfinger")  # type: ignore[arg-type]


# -- the document --------------------------------------------------------------------------


def test_the_document_becomes_server_metadata(forge_responses: Mock) -> None:
    """Endpoints, auth methods and grant types come from the document; raw keeps the rest."""
    forge_responses.get(OIDC_URL, json=_document(userinfo_endpoint=ISSUER + "/me"))
    metadata = discover(ISSUER)
    assert metadata == ServerMetadata(
        issuer=ISSUER,
        token_endpoint=TOKEN_URL,
        revocation_endpoint=ISSUER + "/oauth/revoke",
        introspection_endpoint=ISSUER + "/oauth/introspect",
        token_endpoint_auth_methods=("client_secret_basic", "client_secret_post"),
        grant_types=("client_credentials", "refresh_token"),
    )
    assert metadata.raw["userinfo_endpoint"] == ISSUER + "/me"
    with pytest.raises(TypeError):
        metadata.raw["issuer"] = "x"  # type: ignore[index]
    assert forge_responses.calls[0].request.headers["Accept"] == "application/json"
    assert "Authorization" not in forge_responses.calls[0].request.headers


def test_left_out_lists_take_the_rfc_defaults(forge_responses: Mock) -> None:
    """Without the lists, RFC 8414's defaults apply and the optional endpoints are None."""
    forge_responses.get(
        OIDC_URL,
        json=_document(
            revocation_endpoint=None,
            introspection_endpoint=None,
            token_endpoint_auth_methods_supported=None,
            grant_types_supported=None,
        ),
    )
    metadata = discover(ISSUER)
    assert metadata.revocation_endpoint is None
    assert metadata.introspection_endpoint is None
    assert metadata.token_endpoint_auth_methods == ("client_secret_basic",)
    assert metadata.grant_types == ("authorization_code", "implicit")


def test_a_missing_oidc_document_falls_back_to_rfc_8414(forge_responses: Mock) -> None:
    """A 404 for the OIDC document sends the client to the RFC 8414 one."""
    forge_responses.get(OIDC_URL, status=404)
    forge_responses.get(OAUTH_URL, json=_document())
    assert discover(ISSUER).token_endpoint == TOKEN_URL
    assert [c.request.url for c in forge_responses.calls] == [OIDC_URL, OAUTH_URL]


def test_a_server_error_does_not_fall_back(forge_responses: Mock) -> None:
    """A 503 for the OIDC document is a transient error, not a reason to ask elsewhere."""
    forge_responses.get(OIDC_URL, status=503)
    with pytest.raises(TokenEndpointError) as caught:
        discover(ISSUER, max_retries=0)
    assert (caught.value.status_code, caught.value.transient) == (503, True)
    assert len(forge_responses.calls) == 1


def test_both_documents_missing_is_a_permanent_error(forge_responses: Mock) -> None:
    """When neither document exists the error names the last URL and is not transient."""
    forge_responses.get(OIDC_URL, status=404)
    forge_responses.get(OAUTH_URL, status=404)
    with pytest.raises(TokenEndpointError, match="oauth-authorization-server answered 404") as e:
        discover(ISSUER)
    assert e.value.transient is False


def test_an_issuer_that_differs_is_refused(forge_responses: Mock) -> None:
    """RFC 8414 section 3.3: a document naming another issuer, even by a slash, is not used."""
    forge_responses.get(OIDC_URL, json=_document(issuer=ISSUER + "/"))
    with pytest.raises(TokenEndpointError, match="identical") as caught:
        discover(ISSUER)
    assert caught.value.transient is False
    assert ISSUER + "/'" in str(caught.value)


def test_an_impostor_issuer_is_refused(forge_responses: Mock) -> None:
    """A document claiming another host's issuer is refused with both issuers named."""
    forge_responses.get(OIDC_URL, json=_document(issuer="https://evil.example"))
    with pytest.raises(TokenEndpointError, match=r"evil\.example"):
        discover(ISSUER)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ([1, 2], "not an object"),
        (_document(issuer=None), "has no issuer"),
        (_document(token_endpoint=None), "has no token_endpoint"),
        (_document(token_endpoint="/oauth/token"), "not an absolute"),
        (_document(token_endpoint=7), "not a string"),
        (_document(token_endpoint="http://auth.example.com/t"), "http token_endpoint"),
        (_document(revocation_endpoint="http://auth.example.com/r"), "http revocation"),
        (_document(grant_types_supported="client_credentials"), "not a list"),
    ],
)
def test_an_unusable_document_is_a_permanent_error(
    forge_responses: Mock, body: Any, problem: str
) -> None:
    """A document that is not an object or lacks a usable token_endpoint is refused."""
    forge_responses.get(OIDC_URL, json=body)
    with pytest.raises(TokenEndpointError, match=problem) as caught:
        discover(ISSUER)
    assert caught.value.transient is False


def test_a_body_that_is_not_json_is_refused(forge_responses: Mock) -> None:
    """An HTML answer (a login page, a proxy's error) is a permanent error, not a crash."""
    forge_responses.get(OIDC_URL, body="<html>hi</html>", content_type="text/html")
    with pytest.raises(TokenEndpointError, match="is not JSON"):
        discover(ISSUER)


def test_redirects_are_not_followed(forge_responses: Mock) -> None:
    """A 302 is an error naming only the Location's origin; the redirect is not fetched."""
    forge_responses.get(
        OIDC_URL, status=302, headers={"Location": "https://other.example/doc?code=abc"}
    )
    with pytest.raises(TokenEndpointError, match=r"https://other\.example:443;") as caught:
        discover(ISSUER)
    assert "code=abc" not in str(caught.value)
    assert len(forge_responses.calls) == 1


def test_connection_failure_is_transient(forge_responses: Mock) -> None:
    """An unreachable server raises a transient TokenEndpointError, never a requests error."""
    forge_responses.get(OIDC_URL, body=requests.ConnectionError("refused"))
    with pytest.raises(TokenEndpointError, match="could not be fetched") as caught:
        discover(ISSUER, max_retries=0)
    assert caught.value.transient is True


# -- the cache -----------------------------------------------------------------------------


def test_the_document_is_cached_for_the_ttl(forge_responses: Mock, forge_clock: FakeClock) -> None:
    """Within the TTL nothing is fetched; after it, the document is fetched again."""
    forge_responses.get(OIDC_URL, json=_document())
    server = AuthorizationServer(ISSUER, ttl=60)
    first = server.metadata()
    forge_clock.advance(59)
    assert server.metadata() is first
    assert len(forge_responses.calls) == 1
    forge_clock.advance(1)
    server.metadata()
    assert len(forge_responses.calls) == 2


def test_a_shorter_max_age_wins(forge_responses: Mock, forge_clock: FakeClock) -> None:
    """Cache-Control: max-age below the TTL sets the expiry; above it, the TTL does."""
    forge_responses.get(OIDC_URL, json=_document(), headers={"Cache-Control": "public, max-age=5"})
    server = AuthorizationServer(ISSUER)
    server.metadata()
    forge_clock.advance(4)
    server.metadata()
    assert len(forge_responses.calls) == 1
    forge_clock.advance(1)
    server.metadata()
    assert len(forge_responses.calls) == 2


@pytest.mark.parametrize("header", ["no-store", "private, no-cache"])
def test_no_store_caches_nothing(forge_responses: Mock, header: str) -> None:
    """no-store and no-cache keep no document: the next call fetches again."""
    forge_responses.get(OIDC_URL, json=_document(), headers={"Cache-Control": header})
    server = AuthorizationServer(ISSUER)
    server.metadata()
    server.metadata()
    assert len(forge_responses.calls) == 2


def test_invalidate_forgets_the_document(forge_responses: Mock) -> None:
    """After invalidate() the next metadata() call fetches again."""
    forge_responses.get(OIDC_URL, json=_document())
    server = AuthorizationServer(ISSUER)
    server.metadata()
    server.invalidate()
    server.metadata()
    assert len(forge_responses.calls) == 2


def test_a_failed_fetch_is_not_cached(forge_responses: Mock) -> None:
    """After a failure the next call asks again and succeeds."""
    forge_responses.get(OIDC_URL, status=503)
    forge_responses.get(OIDC_URL, json=_document())
    server = AuthorizationServer(ISSUER, max_retries=0)
    with pytest.raises(TokenEndpointError):
        server.metadata()
    assert server.metadata().token_endpoint == TOKEN_URL


class EntryClock:
    """The system clock, noting which threads have read it: AuthorizationServer reads it
    under its lock on every metadata() call, so a thread counted here has either found the
    cache or joined the fetch in flight."""

    def __init__(self) -> None:
        self._inner = SystemClock()
        self._cond = threading.Condition()
        self._threads: set[int] = set()

    def now(self) -> datetime:
        return self._inner.now()

    def monotonic(self) -> float:
        with self._cond:
            self._threads.add(threading.get_ident())
            self._cond.notify_all()
        return self._inner.monotonic()

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)

    def wait_for_threads(self, n: int, timeout: float = 10.0) -> bool:
        """Whether ``n`` distinct threads have read the clock within ``timeout``."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self._threads) >= n, timeout)


def test_concurrent_callers_share_one_fetch(forge_responses: Mock) -> None:
    """32 threads asking while the document is in flight cost one request and get one object."""
    clock = EntryClock()
    server = AuthorizationServer(ISSUER, clock=clock)
    entered, release = threading.Event(), threading.Event()

    def held(request: Any) -> tuple[int, dict[str, str], str]:
        entered.set()
        assert release.wait(30)
        return (200, {"Content-Type": "application/json"}, json.dumps(_document()))

    forge_responses.add_callback(responses.GET, OIDC_URL, callback=held)
    results: list[ServerMetadata] = []
    threads = [threading.Thread(target=lambda: results.append(server.metadata()))]
    threads[0].start()
    assert entered.wait(10)
    threads += [
        threading.Thread(target=lambda: results.append(server.metadata())) for _ in range(31)
    ]
    for thread in threads[1:]:
        thread.start()
    assert clock.wait_for_threads(32)
    release.set()
    for thread in threads:
        thread.join(30)
    assert len(forge_responses.calls) == 1
    assert len(results) == 32
    assert all(result is results[0] for result in results)


def test_waiting_callers_share_the_leaders_error(forge_responses: Mock) -> None:
    """Callers that join a failing fetch each get a copy of its error, chained to it."""
    clock = EntryClock()
    server = AuthorizationServer(ISSUER, max_retries=0, clock=clock)
    entered, release = threading.Event(), threading.Event()

    def held(request: Any) -> tuple[int, dict[str, str], str]:
        entered.set()
        assert release.wait(30)
        return (503, {}, "")

    forge_responses.add_callback(responses.GET, OIDC_URL, callback=held)
    errors: list[TokenEndpointError] = []

    def call() -> None:
        try:
            server.metadata()
        except TokenEndpointError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(8)]
    threads[0].start()
    assert entered.wait(10)
    for thread in threads[1:]:
        thread.start()
    assert clock.wait_for_threads(8)
    release.set()
    for thread in threads:
        thread.join(30)
    assert len(forge_responses.calls) == 1
    assert len(errors) == 8
    assert len({id(e) for e in errors}) == 8
    assert all(e.status_code == 503 and e.transient for e in errors)
    leaders = [e for e in errors if not isinstance(e.__cause__, TokenEndpointError)]
    assert len(leaders) == 1
    assert all(e.__cause__ is leaders[0] for e in errors if e is not leaders[0])


def test_repr_names_the_issuer_only() -> None:
    """The repr shows the issuer and TTL, with any user info redacted."""
    server = AuthorizationServer("https://user:pw@auth.example.com", ttl=5)
    assert "pw" not in repr(server)
    assert "auth.example.com" in repr(server)


# -- from_issuer ---------------------------------------------------------------------------


def test_from_issuer_uses_the_token_endpoint_and_basic(forge_responses: Mock) -> None:
    """The provider posts to the document's token endpoint with client_secret_basic."""
    forge_responses.get(OIDC_URL, json=_document())
    forge_responses.post(TOKEN_URL, json=TOKEN_JSON)
    provider = ClientCredentialsTokenProvider.from_issuer(ISSUER, "my-client", SECRET)
    assert provider.token_url == TOKEN_URL
    assert provider.client_auth.method == "client_secret_basic"
    assert provider.fetch_token().access_token == "at-1"
    header = forge_responses.calls[1].request.headers["Authorization"]
    assert base64.b64decode(header.removeprefix("Basic ")).decode() == f"my-client:{SECRET}"


def test_from_issuer_falls_back_to_post(forge_responses: Mock) -> None:
    """A server that lists only client_secret_post gets the secret in the form."""
    forge_responses.get(
        OIDC_URL, json=_document(token_endpoint_auth_methods_supported=["client_secret_post"])
    )
    forge_responses.post(TOKEN_URL, json=TOKEN_JSON)
    provider = ClientCredentialsTokenProvider.from_issuer(ISSUER, "my-client", client_secret=SECRET)
    provider.fetch_token()
    assert _form(forge_responses, 1)["client_secret"] == SECRET
    assert "Authorization" not in forge_responses.calls[1].request.headers


def test_from_issuer_refuses_a_secret_the_server_cannot_take(forge_responses: Mock) -> None:
    """A secret for a server that lists only private_key_jwt is a ConfigurationError."""
    forge_responses.get(
        OIDC_URL, json=_document(token_endpoint_auth_methods_supported=["private_key_jwt"])
    )
    with pytest.raises(ConfigurationError, match="private_key_jwt") as caught:
        ClientCredentialsTokenProvider.from_issuer(ISSUER, "my-client", SECRET)
    assert SECRET not in str(caught.value)


def test_from_issuer_keeps_the_callers_client_auth(forge_responses: Mock) -> None:
    """An explicit client_auth is used as given, whatever the server lists first."""
    forge_responses.get(OIDC_URL, json=_document())
    provider = ClientCredentialsTokenProvider.from_issuer(
        ISSUER, "my-client", SECRET, client_auth="body"
    )
    assert provider.client_auth.method == "client_secret_post"


def test_from_issuer_passes_the_grants_own_arguments(forge_responses: Mock) -> None:
    """Positional and keyword arguments reach the grant's constructor after the token URL."""
    forge_responses.get(OIDC_URL, json=_document())
    provider = PasswordGrantTokenProvider.from_issuer(
        ISSUER, "my-client", SECRET, "ada", "pw", scope="read"
    )
    assert (provider.token_url, provider.username, provider.scope) == (TOKEN_URL, "ada", "read")


def test_from_issuer_takes_issuer_as_a_keyword_of_the_grant(forge_responses: Mock) -> None:
    """The server argument is positional-only, so JwtBearer's own issuer= still works."""
    forge_responses.get(OIDC_URL, json=_document())
    key = RSAKey.generate_key(2048).as_pem(private=True).decode()
    provider = JwtBearerTokenProvider.from_issuer(ISSUER, key, issuer="svc@example")
    assert provider.token_url == TOKEN_URL


def test_from_issuer_refuses_a_token_url(forge_responses: Mock) -> None:
    """Giving token_url too is a ConfigurationError: the document names it."""
    with pytest.raises(ConfigurationError, match="token_url"):
        ClientCredentialsTokenProvider.from_issuer(ISSUER, "c", SECRET, token_url=TOKEN_URL)


def test_providers_share_an_authorization_servers_document(forge_responses: Mock) -> None:
    """Several providers built from one AuthorizationServer cost one document request."""
    forge_responses.get(OIDC_URL, json=_document())
    with AuthorizationServer(ISSUER) as server:
        first = ClientCredentialsTokenProvider.from_issuer(server, "a", SECRET, scope="x")
        second = ClientCredentialsTokenProvider.from_issuer(server, "b", SECRET, scope="y")
    assert first.token_url == second.token_url == TOKEN_URL
    assert len(forge_responses.calls) == 1


def test_discovery_errors_propagate_from_from_issuer(forge_responses: Mock) -> None:
    """A failed discovery is the TokenEndpointError, and no provider is built."""
    forge_responses.get(OIDC_URL, json=_document(issuer="https://evil.example"))
    with pytest.raises(TokenEndpointError, match="identical"):
        ClientCredentialsTokenProvider.from_issuer(ISSUER, "my-client", SECRET)
