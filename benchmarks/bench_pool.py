"""Pool throughput: ``HttpClient.map`` and ``requestforge.map`` against toolbelt's threaded map.

All three send the same GET requests to the same loopback ``ApiServer`` with the same number
of threads, and each makes fresh per-thread sessions on every call, as toolbelt does (ours
read the environment once per host, toolbelt's stock sessions on every request). The
server runs in a child process so its threads do not compete with the clients for this
process's GIL. The contenders take turns within every round (in a rotating order) so drift
in the machine affects all of them alike. The table shows each contender's median round, in
requests per second of wall time and in microseconds of this process's CPU time per request
(the client-side cost, steadier than wall time on a busy machine), and the ratio to toolbelt
as the median of the per-round ratios. Target: ours / toolbelt >= 1.0 in requests per second.

"lost" counts requests that got no response at all. toolbelt 1.0.0 starts each worker thread
before the thread object has its result queues, so a fast first request can crash the worker
(AttributeError '_responses') and lose that response and every job the worker would have run;
its crashes are counted, not printed. Any loss of ours stops the benchmark.

Run: ``.venv/bin/python benchmarks/bench_pool.py [--requests N] [--threads T] [--rounds R]``
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from requests_toolbelt import threaded as toolbelt_threaded

import requestforge
from requestforge import HttpClient, HttpClientConfigBuilder, ThreadResponse
from requestforge_testing import ApiServer, Reply

TOOLBELT = "requests_toolbelt.threaded.map"


def serve(conn: Connection) -> None:
    """Child process: run the API server until the parent says stop."""
    with ApiServer() as server:
        server.add("/bench", Reply(json={"id": 1, "name": "bench", "tags": ["a", "b"]}))
        conn.send(server.url)
        conn.recv()


def contenders(
    client: HttpClient, jobs: list[dict[str, Any]], threads: int
) -> dict[str, Callable[[], int]]:
    """Each contender runs every job once and returns how many were answered with a 200."""

    def client_map() -> int:
        results = client.map(jobs, num_processes=threads)
        return sum(isinstance(r, ThreadResponse) and r.status_code == 200 for r in results)

    def forge_map() -> int:
        responses, _ = requestforge.map(jobs, client=client, num_processes=threads)
        return sum(r.status_code == 200 for r in responses)

    def toolbelt_map() -> int:
        responses, _ = toolbelt_threaded.map(jobs, num_processes=threads)
        return sum(r.status_code == 200 for r in responses)

    return {"HttpClient.map": client_map, "requestforge.map": forge_map, TOOLBELT: toolbelt_map}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000, help="requests per run")
    parser.add_argument("--threads", type=int, default=8, help="worker threads per run")
    parser.add_argument("--rounds", type=int, default=5, help="runs of each contender")
    args = parser.parse_args()

    parent, child = multiprocessing.Pipe()
    server = multiprocessing.Process(target=serve, args=(child,), daemon=True)
    server.start()
    url = f"{parent.recv()}/bench"
    jobs: list[dict[str, Any]] = [{"method": "GET", "url": url} for _ in range(args.requests)]
    client = HttpClient(HttpClientConfigBuilder().with_timeout(30).build())
    runs = contenders(client, jobs, args.threads)
    rates: dict[str, list[float]] = {name: [] for name in runs}
    cpu: dict[str, list[float]] = {name: [] for name in runs}
    lost: dict[str, int] = dict.fromkeys(runs, 0)
    crashes: list[threading.ExceptHookArgs] = []
    threading.excepthook = crashes.append
    try:
        warm_up = contenders(client, jobs[: args.threads * 4], args.threads)
        for run in warm_up.values():
            run()
        names = list(runs)
        for round_number in range(args.rounds):
            shift = round_number % len(names)
            for name in names[shift:] + names[:shift]:
                started, cpu_started = time.perf_counter(), time.process_time()
                answered = runs[name]()
                elapsed = time.perf_counter() - started
                cpu_used = time.process_time() - cpu_started
                lost[name] += args.requests - answered
                if answered != args.requests and name != TOOLBELT:
                    raise SystemExit(f"{name}: {answered} of {args.requests} requests answered")
                rates[name].append(args.requests / elapsed)
                cpu[name].append(cpu_used / args.requests * 1e6)
    finally:
        client.close()
        parent.send("stop")
        server.join(timeout=10)

    print(
        f"{args.requests} GETs x {args.rounds} alternating rounds, {args.threads} threads, "
        f"loopback ApiServer in a child process"
    )
    header = (
        f"{'contender':<32} {'req/s':>7} {'min':>7} {'max':>7} {'CPU us/req':>11} "
        f"{'lost':>5} {'ratio':>6}"
    )
    print(f"  {header}")
    for name in runs:
        ratio = statistics.median(
            ours / theirs for ours, theirs in zip(rates[name], rates[TOOLBELT], strict=True)
        )
        print(
            f"  {name:<32} {statistics.median(rates[name]):7.0f} {min(rates[name]):7.0f} "
            f"{max(rates[name]):7.0f} {statistics.median(cpu[name]):11.0f} {lost[name]:5d} "
            f"{ratio:6.2f}"
        )
    print("  ratio: requests/second over toolbelt's in the same round, median; target >= 1.0")
    if crashes:
        kinds = sorted({f"{type(c.exc_value).__name__}: {c.exc_value}" for c in crashes})
        print(f"  {len(crashes)} worker thread(s) crashed: {'; '.join(kinds)}")


if __name__ == "__main__":
    main()
