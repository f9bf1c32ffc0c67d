"""Near caches across real processes: what the staleness bound promises, proved with processes.

Every worker process (``tests/integration/processes.py``) runs a ``TokenManager`` over its
own ``RedisTokenStorage`` with its near cache on (the default), so a warm process sends
Redis nothing. The processes share one redis-server and the local OAuth2 server of this
process, whose protected API checks every token; each process calls its own path under it,
so the server's records tell the processes apart. The fake time of every process is set by
this test with each command.

"At most one 401 per process after a revocation" holds for the calls a process starts once
its first 401 has been answered; requests already sent with the revoked token get one 401
each (and one resend), so 16 threads calling at once may see up to 16. Both are tested.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from requestforge import (
    ClientCredentialsTokenProvider,
    HttpClient,
    HttpClientConfigBuilder,
    RedisTokenStorage,
    TokenManager,
)
from requestforge_testing import FakeClock, OAuthServer, RedisServer, Reply, StressRunner
from tests.integration.processes import CONTEXT, PATIENCE, TokenWorker, Workers

PROCESSES = 4
THREADS = 16
EXPIRIES = 10
LIFETIME = 600.0
#: Inside the refresh window of a LIFETIME token (its last 300 s), well before its expiry.
INTO_THE_WINDOW = 400.0
#: The lease of the slow process's refresh lock in the write-back test, in real seconds.
SHORT_LEASE = 0.2
#: The token process 1 fetches, when the endpoint holds its answer too.
HELD_NEWER = "newer-token-held-inside"
#: Commands the test itself sends Redis to read its statistics (Redis 7 names subcommands
#: "cmdstat_config|resetstat").
OWN_COMMANDS = ("cmdstat_config", "cmdstat_info")


def _workers(
    redis_server: RedisServer, oauth: OAuthServer, *, lock_leases: list[float | None] | None = None
) -> Workers:
    """PROCESSES token workers with barriers for 1 and for THREADS threads per process."""
    barriers = {count: CONTEXT.Barrier(PROCESSES * count) for count in (1, THREADS)}
    return Workers(
        PROCESSES,
        TokenWorker,
        redis_url=redis_server.url,
        token_url=oauth.token_url,
        api_url=oauth.api_url,
        barriers=barriers,
        lock_leases=lock_leases or [],
    )


def _commands_since_reset(client: redis.Redis) -> dict[str, int]:
    """Commands Redis ran since the last ``CONFIG RESETSTAT``, other than the test's own."""
    stats: dict[str, Any] = client.info("commandstats")
    return {name: int(v["calls"]) for name, v in stats.items() if not name.startswith(OWN_COMMANDS)}


def _flat(answers: list[list[str]]) -> list[str]:
    return [answer for per_process in answers for answer in per_process]


def test_one_fetch_per_expiry_and_no_round_trip_when_warm(
    forge_redis: RedisServer,
    forge_oauth_server: OAuthServer,
    forge_clock: FakeClock,
) -> None:
    """4 processes x 16 threads x 10 expiries fetch exactly 10 tokens, and a second call of
    every thread after each expiry sends Redis no command at all (the near copies serve it)."""
    forge_oauth_server.lifetime = LIFETIME
    forge_oauth_server.latency = 0.05  # a slow endpoint: a wide window for a stampede
    fetches: list[int] = []
    distinct: list[set[str]] = []
    warm_commands: list[dict[str, int]] = []
    with _workers(forge_redis, forge_oauth_server) as workers, forge_redis.client() as stats:
        for _ in range(EXPIRIES):
            before = forge_oauth_server.fetch_count
            seen = _flat(workers.ask_all(forge_clock.now(), "tokens", THREADS))
            fetches.append(forge_oauth_server.fetch_count - before)
            distinct.append(set(seen))
            stats.config_resetstat()
            again = _flat(workers.ask_all(forge_clock.now(), "tokens", THREADS))
            warm_commands.append(_commands_since_reset(stats))
            assert set(again) == set(seen)
            forge_clock.advance(LIFETIME)  # the next round starts past the expiry
    assert workers.exitcodes == [0] * PROCESSES
    assert forge_oauth_server.fetch_count == EXPIRIES
    assert fetches == [1] * EXPIRIES
    assert [len(tokens) for tokens in distinct] == [1] * EXPIRIES
    assert [tokens <= set(forge_oauth_server.issued_tokens) for tokens in distinct] == [
        True
    ] * EXPIRIES
    assert warm_commands == [{}] * EXPIRIES


