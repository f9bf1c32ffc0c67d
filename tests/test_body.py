"""Unit tests for ``requestforge._body``: a body cut into chunks anywhere gives the same
lines and text as the whole body, and streamed ``HttpResponse`` bodies follow its rules."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from requestforge import HttpResponse, StreamConsumedError
from requestforge._body import decode, split_lines

PIECES = st.lists(st.sampled_from([b"a", b"\r", b"\n", b"\r\n", b";", b"\xc3\xa9", b"\xe2"]))


def cut(body: bytes, points: list[int]) -> list[bytes]:
    """``body`` split at ``points`` (any positions, empty chunks included)."""
    edges = [0, *sorted(p % (len(body) + 1) for p in points), len(body)]
    return [body[a:b] for a, b in itertools.pairwise(edges)]


@given(PIECES, st.lists(st.integers(min_value=0)))
def test_lines_of_chunks_are_the_lines_of_the_body(pieces: list[bytes], points: list[int]) -> None:
    """However a body is cut, split_lines gives body.splitlines() and body.split(delimiter)."""
    body = b"".join(pieces)
    chunks = cut(body, points)
    assert list(split_lines(chunks)) == body.splitlines()
    assert list(split_lines(chunks, b";")) == (body.split(b";") if body else [])
    assert list(split_lines(chunks, b"\r\n")) == (body.split(b"\r\n") if body else [])


@given(PIECES, st.lists(st.integers(min_value=0)))
def test_decoding_chunks_gives_the_text_of_the_body(pieces: list[bytes], points: list[int]) -> None:
    """Incremental decoding of any cut equals decoding the whole body (errors replaced)."""
    body = b"".join(pieces)
    assert "".join(decode(cut(body, points), "utf-8")) == body.decode("utf-8", "replace")


class _FakeBody:
    """A streamed body that records what was asked of it."""

    def __init__(self, *chunks: bytes) -> None:
        self.chunks = list(chunks)
        self.reads = 0
        self.closed = False
        self.iterated = False

    def read(self) -> bytes:
        if self.iterated:
            raise StreamConsumedError("gone")
        self.reads += 1
        return b"".join(self.chunks)

    def iter_content(self, chunk_size: int | None) -> Iterator[bytes]:
        self.iterated = True
        yield from self.chunks

    def close(self) -> None:
        self.closed = True


def streamed(body: _FakeBody) -> HttpResponse:
    return HttpResponse.streamed(body, status_code=200, headers={}, url="https://x.test/")


def test_content_is_read_once_on_first_use() -> None:
    """A streamed response reads its body when content is first read, and keeps it."""
    body = _FakeBody(b"ab", b"c")
    response = streamed(body)
    assert response.is_streamed
    assert body.reads == 0
    assert response.content == b"abc"
    assert (response.text, response.content, body.reads) == ("abc", b"abc", 1)
    assert not response.is_streamed
    assert list(response.iter_content(2)) == [b"ab", b"c"]  # from memory now


def test_replace_hands_the_body_over_unread() -> None:
    """response.replace() keeps the stream unread; dataclasses.replace reads it."""
    body = _FakeBody(b"x")
    copy = streamed(body).replace(status_code=201)
    assert (copy.status_code, copy.is_streamed, body.reads) == (201, True, 0)
    assert copy.content == b"x"


def test_close_and_with_block_close_the_stream() -> None:
    """close() and leaving a with block give the connection back without reading."""
    body = _FakeBody(b"unread")
    with streamed(body) as response:
        assert response.is_streamed
    assert (body.closed, body.reads) == (True, 0)


def test_iterated_body_cannot_be_read_again() -> None:
    """After iter_lines() consumed the stream, content is a StreamConsumedError."""
    response = streamed(_FakeBody(b"a\nb"))
    assert list(response.iter_lines()) == [b"a", b"b"]
    with pytest.raises(StreamConsumedError):
        response.content  # noqa: B018


def test_a_buffered_response_is_unchanged() -> None:
    """A response built with bytes is not streamed; close() on it is harmless."""
    response = HttpResponse(status_code=200, headers={}, content=b"body", url="https://x.test/")
    response.close()
    assert (response.is_streamed, response.content, response.raw) == (False, b"body", None)
