"""The README's first command runs the demo: it must work, and show what it claims."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from requestforge_testing import RedisServer

ROOT = Path(__file__).resolve().parents[2]


def test_demo_shows_one_session_per_thread_and_one_token_fetch() -> None:
    """demo.py exits 0 and reports per-thread sessions, one token fetch, one refresh after
    revocation and, with redis-server installed, one fetch for all processes via Redis."""
    result = subprocess.run(
        [sys.executable, "demo.py", "--threads", "6", "--requests", "4", "--processes", "2"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "sessions:           6 distinct for 6 threads" in out
    assert "token fetches:      1 (the other threads waited for it)" in out
    assert "token fetches:      1 (compare-and-refresh)" in out
    assert "secret in repr:     False" in out
    if RedisServer.available():
        assert "in-memory storage:   2 token fetch(es)" in out
        assert "RedisTokenStorage:   1 token fetch(es)" in out
    else:
        assert "redis-server not found" in out
