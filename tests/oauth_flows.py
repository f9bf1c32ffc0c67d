"""What several OAuth test files share: providers for each grant against forge_oauth_server
(the server is told what to trust: a client key, an assertion issuer, a subject token, a
grant handler; ``options`` such as ``dpop=`` go to the provider), and the herd over
expiries that every authorization server, ours or a peer, is measured with."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from joserfc.jwk import ECKey, RSAKey

from requestforge import (
    BodyTokenFetcher,
    ClientCredentialsTokenProvider,
    ClientSecretBasic,
    ClientSecretJwt,
    CustomGrantTokenProvider,
    JwtBearerTokenProvider,
    PasswordGrantTokenProvider,
    PipelineTokenProvider,
    PrivateKeyJwt,
    TokenExchangeFetcher,
    TokenExchangeTokenProvider,
    TokenFetchPipeline,
)
from requestforge_testing import FakeClock, OAuthServer, StressReport, StressRunner

CLIENT_ID, CLIENT_SECRET = "forge-client", "forge-secret"
#: A herd: this many threads at once, in this many rounds, each round with an expired token.
THREADS, ROUNDS = 32, 4
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
DEVICE = "urn:example:device"
#: A client_secret_jwt secret: RFC 7518 wants 32 bytes or more for HS256.
HS_CLIENT, HS_SECRET = "hs-client", "a-client-secret-of-forty-two-characters!!"


def client_credentials(server: OAuthServer, **options: Any) -> ClientCredentialsTokenProvider:
    return ClientCredentialsTokenProvider(server.token_url, CLIENT_ID, CLIENT_SECRET, **options)


def client_secret_jwt(server: OAuthServer, **options: Any) -> ClientCredentialsTokenProvider:
    server.add_client(HS_CLIENT, HS_SECRET)
    auth = ClientSecretJwt(HS_SECRET)
    return ClientCredentialsTokenProvider(
        server.token_url, HS_CLIENT, None, client_auth=auth, **options
    )


def private_key_jwt(
    server: OAuthServer, alg: str = "ES256", **options: Any
) -> ClientCredentialsTokenProvider:
    """private_key_jwt with a new key for ``alg`` (ES256, RS256 or PS256)."""
    key = ECKey.generate_key("P-256") if alg == "ES256" else RSAKey.generate_key(2048)
    server.add_client("jwt-client", keys=key.as_dict(private=False))
    auth = PrivateKeyJwt(key, alg=alg)
    return ClientCredentialsTokenProvider(
        server.token_url, "jwt-client", None, client_auth=auth, **options
    )


def password(server: OAuthServer, **options: Any) -> PasswordGrantTokenProvider:
    return PasswordGrantTokenProvider(
        server.token_url, CLIENT_ID, CLIENT_SECRET, "forge-user", "forge-password", **options
    )


def jwt_bearer(server: OAuthServer, **options: Any) -> JwtBearerTokenProvider:
    key = ECKey.generate_key("P-256")
    server.add_assertion_issuer("svc@example.test", key.as_dict(private=False))
    return JwtBearerTokenProvider(
        server.token_url, key, issuer="svc@example.test", alg="ES256", **options
    )


def token_exchange(server: OAuthServer, **options: Any) -> TokenExchangeTokenProvider:
    server.add_subject_token("upstream-token", subject="alice")
    return TokenExchangeTokenProvider(
        server.token_url, CLIENT_ID, CLIENT_SECRET, subject_token="upstream-token", **options
    )


def custom_grant(server: OAuthServer, **options: Any) -> CustomGrantTokenProvider:
    server.add_grant_handler(DEVICE, lambda form, client_id: None)
    return CustomGrantTokenProvider(
        server.token_url,
        CLIENT_ID,
        CLIENT_SECRET,
        grant_type=DEVICE,
        params={"device": "d-1"},
        **options,
    )


def exchange_pipeline(server: OAuthServer, **options: Any) -> PipelineTokenProvider:
    """A client credentials step, then a token exchange step given ``options``."""
    credentials = ClientSecretBasic(CLIENT_SECRET)
    steps = [
        BodyTokenFetcher(
            "workload",
            server.token_url,
            data={"grant_type": "client_credentials"},
            client_id=CLIENT_ID,
            client_auth=credentials,
        ),
        TokenExchangeFetcher(
            "api",
            server.token_url,
            subject_from="workload",
            client_id=CLIENT_ID,
            client_auth=credentials,
            **options,
        ),
    ]
    return PipelineTokenProvider(TokenFetchPipeline(steps), "mesh")


_T = TypeVar("_T")


def expiry_herd(
    stress: StressRunner,
    fn: Callable[[], _T],
    *,
    clock: FakeClock,
    lifetime: float,
    counter: Callable[[], int] | None = None,
    sessions: Any = None,
) -> StressReport[_T]:
    """``THREADS`` threads call ``fn`` at once in each of ``ROUNDS`` rounds; before every
    round but the first ``clock`` passes a token ``lifetime``, so each round needs a new
    token (and, with ``counter``, each round's token requests are counted)."""

    def expire(round_number: int) -> None:
        if round_number:
            clock.advance(lifetime + 1)

    return stress(
        fn,
        threads=THREADS,
        rounds=ROUNDS,
        before_round=expire,
        counter=counter,
        sessions=sessions,
    )
