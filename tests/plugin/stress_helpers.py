"""Helpers shared by the stress tests (guarantees, messages, replay).

Not collected by the suite itself (its name does not start with ``test_``).
"""

from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Callable
from datetime import timedelta

import pytest

from requestforge import ClientCredentialsTokenProvider, TokenData, TokenProviderInterface
from requestforge._clock import get_default_clock
from requestforge_testing import OAuthServer, StressCounter

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


THREADS = 4

#: A made-up "real" token value: it must never appear in a failure message.
SECRET = "rf-live-7Hq2XbN9pL"


def oauth_provider(server: OAuthServer) -> ClientCredentialsTokenProvider:
    """A real client-credentials provider for the server's default client, no retries."""
    return ClientCredentialsTokenProvider(
        server.token_url, "forge-client", "forge-secret", max_retries=0
    )


class UserProvider(TokenProviderInterface):
    """A user's own provider: counts its fetches and issues real-looking (secret) tokens.

    Its refresh_token is the interface's default, which calls fetch_token. It counts with
    no write of its own, so forced interleavings never park inside it.
    """

    def __init__(self, tally: Tally | None = None) -> None:
        self.numbers = itertools.count(1)
        self.fetches = StressCounter()
        self.tally = tally
        self.fail_first = False

    def fetch_token(self) -> TokenData:
        number = next(self.numbers)
        self.fetches.increment()
        if self.tally is not None:
            self.tally.counter.increment()
        if self.fail_first and number == 1:
            raise ConnectionError("token endpoint reset the connection")
        return TokenData(
            access_token=f"{SECRET}-{number}",
            refresh_token=f"{SECRET}-refresh-{number}",
            expires_at=get_default_clock().now() + timedelta(hours=1),
        )

    def count(self) -> int:
        return self.fetches.value

    @property
    def service_name(self) -> str:
        return "user-api"


class Tally:
    """A plain counter object with ``fetch_count``, kept apart from the provider."""

    def __init__(self) -> None:
        self.counter = StressCounter()

    @property
    def fetch_count(self) -> int:
        return self.counter.value
