"""Helpers shared by test_stress_guarantees.py and test_stress_messages.py.

Not collected by the suite itself (its name does not start with ``test_``).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable

import pytest

#: The last line of every failure, as the docs promise it (written out, not imported).
REPLAY = re.compile(
    r"  seed (?P<seed>\d+): replay with forge_stress\(\.\.\., seed=(?P=seed)\), "
    r"@pytest\.mark\.forge_stress\(seed=(?P=seed)\) or pytest --forge-stress-seed=(?P=seed)"
)


def index() -> int:
    """The calling worker's thread index, from its name (forge-stress-<run>-r<round>-t<index>)."""
    return int(threading.current_thread().name.rsplit("-t", 1)[1])


def failure(check: Callable[..., object], *args: object, **kwargs: object) -> str:
    """The AssertionError message ``check(*args, **kwargs)`` raises (failing if it passes)."""
    with pytest.raises(AssertionError) as info:
        check(*args, **kwargs)
    return str(info.value)


def replay_seed(message: str) -> int:
    """The seed a failure message's last line tells to replay (failing if the line is not it)."""
    last = message.splitlines()[-1]
    match = REPLAY.fullmatch(last)
    assert match is not None, f"not a replay line: {last!r}"
    return int(match["seed"])
