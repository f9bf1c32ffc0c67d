"""``HttpResponse``: a response, frozen, with what code written for ``requests.Response`` reads.

Its body is read before it is returned, or for ``stream=True`` read from the connection
when first needed: the ``content`` field is then filled in from a streamed body the
transport provides (:class:`StreamedBodyInterface`). Chunks, text and lines follow one set
of rules for both (``_body.py``).
"""

from __future__ import annotations

import json as jsonlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal, Protocol, overload

import requests
from requests.cookies import RequestsCookieJar
from requests.utils import parse_header_links

from requestforge._body import chunk_size as _chunk_size
from requestforge._body import decode, slices, split_lines
from requestforge._exceptions import HttpStatusError, InvalidRequestError, ResponseDecodeError
from requestforge._redact import redact_url

if TYPE_CHECKING:
    from requestforge._models import HttpRequest

__all__ = ["HttpResponse"]


class StreamedBodyInterface(Protocol):
    """What a streamed response reads its body through (the transport provides it)."""

    def read(self) -> bytes:
        """The whole rest of the body."""

    def iter_content(self, chunk_size: int | None) -> Iterator[bytes]:
        """The body as it arrives, ``chunk_size`` bytes at a time."""

    def close(self) -> None:
        """Give the connection back (or drop it) without reading the rest."""


class _Content:
    """``HttpResponse.content``: the bytes given, or for a streamed response the body read
    from the connection the first time it is asked for (then kept)."""

    def __get__(self, response: object, owner: object = None) -> bytes:
        if response is None:
            raise AttributeError("content")  # so the dataclass field has no default
        state = response.__dict__
        stream: StreamedBodyInterface | None = state.get("_stream")
        if stream is not None:
            state["_content"] = stream.read()  # set before the stream is forgotten
            state.pop("_stream", None)  # another thread reading it too may have been first
        content: bytes = state["_content"]
        return content

    def __set__(self, response: object, content: bytes) -> None:
        response.__dict__["_content"] = content


