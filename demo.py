"""The README's first command: a local API driven by one HttpClient from many threads.

Starts requestforge_testing's loopback API server, sends requests from many threads through
one shared client with retries and hooks, then trips and heals a circuit breaker. Then it
starts the local OAuth2 server and calls its protected API from many threads with token auth:
one token fetch for all of them, and one refresh when the server revokes the token. It prints
what the servers and the client saw. Finally (``--processes N``, 4 by default) it starts
redis-server, when installed, and N worker processes: with per-process caches each fetches
its own token; with ``RedisTokenStorage`` all of them together fetch one. Runs in a few
seconds with no network but loopback.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import threading
import time
from collections import Counter
from typing import Any

from requestforge import (
    CircuitBreakerRetryStrategy,
    CircuitOpenError,
    ClientCredentialsTokenProvider,
    CorrelationIdHook,
    ErrorHookInterface,
    ExponentialBackoffRetryStrategy,
    HttpClient,
    HttpClientConfigBuilder,
    RateLimitInfo,
    RateLimitResponseHook,
    RedisTokenStorage,
    RequestContext,
    SimpleRetryStrategy,
    TokenManager,
)
from requestforge_testing import ApiServer, OAuthServer, RecordedRequest, RedisServer, Reply


class CountingErrorHook(ErrorHookInterface):
    """Counts failed attempts by error type (thread-safe: the client shares it)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def on_error(self, error: BaseException, context: RequestContext) -> None:
        with self._lock:
            self.counts[type(error).__name__] += 1


def script_items(server: ApiServer) -> None:
    """Every 10th item fails once with a 503 and every 25th drops the connection once."""
    failed_once: set[str] = set()
    lock = threading.Lock()

    def items(request: RecordedRequest) -> Reply:
        item = request.query.get("id", ["0"])[0]
        with lock:
            first = item not in failed_once
            failed_once.add(item)
        if first and int(item) % 25 == 0:
            return Reply(drop=True)
        if first and int(item) % 10 == 0:
            return Reply(status=503, headers={"Retry-After": "0"})
        return Reply(
            json={"id": int(item)}, headers={"X-RateLimit-Remaining": str(1000 - int(item))}
        )

    server.add_handler("/items", items)


def run_threads(server: ApiServer, threads: int, per_thread: int) -> None:
    errors = CountingErrorHook()
    lowest: list[RateLimitInfo] = []
    config = (
        HttpClientConfigBuilder()
        .with_base_url(server.url)
        .with_timeout(5)
        .with_retry_strategy(ExponentialBackoffRetryStrategy(3, base_delay=0.01, max_delay=0.05))
        .with_request_hook(CorrelationIdHook())
        .with_response_hook(
            RateLimitResponseHook(on_rate_limit=lambda info, _: lowest.append(info))
        )
        .with_error_hook(errors)
        .build()
    )
    sessions: dict[str, int] = {}
    statuses: Counter[int] = Counter()
    lock = threading.Lock()
    barrier = threading.Barrier(threads)

    with HttpClient(config) as client:

        def worker(n: int) -> None:
            barrier.wait()
            for i in range(per_thread):
                response = client.get("/items", params={"id": n * per_thread + i})
                with lock:
                    statuses[response.status_code] += 1
            with lock:
                sessions[threading.current_thread().name] = id(client.session)

        pool = [threading.Thread(target=worker, args=(n,), name=f"w{n}") for n in range(threads)]
        for t in pool:
            t.start()
        for t in pool:
            t.join()

    total = threads * per_thread
    seen = server.requests_to("/items")
    correlation_ids = Counter(r.headers.get("X-Correlation-ID") for r in seen)
    retried_ids = sum(1 for count in correlation_ids.values() if count > 1)
    print(f"{threads} threads x {per_thread} requests = {total} requests through one HttpClient")
    print(f"  responses:          {dict(statuses)}")
    print(f"  server received:    {len(seen)} requests ({len(seen) - total} were retries)")
    print(f"  failed attempts:    {dict(errors.counts)} (each retried with backoff)")
    print(f"  correlation ids:    {len(correlation_ids)} distinct, {retried_ids} reused by a retry")
    print(f"  sessions:           {len(set(sessions.values()))} distinct for {threads} threads")
    print(f"  TCP connections:    {server.connections_accepted} accepted by the server")
    if lowest:
        print(f"  lowest rate limit:  {min(i.remaining or 0 for i in lowest)} remaining")


