"""What the library *knows* to be secret, as opposed to what a name suggests.

Every component that sends a credential (auth hooks, token providers and fetchers, the
token manager, secret default headers) declares it here: the exact header names and
query/form/JSON field names that carry it, and the values themselves. ``_redact.py``
consults this knowledge first and its name-fragment rules second, so a key sent as
``Ocp-Apim-Subscription-Key`` or ``?subscription-key=`` is hidden because the hook that
sends it said so, not because its name happens to look secret.

The knowledge is process-wide and only grows (values are bounded: the oldest fall out
first, by which time a rotated token has long expired). Reads are lock-free: a write
builds a new immutable :class:`Secrets` snapshot under a lock and publishes it with one
assignment, so a reader sees the old snapshot or the new one, never a half-built one.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Final
from urllib.parse import quote, quote_plus

# known_secrets and redact_known_values are for the library and its pytest plugin only.
__all__ = ["Secrets", "declare_secrets"]

#: Values shorter than this are not remembered: hiding every "abcd" in a log line would
#: mangle text without protecting anything a guess could not find. (The knowledge is
#: process-wide: a test's short made-up token would otherwise blank the same word in every
#: later message.) Declared *names* still hide such values where they are sent.
MIN_VALUE_LENGTH: Final = 6
#: How many distinct values are remembered; a token rotated hourly takes 170 days to
#: push out the first one, long after it expired.
MAX_VALUES: Final = 4096

_REDACTED: Final = "[REDACTED]"


@dataclass(frozen=True, slots=True)
class Secrets:
    """Header names, field names and values that must never be shown.

    Names are compared case-insensitively (they are stored lower case). ``values`` holds
    the secrets themselves; :func:`declare_secrets` also remembers their URL-encoded forms,
    as they appear in query strings and form bodies.
    """

    headers: frozenset[str] = frozenset()
    fields: frozenset[str] = frozenset()
    values: frozenset[str] = frozenset()

    @classmethod
    def of(
        cls,
        *,
        headers: Iterable[str] = (),
        fields: Iterable[str] = (),
        values: Iterable[str | None] = (),
    ) -> Secrets:
        """Build from plain iterables; ``None`` and too-short values are skipped."""
        return cls(
            headers=frozenset(h.lower() for h in headers),
            fields=frozenset(f.lower() for f in fields),
            values=frozenset(v for v in values if v is not None and len(v) >= MIN_VALUE_LENGTH),
        )

    def __or__(self, other: Secrets) -> Secrets:
        return Secrets(
            self.headers | other.headers, self.fields | other.fields, self.values | other.values
        )

    def __bool__(self) -> bool:
        return bool(self.headers or self.fields or self.values)

    def __repr__(self) -> str:
        # The names are not secret; the values are, so only their number is shown.
        return (
            f"Secrets(headers={sorted(self.headers)}, fields={sorted(self.fields)}, "
            f"values=<{len(self.values)} hidden>)"
        )


class _Chunk:
    """Up to :data:`CHUNK_SIZE` values and their pattern, compiled on first use.

    Values are kept in chunks so that declaring one more value recompiles one small
    pattern, not one over every value known (4,096 values: about 0.5 s to compile, paid by
    the first log line or error after each new token).
    """

    __slots__ = ("_pattern", "values")

    def __init__(self, values: tuple[str, ...]) -> None:
        self.values = values
        self._pattern: re.Pattern[str] | None = None

    def pattern(self) -> re.Pattern[str]:
        if self._pattern is None:
            # Longest first, so a value that contains another is matched whole; a value is
            # matched whole, never inside a longer word ("s3cr3t" is not hidden inside
            # "s3cr3ts"). Two threads may both compile it; they build the same pattern.
            ordered = sorted(self.values, key=len, reverse=True)
            alternatives = "|".join(re.escape(v) for v in ordered)
            self._pattern = re.compile(f"(?<![A-Za-z0-9])(?:{alternatives})(?![A-Za-z0-9])")
        return self._pattern


class _Snapshot:
    """One published state: the secrets, and their values in chunks, oldest first."""

    __slots__ = ("chunks", "secrets")

    def __init__(self, secrets: Secrets, chunks: tuple[_Chunk, ...] = ()) -> None:
        self.secrets = secrets
        self.chunks = chunks


#: Values per compiled pattern (see :class:`_Chunk`).
CHUNK_SIZE: Final = 256

_write_lock = threading.Lock()
_snapshot = _Snapshot(Secrets())


def _encoded_forms(value: str) -> set[str]:
    """``value`` and the ways it is written into URLs and form bodies."""
    forms = {value, quote(value, safe=""), quote_plus(value, safe="")}
    return {f for f in forms if len(f) >= MIN_VALUE_LENGTH}


def declare_secrets(secrets: Secrets) -> None:
    """Add ``secrets`` to what the library knows; every later redaction hides them."""
    global _snapshot  # noqa: PLW0603 - the one published snapshot
    if not secrets:
        return
    current = _snapshot.secrets
    new_values = {f for v in secrets.values for f in _encoded_forms(v)}
    if (
        secrets.headers <= current.headers
        and secrets.fields <= current.fields
        and new_values <= current.values
    ):
        return  # already known: the common case for a hook declaring on every build
    with _write_lock:
        current = _snapshot.secrets
        chunks = list(_snapshot.chunks)
        for value in sorted(new_values - current.values):
            if chunks and len(chunks[-1].values) < CHUNK_SIZE:
                chunks[-1] = _Chunk((*chunks[-1].values, value))
            else:
                chunks.append(_Chunk((value,)))
        while len(chunks) > 1 and sum(len(c.values) for c in chunks) > MAX_VALUES:
            del chunks[0]  # the oldest values go first, a chunk at a time
        values = frozenset(v for c in chunks for v in c.values)
        merged = Secrets(current.headers | secrets.headers, current.fields | secrets.fields, values)
        _snapshot = _Snapshot(merged, tuple(chunks))


def known_secrets() -> Secrets:
    """Everything declared so far (an immutable snapshot; no lock taken)."""
    return _snapshot.secrets


def redact_known_values(text: str) -> str:
    """``text`` with every declared secret value replaced by ``[REDACTED]``.

    Matches of all chunks are merged before replacing, so a value that contains another
    declared one (in another chunk) is hidden whole, not around the shorter one.
    """
    chunks = _snapshot.chunks
    if not chunks or not text:
        return text
    spans = sorted(m.span() for chunk in chunks for m in chunk.pattern().finditer(text))
    if not spans:
        return text
    parts: list[str] = []
    kept = 0
    start, end = spans[0]
    for next_start, next_end in spans[1:]:
        if next_start <= end:
            end = max(end, next_end)
            continue
        parts += (text[kept:start], _REDACTED)
        kept, start, end = end, next_start, next_end
    parts += (text[kept:start], _REDACTED, text[end:])
    return "".join(parts)


@contextmanager
def isolated_knowledge() -> Iterator[None]:
    """Tests: start from nothing declared, and put back what was known afterwards, so a
    test of redaction does not depend on what earlier tests declared."""
    global _snapshot  # noqa: PLW0603 - the one published snapshot
    with _write_lock:
        saved, _snapshot = _snapshot, _Snapshot(Secrets())
    try:
        yield
    finally:
        with _write_lock:
            _snapshot = saved
