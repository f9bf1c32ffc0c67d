"""What the library knows to be secret: declaration, snapshots and value redaction."""

from __future__ import annotations

import threading

import pytest

from requestforge import Secrets, _secrets, declare_secrets
from requestforge._secrets import (
    MAX_VALUES,
    MIN_VALUE_LENGTH,
    known_secrets,
    redact_known_values,
)
from tests.threads import in_threads

#: Each test starts from nothing declared (and puts the process's knowledge back).
pytestmark = pytest.mark.usefixtures("forge_secrets")


def test_secrets_of_lowers_names_and_skips_short_or_missing_values() -> None:
    """Names are stored lower case; None and values under the minimum length are dropped."""
    secrets = Secrets.of(
        headers=["X-Partner-Key"], fields=["Subscription-Key"], values=["CANARY-S-01", "ab", None]
    )
    assert secrets.headers == {"x-partner-key"}
    assert secrets.fields == {"subscription-key"}
    assert secrets.values == {"CANARY-S-01"}
    assert len("ab") < MIN_VALUE_LENGTH


def test_the_repr_of_secrets_hides_the_values() -> None:
    """A Secrets repr shows the names and only how many values there are."""
    shown = repr(Secrets.of(headers=["X-K"], values=["CANARY-REPR-5e1"]))
    assert "CANARY-REPR-5e1" not in shown
    assert "x-k" in shown
    assert "<1 hidden>" in shown


def test_declared_values_and_their_url_encoded_forms_are_redacted() -> None:
    """A declared value is hidden as written and as a URL or form body encodes it."""
    declare_secrets(Secrets.of(values=["CANARY/SLASH+PLUS 7a"]))
    text = "raw CANARY/SLASH+PLUS 7a, q=CANARY%2FSLASH%2BPLUS%207a, f=CANARY%2FSLASH%2BPLUS+7a"
    assert redact_known_values(text) == "raw [REDACTED], q=[REDACTED], f=[REDACTED]"


def test_a_value_is_matched_whole_not_inside_a_longer_word() -> None:
    """A declared value inside a longer alphanumeric run is another string, left alone."""
    declare_secrets(Secrets.of(values=["CANARYWORD42"]))
    assert redact_known_values("xCANARYWORD42 CANARYWORD42y") == "xCANARYWORD42 CANARYWORD42y"
    assert redact_known_values("(CANARYWORD42)") == "([REDACTED])"


def test_declaring_only_adds() -> None:
    """Names and values accumulate across declarations; declaring nothing changes nothing."""
    before = known_secrets()
    declare_secrets(Secrets())
    assert known_secrets() is before
    declare_secrets(Secrets.of(headers=["X-Canary-One"], values=["CANARY-ONE-111"]))
    declare_secrets(Secrets.of(fields=["canary_two"]))
    now = known_secrets()
    assert "x-canary-one" in now.headers
    assert "canary_two" in now.fields
    assert "CANARY-ONE-111" in now.values


def test_declaring_what_is_known_publishes_no_new_snapshot() -> None:
    """The hot path (a hook declared again on every client build) takes no lock, copies nothing."""
    declare_secrets(Secrets.of(headers=["X-Canary-Again"], values=["CANARY-AGAIN-1"]))
    snapshot = known_secrets()
    declare_secrets(Secrets.of(headers=["X-Canary-Again"], values=["CANARY-AGAIN-1"]))
    assert known_secrets() is snapshot


def test_values_are_bounded_oldest_first(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past MAX_VALUES the oldest values are forgotten, a chunk at a time, the newest kept
    (with small bounds here)."""
    monkeypatch.setattr(_secrets, "MAX_VALUES", 32)
    monkeypatch.setattr(_secrets, "CHUNK_SIZE", 8)
    declare_secrets(Secrets.of(values=["CANARY-OLDEST-0"]))
    declare_secrets(Secrets.of(values=[f"CANARY-FILL-{i:03d}" for i in range(32)]))
    values = known_secrets().values
    assert "CANARY-OLDEST-0" not in values
    assert "CANARY-FILL-031" in values
    assert len(values) <= 32
    assert MAX_VALUES >= 1024


def test_one_more_value_leaves_the_older_chunks_compiled(monkeypatch: pytest.MonkeyPatch) -> None:
    """Declaring a value rebuilds only the newest chunk: the others keep their patterns."""
    monkeypatch.setattr(_secrets, "CHUNK_SIZE", 4)
    declare_secrets(Secrets.of(values=[f"CANARY-CHUNK-{i:02d}" for i in range(6)]))
    assert redact_known_values("CANARY-CHUNK-00") == "[REDACTED]"
    first = _secrets._snapshot.chunks[0]
    declare_secrets(Secrets.of(values=["CANARY-CHUNK-LATE"]))
    assert _secrets._snapshot.chunks[0] is first
    assert redact_known_values("a CANARY-CHUNK-LATE b") == "a [REDACTED] b"


def test_a_value_containing_another_is_hidden_whole_across_chunks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The shorter value declared first (another chunk) does not leave the longer one's
    tail visible."""
    monkeypatch.setattr(_secrets, "CHUNK_SIZE", 1)
    declare_secrets(Secrets.of(values=["CANARY-SHORT"]))
    declare_secrets(Secrets.of(values=["CANARY-SHORT-AND-LONGER"]))
    assert redact_known_values("x CANARY-SHORT-AND-LONGER y") == "x [REDACTED] y"
    assert redact_known_values("CANARY-SHORT, CANARY-SHORT") == "[REDACTED], [REDACTED]"


def test_concurrent_declarations_lose_nothing() -> None:
    """Sixteen threads declaring at once (released by a barrier): every value ends up known."""
    counter = iter(range(16))
    lock = threading.Lock()

    def declare() -> int:
        with lock:
            index = next(counter)
        for j in range(20):
            declare_secrets(Secrets.of(values=[f"CANARY-T{index:02d}-{j:02d}-x"]))
        return index

    assert sorted(in_threads(16, declare)) == list(range(16))
    values = known_secrets().values
    missing = [
        (i, j) for i in range(16) for j in range(20) if f"CANARY-T{i:02d}-{j:02d}-x" not in values
    ]
    assert missing == []
