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


def timed(send: Callable[[], object], count: int) -> tuple[float, float]:
    """Wall-clock and this process's CPU seconds (the server's CPU is not counted)."""
    started, cpu = time.perf_counter(), time.process_time()
    for _ in range(count):
        send()
    return time.perf_counter() - started, time.process_time() - cpu


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
        bare_times: list[tuple[float, float]] = []
        ours_times: list[tuple[float, float]] = []
        for _ in range(args.rounds):
            bare_times.append(timed(lambda: bare.get(url, timeout=30).content, args.requests))
            ours_times.append(timed(lambda: client.get("/bench"), args.requests))
    finally:
        bare.close()
        client.close()
        parent.send("stop")
        server.join(timeout=10)

    def per_request(times: list[tuple[float, float]], which: int) -> float:
        block: int = args.requests
        return statistics.median(t[which] for t in times) / block * 1e6

    total = args.requests * args.rounds
    print(f"{total} requests each over loopback, {args.rounds} alternating rounds (median)")
    print(f"  {'':<18} {'wall us/req':>12} {'client CPU us/req':>18}")
    rows = {"requests.Session": bare_times, "HttpClient": ours_times}
    for name, times in rows.items():
        print(f"  {name:<18} {per_request(times, 0):12.1f} {per_request(times, 1):18.1f}")
    wall = per_request(ours_times, 0) / per_request(bare_times, 0)
    cpu = per_request(ours_times, 1) / per_request(bare_times, 1)
    print(f"  overhead ratio     {wall:12.3f} {cpu:18.3f}   (target <= 1.05)")


if __name__ == "__main__":
    main()