def test_renewal_in_the_refresh_window_is_single_flight_across_processes(
    forge_redis: RedisServer,
    forge_oauth_server: OAuthServer,
    forge_clock: FakeClock,
) -> None:
    """Every thread of every process asking inside the refresh window (not expired) causes
    exactly one fetch; each gets the old token or the new one, both accepted by the API."""
    forge_oauth_server.lifetime = LIFETIME
    forge_oauth_server.latency = 0.05
    with _workers(forge_redis, forge_oauth_server) as workers, forge_redis.client() as stats:
        (first,) = set(_flat(workers.ask_all(forge_clock.now(), "tokens", THREADS)))
        forge_clock.advance(INTO_THE_WINDOW)
        inside = _flat(workers.ask_all(forge_clock.now(), "tokens", THREADS))
        assert forge_oauth_server.fetch_count == 2
        second = forge_oauth_server.issued_tokens[-1]
        # Every process has read the renewal from Redis once; now they all serve it warm.
        stats.config_resetstat()
        after = _flat(workers.ask_all(forge_clock.now(), "tokens", THREADS))
        warm = _commands_since_reset(stats)
    assert workers.exitcodes == [0] * PROCESSES
    assert len(inside) == PROCESSES * THREADS
    assert set(inside) <= {first, second}
    assert after == [second] * (PROCESSES * THREADS)
    assert warm == {}
    assert forge_oauth_server.fetch_count == 2
    with HttpClient(
        HttpClientConfigBuilder().with_base_url(forge_oauth_server.api_url).build()
    ) as api:
        for token in (first, second):
            assert (
                api.get("/check", headers={"Authorization": f"Bearer {token}"}).status_code == 200
            )


def _carrying(oauth: OAuthServer, token: str, since: int) -> dict[str, int]:
    """Per API path, the requests after the first ``since`` that carried ``token``."""
    counts: dict[str, int] = {}
    for request in oauth.api_requests[since:]:
        if request.headers.get("Authorization") == f"Bearer {token}":
            counts[request.path] = counts.get(request.path, 0) + 1
    return counts


def test_a_revoked_token_costs_each_process_one_401_and_the_fleet_one_fetch(
    forge_redis: RedisServer, forge_oauth_server: OAuthServer, forge_clock: FakeClock
) -> None:
    """After a revocation, the first call of each warm process gets one 401 and its resend a
    200; the fleet fetches once (the others take the renewal from Redis on their 401), and
    16 threads per process calling next get no 401 at all."""
    forge_oauth_server.lifetime = LIFETIME
    paths = [f"/api/worker-{index}" for index in range(PROCESSES)]
    with _workers(forge_redis, forge_oauth_server) as workers:
        warm = _flat(workers.ask_all(forge_clock.now(), "statuses", THREADS))
        assert warm == ["200"] * (PROCESSES * THREADS)
        (revoked,) = forge_oauth_server.issued_tokens
        assert forge_oauth_server.revoke(revoked)
        since = len(forge_oauth_server.api_requests)
        first_calls = _flat(workers.ask_all(forge_clock.now(), "statuses", 1))
        rejected = _carrying(forge_oauth_server, revoked, since)
        fetches_after_first_calls = forge_oauth_server.fetch_count
        since = len(forge_oauth_server.api_requests)
        next_calls = _flat(workers.ask_all(forge_clock.now(), "statuses", THREADS))
        rejected_later = _carrying(forge_oauth_server, revoked, since)
    assert workers.exitcodes == [0] * PROCESSES
    assert first_calls == ["200"] * PROCESSES
    assert rejected == dict.fromkeys(paths, 1)
    assert fetches_after_first_calls == 2
    assert next_calls == ["200"] * (PROCESSES * THREADS)
    assert rejected_later == {}
    assert forge_oauth_server.fetch_count == 2