def run_breaker(server: ApiServer) -> None:
    server.add("/fragile", Reply(status=500))
    breaker = CircuitBreakerRetryStrategy(
        failure_threshold=3, reset_timeout=0.2, retry=SimpleRetryStrategy(0)
    )
    config = (
        HttpClientConfigBuilder().with_base_url(server.url).with_retry_strategy(breaker).build()
    )
    outcomes: list[str] = []
    with HttpClient(config) as client:
        for _ in range(5):
            try:
                outcomes.append(str(client.get("/fragile").status_code))
            except CircuitOpenError:
                outcomes.append("refused")
        state_when_open = breaker.state
        server.add("/fragile", Reply(body="recovered"))
        time.sleep(0.25)  # the breaker's reset timeout passes on the real clock
        outcomes.append(client.get("/fragile").text)
    print("circuit breaker (threshold 3, reset after 0.2s):")
    print(f"  outcomes:           {outcomes}")
    print(f"  state after 5 calls: {state_when_open.value}; after the probe: {breaker.state.value}")
    print(f"  server received:    {len(server.requests_to('/fragile'))} requests to /fragile")


def run_tokens(threads: int, per_thread: int) -> None:
    """Many threads, one token: the OAuth server counts how often its token endpoint is hit."""
    with OAuthServer() as oauth:
        oauth.latency = 0.05  # a slow token endpoint: a wide window for a stampede
        provider = ClientCredentialsTokenProvider(
            oauth.token_url, "forge-client", "forge-secret", scope="read"
        )
        manager = TokenManager(provider)
        config = HttpClientConfigBuilder().with_token_auth(token_manager=manager).build()
        statuses: Counter[int] = Counter()
        lock = threading.Lock()

        def burst() -> None:
            barrier = threading.Barrier(threads)

            def worker(n: int) -> None:
                barrier.wait()
                for i in range(per_thread):
                    status = client.get(f"{oauth.api_url}/orders/{n}-{i}").status_code
                    with lock:
                        statuses[status] += 1

            pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
            for t in pool:
                t.start()
            for t in pool:
                t.join()

        with HttpClient(config) as client:
            print(f"OAuth2 server on {oauth.url}; {threads} threads start together, no token yet")
            burst()
            first_fetches, first_calls = oauth.fetch_count, len(oauth.api_requests)
            print(f"  API calls:          {first_calls}, statuses {dict(statuses)}")
            print(f"  token fetches:      {first_fetches} (the other threads waited for it)")
            oauth.revoke_all()
            statuses.clear()
            burst()
            rejected = len(oauth.api_requests) - first_calls - threads * per_thread
            print("after the server revoked the token:")
            print(f"  API calls:          statuses {dict(statuses)}, {rejected} got a 401 first")
            refreshes = oauth.fetch_count - first_fetches
            print(f"  token fetches:      {refreshes} (compare-and-refresh)")
            print(f"  secret in repr:     {'forge-secret' in repr(provider)}")
        provider.close()


def process_worker(
    redis_url: str | None, oauth_url: str, threads: int, per_thread: int, barrier: Any
) -> None:
    """One worker process (think gunicorn worker): its own manager, client and threads."""
    token_url, api_url = f"{oauth_url}/oauth/token", f"{oauth_url}/api"
    provider = ClientCredentialsTokenProvider(token_url, "forge-client", "forge-secret")
    storage = RedisTokenStorage(redis_url) if redis_url is not None else None
    manager = TokenManager(provider, storage)
    config = HttpClientConfigBuilder().with_token_auth(token_manager=manager).build()
    with HttpClient(config) as client:

        def worker() -> None:
            barrier.wait(60)
            for i in range(per_thread):
                client.get(f"{api_url}/orders/{os.getpid()}-{i}").raise_for_status()

        pool = [threading.Thread(target=worker) for _ in range(threads)]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
    provider.close()


def run_processes(processes: int, threads: int, per_thread: int) -> None:
    """The same load from several processes, first with per-process caches, then via Redis."""
    if not RedisServer.available():
        print("--processes: redis-server not found, skipped (apt-get install redis-server)")
        return
    spawn = multiprocessing.get_context("spawn")
    with RedisServer() as redis, OAuthServer() as oauth:
        oauth.latency = 0.05
        print(f"{processes} processes x {threads} threads, all released together:")
        for label, redis_url in (("in-memory storage", None), ("RedisTokenStorage", redis.url)):
            before = oauth.fetch_count
            barrier = spawn.Barrier(processes * threads)
            workers = [
                spawn.Process(
                    target=process_worker,
                    args=(redis_url, oauth.url, threads, per_thread, barrier),
                )
                for _ in range(processes)
            ]
            for p in workers:
                p.start()
            for p in workers:
                p.join()
            failed = sum(p.exitcode != 0 for p in workers)
            print(
                f"  {label + ':':<20} {oauth.fetch_count - before} token fetch(es)"
                + (f", {failed} processes failed" if failed else "")
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--requests", type=int, default=25, help="requests per thread")
    parser.add_argument(
        "--processes", type=int, default=4, help="worker processes sharing Redis (0: skip)"
    )
    args = parser.parse_args()
    with ApiServer() as server:
        print(f"local API on {server.url}\n")
        script_items(server)
        run_threads(server, args.threads, args.requests)
        print()
        run_breaker(server)
    print()
    run_tokens(args.threads, args.requests)
    if args.processes > 0:
        print()
        run_processes(args.processes, args.threads // 2 or 1, 5)


if __name__ == "__main__":
    main()
