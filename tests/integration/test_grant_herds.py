"""Every grant behind a TokenManager under a 32-thread herd against forge_oauth_server: one
token per expiry, whatever the grant, the client authentication or DPoP.

Each flow runs 4 rounds of 32 threads calling the protected API; before rounds 2-4 the
test's clock passes the token lifetime (on the server too), so every round needs a new
token. The server's grant counts are the figure: exactly one issued token per round for
the flow's grant (a refresh grant after the first round when the flow has refresh tokens,
and one subject token per round for the pipeline, whose first step expires too).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from requestforge import DPoPKey, TokenManager, TokenProviderInterface
from requestforge_testing import FakeClock, OAuthServer, StressRunner
from tests import oauth_flows as flows
from tests.api_clients import token_client
from tests.oauth_flows import ROUNDS, THREADS, expiry_herd


@dataclass(frozen=True)
class Flow:
    """How to build a flow's provider against the server, and the grants it must cost."""

    make: Callable[..., TokenProviderInterface]
    grants: dict[str, int]
    options: Callable[[OAuthServer], dict[str, Any]] = lambda server: {}


def _with_dpop_nonces(server: OAuthServer) -> dict[str, Any]:
    server.dpop_nonce_required = True
    return {"dpop": DPoPKey()}


CC = "client_credentials"
FLOWS = {
    "client_credentials-basic": Flow(flows.client_credentials, {CC: ROUNDS}),
    "client_credentials-client_secret_jwt": Flow(flows.client_secret_jwt, {CC: ROUNDS}),
    "client_credentials-private_key_jwt-ES256": Flow(flows.private_key_jwt, {CC: ROUNDS}),
    "client_credentials-private_key_jwt-RS256": Flow(
        flows.private_key_jwt, {CC: ROUNDS}, lambda server: {"alg": "RS256"}
    ),
    "client_credentials-private_key_jwt-PS256": Flow(
        flows.private_key_jwt, {CC: ROUNDS}, lambda server: {"alg": "PS256"}
    ),
    "password-then-refresh": Flow(flows.password, {"password": 1, "refresh_token": ROUNDS - 1}),
    "jwt_bearer": Flow(flows.jwt_bearer, {flows.JWT_BEARER: ROUNDS}),
    "token_exchange": Flow(flows.token_exchange, {flows.EXCHANGE: ROUNDS}),
    "custom_grant": Flow(flows.custom_grant, {flows.DEVICE: ROUNDS}),
    "pipeline-exchange_step": Flow(flows.exchange_pipeline, {CC: ROUNDS, flows.EXCHANGE: ROUNDS}),
    "client_credentials-dpop_nonces": Flow(
        flows.client_credentials, {CC: ROUNDS}, _with_dpop_nonces
    ),
    "token_exchange-dpop_nonces": Flow(
        flows.token_exchange, {flows.EXCHANGE: ROUNDS}, _with_dpop_nonces
    ),
    "pipeline-dpop_nonces": Flow(
        flows.exchange_pipeline, {CC: ROUNDS, flows.EXCHANGE: ROUNDS}, _with_dpop_nonces
    ),
}


@pytest.mark.parametrize("name", list(FLOWS))
def test_a_herd_costs_one_token_per_expiry(
    forge_oauth_server: OAuthServer,
    forge_clock: FakeClock,
    forge_stress: StressRunner,
    name: str,
) -> None:
    """32 threads per round call the API: one issued token per expiry for the flow's grant,
    every call answered 200, and no token refused by the server."""
    flow = FLOWS[name]
    forge_oauth_server.latency = 0.05  # a slow endpoint: a wide window for a stampede
    provider = flow.make(forge_oauth_server, **flow.options(forge_oauth_server))
    manager = TokenManager(provider, leeway=0)

    with token_client(forge_oauth_server, manager) as client:
        report = expiry_herd(
            forge_stress,
            lambda: client.get("/herd").status_code,
            clock=forge_clock,
            lifetime=forge_oauth_server.lifetime,
            counter=lambda: forge_oauth_server.fetch_count,
            sessions=client,
        )
    manager.close()
    report.assert_no_errors()
    assert report.results == [200] * (THREADS * ROUNDS)
    assert forge_oauth_server.grant_counts == flow.grants
    refused = [r.error for r in forge_oauth_server.token_requests if r.status != 200]
    assert refused == (["use_dpop_nonce"] if name.endswith("dpop_nonces") else [])
    per_round = sum(flow.grants.values()) // ROUNDS
    deltas = [r.counts[1] - r.counts[0] for r in report.rounds if r.counts is not None]
    assert deltas == [per_round] * ROUNDS
