"""Client overhead: the same requests through HttpClient, a bare requests.Session, httpx.Client
and a raw urllib3.PoolManager.

The API server runs in a child process so its work does not compete with the clients for
this process's GIL. The clients send the same requests, each over its own keep-alive
connection, taking turns in blocks (in a rotating order) so drift in the machine affects
them equally. HttpClient has hooks and a retry strategy configured, none of them triggered;
``HttpClient, no hooks`` is the default config, like for like with httpx.Client.
Targets: HttpClient / requests.Session <= 1.0 and HttpClient / httpx.Client <= 1.0, wall
and client CPU; raw urllib3 (a ``PoolManager.request`` reading the body, no environment, no
cookies, no redirects) is the floor under every client built on it, and each row's ratio to
it is printed.

A stock session reads the environment (proxy variables, NO_PROXY, CA bundle variables,
.netrc) on every request; HttpClient's sessions read it once per host. The third row, a
session with ``trust_env = False``, does no such lookups at all: it is requests' own floor
(what a stock session costs at best). ``httpx.Client`` is built
with its defaults (``trust_env`` on: it reads the environment once, when it is built).

Run: ``.venv/bin/python benchmarks/bench_client.py [--requests N] [--rounds R]``
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import time
from collections.abc import Callable
from multiprocessing.connection import Connection

import httpx
import requests
import urllib3

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

BARE = "requests.Session"
OURS = "HttpClient"
PLAIN = "HttpClient, no hooks"
FLOOR = "requests.Session, trust_env=False"
HTTPX = "httpx.Client"
RAW = "urllib3.PoolManager"


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
    floor = requests.Session()
    floor.trust_env = False
    client = HttpClient(config)
    plain = HttpClient(HttpClientConfigBuilder().with_base_url(base_url).build())
    rival = httpx.Client(timeout=30)
    raw = urllib3.PoolManager(retries=False, timeout=30)
    senders: dict[str, Callable[[], object]] = {
        BARE: lambda: bare.get(url, timeout=30).content,
        OURS: lambda: client.get("/bench"),
        PLAIN: lambda: plain.get("/bench"),
        FLOOR: lambda: floor.get(url, timeout=30).content,
        HTTPX: lambda: rival.get(url).content,
        RAW: lambda: raw.request("GET", url).data,
    }
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in senders}
    try:
        for _ in range(2):  # warm up every connection
            for send in senders.values():
                send()
        names = list(senders)
        for round_number in range(args.rounds):
            shift = round_number % len(names)
            for name in names[shift:] + names[:shift]:
                times[name].append(timed(senders[name], args.requests))
    finally:
        bare.close()
        floor.close()
        client.close()
        plain.close()
        rival.close()
        raw.clear()
        parent.send("stop")
        server.join(timeout=10)

    def per_request(name: str, which: int) -> float:
        block: int = args.requests
        return statistics.median(t[which] for t in times[name]) / block * 1e6

    total = args.requests * args.rounds
    print(f"{total} requests each over loopback, {args.rounds} rotating rounds (median)")
    print(f"  {'':<44} {'wall us/req':>12} {'client CPU us/req':>18}")
    for name in senders:
        print(f"  {name:<44} {per_request(name, 0):12.1f} {per_request(name, 1):18.1f}")
    print(f"  {'ratios':<44} {'wall':>12} {'client CPU':>18}")
    for label, ours, base in (
        ("HttpClient / requests.Session", OURS, BARE),
        ("HttpClient / httpx.Client", OURS, HTTPX),
        ("HttpClient, no hooks / httpx.Client", PLAIN, HTTPX),
        ("HttpClient / trust_env=False", OURS, FLOOR),
    ):
        wall = per_request(ours, 0) / per_request(base, 0)
        cpu = per_request(ours, 1) / per_request(base, 1)
        target = "   (target <= 1.0)" if base in (BARE, HTTPX) else ""
        print(f"  {label:<44} {wall:12.3f} {cpu:18.3f}{target}")
    for name in senders:
        if name != RAW:
            wall = per_request(name, 0) / per_request(RAW, 0)
            cpu = per_request(name, 1) / per_request(RAW, 1)
            print(f"  {name + ' / urllib3':<44} {wall:12.3f} {cpu:18.3f}")


if __name__ == "__main__":
    main()