def test_a_revocation_under_concurrent_calls_costs_one_fetch(
    forge_redis: RedisServer, forge_oauth_server: OAuthServer, forge_clock: FakeClock
) -> None:
    """16 threads per process calling at once after a revocation all end 200 (each request
    resent at most once, so a process sees 1 to 16 401s), only the revoked token is ever
    refused, and the fleet fetches once."""
    forge_oauth_server.lifetime = LIFETIME
    with _workers(forge_redis, forge_oauth_server) as workers:
        workers.ask_all(forge_clock.now(), "statuses", THREADS)
        (revoked,) = forge_oauth_server.issued_tokens
        forge_oauth_server.revoke_all()
        since = len(forge_oauth_server.api_requests)
        calls = _flat(workers.ask_all(forge_clock.now(), "statuses", THREADS))
    assert workers.exitcodes == [0] * PROCESSES
    assert calls == ["200"] * (PROCESSES * THREADS)
    assert forge_oauth_server.fetch_count == 2
    (renewed,) = forge_oauth_server.issued_tokens[1:]
    sent = [r.headers.get("Authorization") for r in forge_oauth_server.api_requests[since:]]
    assert set(sent) <= {f"Bearer {revoked}", f"Bearer {renewed}"}
    # Every call ended 200 with its one resend: one request with the renewal per 401.
    assert sent.count(f"Bearer {renewed}") == PROCESSES * THREADS
    # Each process sends the revoked token at least once (its near copy), at most once a call.
    per_process = _carrying(forge_oauth_server, revoked, since)
    assert sorted(per_process) == [f"/api/worker-{index}" for index in range(PROCESSES)]
    assert all(1 <= count <= THREADS for count in per_process.values())


def _held_token_reply(token: str, release: threading.Event) -> Reply:
    """A token response whose body the server sends only once ``release`` is set."""

    def body() -> Iterator[bytes]:
        if not release.wait(PATIENCE):
            return
        yield json.dumps(
            {"access_token": token, "token_type": "Bearer", "expires_in": LIFETIME}
        ).encode()

    headers = {"Content-Type": "application/json", "Cache-Control": "no-store"}
    return Reply(stream=body, headers=headers)


def _wait_until_gone(client: redis.Redis, pattern: str) -> None:
    """Poll Redis until no key matches ``pattern`` (Redis expires leases in real time, and
    tells nobody)."""
    pause = threading.Event()
    for _ in range(int(PATIENCE / 0.005)):
        if not list(client.scan_iter(pattern)):
            return
        pause.wait(0.005)
    raise AssertionError(f"{pattern} still exists after {PATIENCE:g}s")


@pytest.mark.parametrize(
    "newer_holder_inside", [False, True], ids=["after-the-newer-write", "while-the-newer-fetches"]
)
def test_a_slow_process_whose_lease_ran_out_does_not_overwrite_the_newer_token(
    forge_redis: RedisServer,
    forge_oauth_server: OAuthServer,
    forge_clock: FakeClock,
    newer_holder_inside: bool,
) -> None:
    """Process 0's fetch is held past its 0.2 s lease while process 1 takes the lock and
    fetches; process 0's fenced write, after process 1 stored or while it still fetches, is
    refused, so Redis ends with process 1's token, and process 0's caller still gets its own."""
    forge_oauth_server.lifetime = LIFETIME
    release_slow, release_newer = threading.Event(), threading.Event()
    stale = "held-token-fetched-under-a-lost-lease"
    forge_oauth_server.reply_next(_held_token_reply(stale, release_slow))
    if newer_holder_inside:
        forge_oauth_server.reply_next(_held_token_reply(HELD_NEWER, release_newer))
    leases: list[float | None] = [SHORT_LEASE] + [None] * (PROCESSES - 1)
    stored_while_inside: list[bytes] = []
    with (
        _workers(forge_redis, forge_oauth_server, lock_leases=leases) as workers,
        forge_redis.client() as redis_client,
    ):
        try:
            workers.send(0, forge_clock.now(), "token")
            forge_oauth_server.wait_for_token_requests(1, timeout=PATIENCE)  # 0 is inside
            _wait_until_gone(redis_client, "requestforge:*:lock")  # ...and its lease ran out
            workers.send(1, forge_clock.now(), "token")
            if newer_holder_inside:
                forge_oauth_server.wait_for_token_requests(2, timeout=PATIENCE)  # 1 is inside
                release_slow.set()
                slow = workers.receive(0)
                stored_while_inside = list(redis_client.scan_iter("requestforge:*:token"))
                release_newer.set()
            newer = workers.receive(1)
        finally:
            release_slow.set()
            release_newer.set()
        if not newer_holder_inside:
            slow = workers.receive(0)
        workers.send(0, forge_clock.now(), "stored")
        seen_by_slow = workers.receive(0)
        workers.send(0, forge_clock.now(), "warnings")
        warnings = workers.receive(0)
        keys = list(redis_client.scan_iter("requestforge:*:token"))
        raw = redis_client.get(keys[0]) if len(keys) == 1 else None
    assert workers.exitcodes == [0] * PROCESSES
    assert slow == stale
    issued = forge_oauth_server.issued_tokens
    assert issued == ([] if newer_holder_inside else [newer])
    assert newer == (HELD_NEWER if newer_holder_inside else issued[0])
    assert stored_while_inside == []  # the slow write did not land while 1 held the lock
    assert raw is not None
    assert newer.encode() in raw
    assert stale.encode() not in raw
    assert seen_by_slow == newer
    holder = "another process holds it" if newer_holder_inside else "nobody holds it"
    assert any("was not stored" in message and holder in message for message in warnings)
    assert not any(stale in message for message in warnings)