@dataclass(frozen=True, repr=False)
class HttpResponse:
    """One HTTP response, immutable.

    It offers what code written for ``requests.Response`` reads (``ok``, ``reason``,
    ``elapsed``, ``encoding``, ``links``, ``cookies``, ``history``, ``iter_content()``,
    ``iter_lines()``, ``raw``, ``close()``), and ``raw_response`` for anything else.
    ``history`` holds the redirects followed, oldest first. ``raw_response`` is the
    ``requests.Response`` this was built from, or ``None`` for a response built by hand (or
    by a hook that made a new one instead of using :func:`dataclasses.replace`); it is not
    part of equality or repr.

    The body is read before the response is returned, unless the request asked for
    ``stream=True``: then it is read from the connection when first needed, by
    ``iter_content()`` / ``iter_lines()`` piece by piece, or whole by anything that reads
    ``content`` (``text``, ``json()``, equality, :func:`dataclasses.replace`). The
    connection goes back to the pool once the body is read to its end or the response is
    closed; ``with client.get(url, stream=True) as response:`` closes it.
    """

    status_code: int
    headers: Mapping[str, str]
    if TYPE_CHECKING:
        content: bytes
    else:
        content: bytes = _Content()
    url: str
    elapsed_ms: float = 0.0
    request: HttpRequest | None = None
    reason: str = ""
    encoding: str | None = None
    history: tuple[HttpResponse, ...] = ()
    raw_response: requests.Response | None = field(default=None, compare=False)

    @classmethod
    def streamed(cls, body: StreamedBodyInterface, **fields: Any) -> HttpResponse:
        """A response whose ``content`` is read from ``body`` when first needed."""
        response = cls(content=b"", **fields)
        response.__dict__["_stream"] = body
        return response

    def replace(self, **changes: Any) -> HttpResponse:
        """A copy with ``changes``, as :func:`dataclasses.replace` makes it, except that a
        streamed body is handed to the copy unread (read it from the copy only)."""
        stream: StreamedBodyInterface | None = self.__dict__.get("_stream")
        if stream is None or "content" in changes:
            return replace(self, **changes)
        kept = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "content"}
        return type(self).streamed(stream, **{**kept, **changes})

    @property
    def is_streamed(self) -> bool:
        """Whether the body is still (partly) on the connection, unread."""
        return "_stream" in self.__dict__

    @property
    def raw(self) -> Any:
        """The urllib3 response underneath (``requests.Response.raw``), or ``None``. Read a
        streamed body from it only if you need its bytes undecoded (gzip left as sent)."""
        return self.raw_response.raw if self.raw_response is not None else None

    def close(self) -> None:
        """Give the connection back to the pool; an unread streamed body is dropped."""
        stream: StreamedBodyInterface | None = self.__dict__.get("_stream")
        if stream is not None:
            stream.close()
        elif self.raw_response is not None:
            self.raw_response.close()

    def __enter__(self) -> HttpResponse:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def ok(self) -> bool:
        """Whether the status is below 400, as in requests: ``raise_for_status()`` passes."""
        return self.status_code < 400

    @property
    def elapsed(self) -> timedelta:
        """``elapsed_ms`` as a ``timedelta``: from sending the request to the body's last byte."""
        return timedelta(milliseconds=self.elapsed_ms)

    @property
    def links(self) -> dict[str, dict[str, str]]:
        """The ``Link`` header parsed as requests does, keyed by ``rel`` (or else by URL)."""
        header = header_value(self.headers, "link")
        resolved: dict[str, dict[str, str]] = {}
        if header:
            for link in parse_header_links(header):
                key = link.get("rel") or link.get("url")
                if key is not None:
                    resolved[key] = link
        return resolved

    @property
    def cookies(self) -> RequestsCookieJar:
        """The cookies this response set, as requests' ``response.cookies`` has them.

        A new jar on every access, holding copies: changing it changes neither this
        response nor any session. Empty when there is no ``raw_response``.
        """
        jar = RequestsCookieJar()
        if self.raw_response is not None:
            jar.update(self.raw_response.cookies)
        return jar

    @overload
    def iter_content(
        self, chunk_size: int | None = 1, decode_unicode: Literal[False] = False
    ) -> Iterator[bytes]: ...
    @overload
    def iter_content(
        self, chunk_size: int | None, decode_unicode: Literal[True]
    ) -> Iterator[str]: ...
    @overload
    def iter_content(
        self, chunk_size: int | None = 1, *, decode_unicode: Literal[True]
    ) -> Iterator[str]: ...
    @overload
    def iter_content(
        self, chunk_size: int | None = 1, decode_unicode: bool = False
    ) -> Iterator[bytes] | Iterator[str]: ...
    def iter_content(
        self, chunk_size: int | None = 1, decode_unicode: bool = False
    ) -> Iterator[bytes] | Iterator[str]:
        """The body in pieces of ``chunk_size`` bytes (``None``: all at once), as requests
        iterates a body it has read.

        With ``decode_unicode`` the pieces are decoded incrementally with the charset
        ``text`` uses, so they join to ``text``; unlike requests, that is UTF-8 when the
        server declared no charset (requests then hands back bytes).
        """
        chunks = self._chunks(_chunk_size(chunk_size))
        return decode(chunks, self.encoding) if decode_unicode else chunks

    def _chunks(self, size: int | None) -> Iterator[bytes]:
        stream: StreamedBodyInterface | None = self.__dict__.get("_stream")
        if stream is not None:
            return stream.iter_content(size)
        return slices(self.content, size)

    @overload
    def iter_lines(
        self,
        chunk_size: int | None = 512,
        decode_unicode: Literal[False] = False,
        delimiter: bytes | None = None,
    ) -> Iterator[bytes]: ...
    @overload
    def iter_lines(
        self,
        chunk_size: int | None = 512,
        *,
        decode_unicode: Literal[True],
        delimiter: str | None = None,
    ) -> Iterator[str]: ...
    def iter_lines(
        self,
        chunk_size: int | None = 512,
        decode_unicode: bool = False,
        delimiter: bytes | str | None = None,
    ) -> Iterator[bytes] | Iterator[str]:
        """The body's lines, without their line breaks, split as ``splitlines()`` does
        (or on ``delimiter``); with ``decode_unicode``, as ``str`` (see :meth:`iter_content`).

        The lines are the same however the body arrives: for a body already read,
        ``chunk_size`` (checked, for requests' signature) changes nothing; a streamed body
        is read ``chunk_size`` bytes at a time. requests splits each chunk on its own and
        can yield an extra empty line where a ``\\r\\n`` or a delimiter straddles two
        chunks; this never does.
        """
        size = _chunk_size(chunk_size)
        kind = str if decode_unicode else bytes
        if delimiter is not None and not isinstance(delimiter, kind):
            raise InvalidRequestError(
                f"delimiter must be {kind.__name__} when decode_unicode is {bool(decode_unicode)},"
                f" got {type(delimiter).__name__}"
            )
        chunks = self._chunks(size if self.is_streamed else None)
        if decode_unicode:
            text_delimiter = delimiter if isinstance(delimiter, str) and delimiter else None
            return split_lines(decode(chunks, self.encoding), text_delimiter)
        byte_delimiter = delimiter if isinstance(delimiter, bytes) and delimiter else None
        return split_lines(chunks, byte_delimiter)

    @property
    def text(self) -> str:
        """The body decoded with the charset the server declared (UTF-8 when it declared none)."""
        try:
            return self.content.decode(self.encoding or "utf-8", errors="replace")
        except LookupError:  # a charset Python does not know: fall back like requests does
            return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body parsed as JSON; raises :class:`ResponseDecodeError` if it is not JSON."""
        try:
            return jsonlib.loads(self.content)
        except ValueError as exc:
            raise ResponseDecodeError(
                f"response from {redact_url(self.url)} is not valid JSON: {exc}", response=self
            ) from exc

    def json_or_none(self) -> Any:
        """The body parsed as JSON, or ``None`` when it is empty or not JSON."""
        try:
            return jsonlib.loads(self.content) if self.content else None
        except ValueError:
            return None

    @property
    def is_success(self) -> bool:
        """2xx."""
        return 200 <= self.status_code < 300

    @property
    def is_redirect(self) -> bool:
        """3xx (redirects that ``requests`` did not follow)."""
        return 300 <= self.status_code < 400

    @property
    def is_client_error(self) -> bool:
        """4xx."""
        return 400 <= self.status_code < 500

    @property
    def is_server_error(self) -> bool:
        """5xx."""
        return 500 <= self.status_code < 600

    def raise_for_status(self) -> HttpResponse:
        """Raise :class:`HttpStatusError` for a 4xx/5xx response; return ``self`` otherwise."""
        if self.status_code >= 400:
            kind = "client error" if self.is_client_error else "server error"
            reason = f" ({self.reason})" if self.reason else ""
            raise HttpStatusError(
                f"{self.status_code} {kind}{reason} for {redact_url(self.url)}", response=self
            )
        return self

    def __repr__(self) -> str:
        method = self.request.method.value if self.request else "?"
        return f"<HttpResponse [{self.status_code}] {method} {redact_url(self.url)}>"


def header_value(headers: Mapping[str, str], name: str) -> str | None:
    """Look a header up ignoring case, whatever kind of mapping holds it."""
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    return next((v for k, v in headers.items() if k.lower() == lowered), None)
