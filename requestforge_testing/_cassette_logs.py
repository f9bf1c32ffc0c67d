"""vcrpy's log records, redacted while a cassette is open.

With DEBUG on, vcrpy logs every request it sees (``Got <Request (GET) http://...?key=...>``)
and, at INFO, each recorded response whole (``Appending request ... and response {...}``,
tokens in the body, cookies in the headers) *before* the cassette scrubs it. A
:class:`CassetteLogFilter` goes on each ``vcr.*`` logger while a cassette is open and is
taken off when it closes. It redacts with the library's rules, never rules of its own:
a response's headers through :func:`~requestforge._redact.is_secret_header`, its JSON or
form body through ``redact_json``/``redact_pairs``, then the whole line through
``redact_text`` (query secrets and every declared value), and last what the cassette's
scrubber has seen (a Basic secret, a token issued earlier), shown as ``[REDACTED]``.

A filter on a logger sees only that logger's own records, so it goes on every ``vcr.*``
logger that exists once vcrpy is imported, and on the ones in :data:`VCR_LOGGERS` (created
if need be). Formatting is lazy: a record nobody emits costs one wrapper.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode

from requestforge._redact import (
    REDACTED,
    is_secret_header,
    redact_json,
    redact_pairs,
)
from requestforge._scrub import RedactingFilter

__all__ = ["VCR_LOGGERS", "CassetteLogFilter", "redacting_vcr_logs"]

#: vcrpy's loggers that write requests or responses (9.x), filtered even before they exist.
VCR_LOGGERS: Final = (
    "vcr",
    "vcr.cassette",
    "vcr.matchers",
    "vcr.request",
    "vcr.stubs",
    "vcr.stubs.aiohttp_stubs",
    "vcr.stubs.httpx_stubs",
    "vcr.patch",
)
_FORM: Final = "application/x-www-form-urlencoded"


class CassetteLogFilter(RedactingFilter):
    """Redacts every record of the logger it is on; ``hide`` adds what one cassette knows.

    ``args`` are redacted by structure first (a vcrpy response dict: secret headers and
    secret body fields), then the line as the library's :class:`RedactingFilter` does.
    """

    def __init__(self, hide: Callable[[str], str] = lambda text: text) -> None:
        super().__init__(hide)

    def shown_args(self, args: Any) -> Any:
        """vcrpy's response dicts with secret headers and body fields redacted."""
        if isinstance(args, tuple):
            return tuple(_structured(arg) for arg in args)
        if isinstance(args, Mapping):
            return {key: _structured(value) for key, value in args.items()}
        return args


@contextmanager
def redacting_vcr_logs(hide: Callable[[str], str]) -> Iterator[CassetteLogFilter]:
    """A :class:`CassetteLogFilter` on every vcrpy logger for the duration; removed after."""
    log_filter = CassetteLogFilter(hide)
    names = {*VCR_LOGGERS, *(n for n in logging.root.manager.loggerDict if n.startswith("vcr."))}
    loggers = [logging.getLogger(name) for name in sorted(names)]
    for logger in loggers:
        logger.addFilter(log_filter)
    try:
        yield log_filter
    finally:
        for logger in loggers:
            logger.removeFilter(log_filter)


def _structured(arg: object) -> object:
    """A vcrpy response dict with its secret headers and body fields redacted; anything
    else as it is (its text is redacted with the whole line)."""
    if not isinstance(arg, Mapping) or not {"headers", "body"} <= arg.keys():
        return arg
    headers = arg.get("headers")
    shown = dict(arg)
    content_type = ""
    if isinstance(headers, Mapping):
        shown["headers"] = {
            name: (REDACTED if is_secret_header(str(name)) else value)
            for name, value in headers.items()
        }
        content_type = str(
            next((v for k, v in headers.items() if str(k).lower() == "content-type"), "")
        )
    body = arg.get("body")
    if isinstance(body, Mapping) and "string" in body:
        shown["body"] = {**body, "string": _body(body["string"], content_type)}
    return shown


def _body(body: object, content_type: str) -> object:
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    if not isinstance(text, str) or not text:
        return body
    if _FORM in content_type.lower():
        return urlencode(redact_pairs(parse_qsl(text, keep_blank_values=True)), safe="[]")
    try:
        return json.dumps(redact_json(json.loads(text)))
    except ValueError:
        return text
