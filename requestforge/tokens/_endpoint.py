"""What a token endpoint's answer means when it is not a token: the one mapping shared by
the OAuth 2.0 providers and the pipeline's HTTP fetchers.

Token requests never follow redirects (they are sent with ``allow_redirects=False``): a
307/308 would re-post the form, client secret and password included, to wherever the
``Location`` points, and any redirect would let another origin issue the token we cache.
A 3xx is therefore a permanent :class:`~requestforge.TokenEndpointError` naming the status
and the ``Location``'s origin (scheme, host and port: its path and query may carry
anything). Server text we quote (``error``, ``error_description``) is scrubbed of every
secret the caller knows it sent, on one line and cut short.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Final
from urllib.parse import quote, quote_plus, urljoin

from requestforge._exceptions import TokenEndpointError
from requestforge._redact import REDACTED, redact_text, redact_url
from requestforge._redirects import origin
from requestforge._response import HttpResponse

__all__ = ["TRANSIENT_STATUSES", "endpoint_error", "location_origin", "scrub", "transient_status"]

#: Besides every 5xx, the statuses after which trying again later may succeed.
TRANSIENT_STATUSES: Final = frozenset({408, 425, 429})
#: ``error`` is an RFC 6749 section 5.2 code, a short ASCII word; other text is not quoted.
_ERROR_CODE: Final = re.compile(r"[A-Za-z0-9_.-]{1,64}")
#: ``error_description`` is server text; it is cut to this length in our messages.
MAX_DESCRIPTION: Final = 200
#: A host we are willing to print: letters, digits, dots, dashes, IPv6 colons.
_PRINTABLE_HOST: Final = re.compile(r"[a-z0-9._:%-]{1,253}")


def transient_status(status: int) -> bool:
    """Whether a token endpoint's ``status`` means trying again later may succeed: every
    5xx, and 408, 425 and 429. The OAuth providers and the pipeline's fetchers both ask
    this (through :func:`endpoint_error` or directly)."""
    return status >= 500 or status in TRANSIENT_STATUSES


def scrub(text: str, secrets: Iterable[str | None], limit: int) -> str:
    """Server or library text made safe to quote: every secret the caller knows it sent
    (also URL-encoded) replaced, then :func:`~requestforge._redact.redact_text` as a second
    net, on one line, at most ``limit`` characters."""
    forms = {
        form
        for secret in secrets
        if secret
        for form in (secret, quote_plus(secret), quote(secret, safe=""))
    }
    for form in sorted(forms, key=len, reverse=True):  # a longer secret may contain a shorter
        text = text.replace(form, REDACTED)
    text = redact_text(" ".join(text.split()))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def location_origin(response: HttpResponse, base: str) -> str:
    """The origin (``scheme://host:port``) a redirect points to, never its path or query."""
    location = response.headers.get("Location")
    if not location or not location.strip():
        return "nowhere (no Location header)"
    try:
        scheme, host, port = origin(urljoin(base, location.strip()))
    except ValueError:  # e.g. an unbalanced IPv6 bracket
        return "an unparseable Location"
    if scheme not in ("http", "https") or not _PRINTABLE_HOST.fullmatch(host):
        return "an unusable Location"
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}" + ("" if port is None or port < 0 else f":{port}")


def endpoint_error(
    response: HttpResponse,
    *,
    url: str,
    purpose: str,
    secrets: Iterable[str | None] = (),
    attempts: int = 1,
) -> TokenEndpointError:
    """The error for a token endpoint's non-2xx ``response`` to a request sent to ``url``.

    ``purpose`` says what was asked ("the password grant", "step 'login'"); ``secrets``
    are the values the request carried, scrubbed from the server's text we quote.
    """
    status = response.status_code
    where = redact_url(url)
    known = [s for s in secrets if s]
    if 300 <= status < 400:
        return TokenEndpointError(
            f"token endpoint {where} answered {status} for {purpose}, redirecting to "
            f"{location_origin(response, url)}; token requests do not follow redirects",
            status_code=status,
            transient=False,
            response=response,
        )
    body = response.json_or_none()
    error = description = None
    if isinstance(body, Mapping):
        if isinstance(body.get("error"), str):
            error = scrub(body["error"], known, 64)
        if isinstance(body.get("error_description"), str):
            description = scrub(body["error_description"], known, MAX_DESCRIPTION)
    transient = transient_status(status)
    message = f"token endpoint {where} answered {status}"
    if error and _ERROR_CODE.fullmatch(error):
        message += f" ({error})"
    message += f" for {purpose}"
    if description:
        message += f": {description}"
    if transient and attempts > 1:
        message += f" (after {attempts} attempts)"
    return TokenEndpointError(
        message,
        error=error,
        error_description=description,
        status_code=status,
        transient=transient,
        response=response,
    )