def test_two_storages_under_stress_renew_a_revoked_token_once(
    forge_redis: RedisServer,
    forge_oauth_server: OAuthServer,
    forge_clock: FakeClock,
    forge_stress: StressRunner,
) -> None:
    """Two managers on two Redis clients with near caches (two "processes" in one), revoked
    before each round: every call ends 200, only the revoked token is refused, one fetch per
    revocation, and afterwards each storage serves the renewal without a 401."""
    forge_oauth_server.lifetime = LIFETIME
    rounds = 5
    with forge_redis.client() as first, forge_redis.client() as second:
        providers = [
            ClientCredentialsTokenProvider(
                forge_oauth_server.token_url, "forge-client", "forge-secret"
            )
            for _ in range(2)
        ]
        managers = [
            TokenManager(provider, RedisTokenStorage(client))
            for provider, client in zip(providers, (first, second), strict=True)
        ]
        base = HttpClientConfigBuilder().with_base_url(forge_oauth_server.api_url)
        clients = [HttpClient(base.with_token_auth(manager).build()) for manager in managers]
        for client in clients:
            assert client.get("/warm").status_code == 200  # both near caches hold the token
        starts: list[int] = []
        revoked: list[str] = []

        def revoke(_: int) -> None:
            revoked.append(forge_oauth_server.issued_tokens[-1])
            forge_oauth_server.revoke_all()
            starts.append(len(forge_oauth_server.api_requests))

        turn = itertools.count()

        def call() -> int:
            index = next(turn) % 2
            return clients[index].get(f"/storage-{index}").status_code

        try:
            report = forge_stress(call, threads=8, rounds=rounds, before_round=revoke)
            end_of_stress = len(forge_oauth_server.api_requests)
            after = [client.get("/after").status_code for client in clients]
        finally:
            for client in clients:
                client.close()
            for provider in providers:
                provider.close()
    report.assert_no_errors()
    assert [list(round_.results) for round_ in report.rounds] == [[200] * 8] * rounds
    assert forge_oauth_server.fetch_count == 1 + rounds  # the warm-up's, then one per revocation
    issued = forge_oauth_server.issued_tokens
    requests = forge_oauth_server.api_requests
    for number, start in enumerate(starts):
        end = starts[number + 1] if number + 1 < len(starts) else end_of_stress
        sent = {r.headers.get("Authorization") for r in requests[start:end]}
        assert sent <= {f"Bearer {revoked[number]}", f"Bearer {issued[number + 1]}"}
    # Each storage's near copy is the renewal now: one request each, no 401.
    assert after == [200, 200]
    sent_after = [r.headers.get("Authorization") for r in requests[end_of_stress:]]
    assert sent_after == [f"Bearer {issued[-1]}"] * len(clients)
