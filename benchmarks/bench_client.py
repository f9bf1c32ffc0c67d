"""Client overhead: the same requests through a bare requests.Session and through HttpClient.

The API server runs in a child process so its work does not compete with the clients for
this process's GIL. Both clients send the same requests over one keep-alive connection,
alternating in blocks so drift in the machine affects both equally. HttpClient has hooks
and a retry strategy configured, none of them triggered. Target: ratio <= 1.05.

Run: ``.venv/bin/python benchmarks/bench_client.py [--requests N] [--rounds R]``
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import time
from collections.abc import Callable
from multiprocessing.connection import Connection

import requests

from requestforge import (
    CorrelationIdHook,
    ExponentialBackoffRetryStrategy,
    HttpClient,
    HttpClientConfigBuilder,
    LoggingErrorHook,
    LoggingRequestHook,
    LoggingResponseHook,
    RateLimitResponseHook,
)
from requestforge_testing import ApiServer, Reply


def serve(conn: Connection) -> None:
    """Child process: run the API server until the parent says stop."""
    with ApiServer() as server:
        server.add("/bench", Reply(json={"id": 1, "name": "bench"}))
        conn.send(server.url)
        conn.recv()


def timed(send: Callable[[], object], count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        send()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=200, help="requests per block")
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()

    parent, child = multiprocessing.Pipe()
    server = multiprocessing.Process(target=serve, args=(child,), daemon=True)
    server.start()
    base_url = parent.recv()
    url = f"{base_url}/bench"

    config = (
        HttpClientConfigBuilder()
        .with_base_url(base_url)
        .with_retry_strategy(ExponentialBackoffRetryStrategy(3))
        .with_request_hook(CorrelationIdHook())
        .with_request_hook(LoggingRequestHook())
        .with_response_hook(LoggingResponseHook())
        .with_response_hook(RateLimitResponseHook())
        .with_error_hook(LoggingErrorHook())
        .build()
    )
    bare = requests.Session()
    client = HttpClient(config)
    try:
        for _ in range(2):  # warm up both connections
            bare.get(url, timeout=30).content  # noqa: B018
            client.get("/bench")
        bare_times, ours_times = [], []
        for _ in range(args.rounds):
            bare_times.append(timed(lambda: bare.get(url, timeout=30).content, args.requests))
            ours_times.append(timed(lambda: client.get("/bench"), args.requests))
    finally:
        bare.close()
        client.close()
        parent.send("stop")
        server.join(timeout=10)

    per_request = {
        "requests.Session": statistics.median(bare_times) / args.requests * 1e6,
        "HttpClient": statistics.median(ours_times) / args.requests * 1e6,
    }
    total = args.requests * args.rounds
    print(f"{total} requests each over loopback, {args.rounds} alternating rounds (median)")
    for name, micros in per_request.items():
        print(f"  {name:<18} {micros:8.1f} us/request")
    ratio = per_request["HttpClient"] / per_request["requests.Session"]
    print(f"  overhead ratio     {ratio:8.3f}  (target <= 1.05)")


if __name__ == "__main__":
    main()
