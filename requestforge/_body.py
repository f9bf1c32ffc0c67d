"""A response body as pieces: chunks of a size, decoded text, lines.

One set of rules for a body already in memory and for one streamed from the connection
(``stream=True``), so both give the same chunks, text and lines for the same bytes.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterable, Iterator
from typing import AnyStr

from requestforge._exceptions import InvalidRequestError
from requestforge._validate import count

__all__ = ["chunk_size", "decode", "slices", "split_lines"]


def chunk_size(value: int | None) -> int | None:
    """``None`` (the whole body at once) or a positive integer."""
    if value is None:
        return None
    return count("chunk_size", value, minimum=1, error=InvalidRequestError)


def slices(content: bytes, size: int | None) -> Iterator[bytes]:
    """``content`` in pieces of ``size`` bytes (``None``: one piece); nothing for no body."""
    step = size or len(content) or 1
    for start in range(0, len(content), step):
        yield content[start : start + step]


def decode(chunks: Iterable[bytes], encoding: str | None) -> Iterator[str]:
    """Decode ``chunks`` as ``HttpResponse.text`` decodes a whole body (errors replaced,
    UTF-8 when no charset was declared or Python does not know it)."""
    try:
        decoder = codecs.getincrementaldecoder(encoding or "utf-8")(errors="replace")
    except LookupError:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    for chunk in chunks:
        text = decoder.decode(chunk)
        if text:
            yield text
    text = decoder.decode(b"", final=True)
    if text:
        yield text


def split_lines(chunks: Iterable[AnyStr], delimiter: AnyStr | None = None) -> Iterator[AnyStr]:
    """The lines of the body the chunks make up, exactly as ``body.splitlines()`` (or
    ``body.split(delimiter)``) gives them, however the body was cut into chunks.

    requests splits each chunk on its own, so a ``\\r\\n`` or a delimiter cut in two by a
    chunk boundary gives it an extra empty line; the unfinished end of each chunk is held
    back here instead, so a streamed body and the same body in memory agree.
    """
    pending: AnyStr | None = None
    for chunk in chunks:
        if not chunk:
            continue
        text = chunk if pending is None else pending + chunk
        if delimiter:
            parts = text.split(delimiter)
            pending = parts.pop()
            yield from parts
            continue
        lines = text.splitlines(keepends=True)
        last = lines[-1]
        ending = last[len(last.splitlines()[0]) :]
        # Unfinished: no line break yet, or a CR that the next chunk may pair with an LF.
        if not ending or ending == ("\r" if isinstance(ending, str) else b"\r"):
            pending = lines.pop()
        else:
            pending = None
        for line in lines:
            yield line.splitlines()[0]
    if pending is not None and (delimiter or pending):
        yield pending if delimiter else pending.splitlines()[0]
