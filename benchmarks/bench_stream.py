"""Streaming: a 1 GiB download read with ``iter_content`` through a bare requests.Session and
through ``HttpClient(stream=True)``, for memory and throughput.

The API server runs in a child process and sends the body in 1 MiB chunks (chunked
framing), made once and sent again and again, so it holds no gigabyte either. Each client
run happens in a fresh child process of its own, so its peak RSS (``ru_maxrss``) before
and after the download shows what streaming added, with nothing left over from another
run. The runs alternate (bare, ours, ours, bare, ...) so drift in the machine affects
both alike.

Targets: peak RSS rises by at most 16 MiB, and HttpClient's throughput is >= 0.95x bare
requests' in the same run.

Run: ``.venv/bin/python benchmarks/bench_stream.py [--mib N] [--rounds R] [--chunk-kib K]``
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import statistics
import time
from collections.abc import Iterator
from multiprocessing.connection import Connection

import requests

from requestforge import HttpClient
from requestforge_testing import ApiServer, Reply

BARE = "requests.Session"
OURS = "HttpClient"
#: The same download without stream=True: it shows the RSS reading works (the body is held).
BUFFERED = "HttpClient, buffered (control)"
MIB = 1024 * 1024


def serve(conn: Connection, mib: int) -> None:
    """Child process: stream ``mib`` MiB per request until the parent says stop."""
    block = b"x" * MIB

    def body() -> Iterator[bytes]:
        for _ in range(mib):
            yield block

    with ApiServer() as server:
        server.add("/big", Reply(stream=body))
        conn.send(server.url)
        conn.recv()


def peak_rss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def download(conn: Connection, which: str, url: str, chunk: int) -> None:
    """Child process: one streamed download; sends (seconds, bytes, RSS rise in KiB)."""
    if which == BARE:
        session = requests.Session()
        session.get(url, stream=True, timeout=30).close()  # warm: connection, code loaded
        before = peak_rss_kib()
        started = time.perf_counter()
        response = session.get(url, stream=True, timeout=30)
        size = sum(len(piece) for piece in response.iter_content(chunk))
    elif which == OURS:
        client = HttpClient()
        client.get(url, stream=True).close()
        before = peak_rss_kib()
        started = time.perf_counter()
        with client.get(url, stream=True) as streamed:
            size = sum(len(piece) for piece in streamed.iter_content(chunk))
    else:
        client = HttpClient()
        client.get(url, stream=True).close()
        before = peak_rss_kib()
        started = time.perf_counter()
        size = len(client.get(url).content)
    conn.send((time.perf_counter() - started, size, peak_rss_kib() - before))


def run(which: str, url: str, chunk: int) -> tuple[float, int, int]:
    parent, child = multiprocessing.Pipe()
    process = multiprocessing.Process(target=download, args=(child, which, url, chunk))
    process.start()
    result: tuple[float, int, int] = parent.recv()
    process.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mib", type=int, default=1024, help="size of the download")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--chunk-kib", type=int, default=64, help="iter_content chunk size")
    args = parser.parse_args()

    parent, child = multiprocessing.Pipe()
    server = multiprocessing.Process(target=serve, args=(child, args.mib), daemon=True)
    server.start()
    url = f"{parent.recv()}/big"
    chunk = args.chunk_kib * 1024
    results: dict[str, list[tuple[float, int, int]]] = {BARE: [], OURS: []}
    try:
        for round_number in range(args.rounds):
            order = [BARE, OURS] if round_number % 2 == 0 else [OURS, BARE]
            for which in order:
                results[which].append(run(which, url, chunk))
        results[BUFFERED] = [run(BUFFERED, url, chunk)]
    finally:
        parent.send("stop")
        server.join(timeout=10)

    print(
        f"{args.mib} MiB streamed per run, iter_content({args.chunk_kib} KiB), "
        f"{args.rounds} alternating rounds (median)"
    )
    print(f"  {'':<32} {'MiB/s':>9} {'peak RSS rise MiB':>18}")
    speed = {}
    for which, runs in results.items():
        assert all(size == args.mib * MIB for _, size, _ in runs), "short download"
        speed[which] = statistics.median(size / seconds / MIB for seconds, size, _ in runs)
        rise = max(r for _, _, r in runs) / 1024
        print(f"  {which:<32} {speed[which]:9.1f} {rise:18.1f}   (max over runs)")
    ratio = speed[OURS] / speed[BARE]
    print(f"  {'HttpClient / requests':<32} {ratio:9.3f}   (target >= 0.95; RSS rise <= 16 MiB)")


if __name__ == "__main__":
    main()
