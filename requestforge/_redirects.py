"""Following redirects one hop at a time: requests' rules for the next request, and a
stricter rule for credentials.

requests follows redirects inside ``Session.send`` and, when the host changes, drops the
``Authorization`` header but keeps every other one: an API key in ``X-Api-Key`` or in the
query goes wherever the server points. Here each hop is a new request built from the
request the caller made (after the request hooks, *before* the auth hook), so nothing an
auth hook added travels with it. The auth hook runs again for a hop only while every hop
has stayed on the first request's origin (scheme, host and port, RFC 6454); after the
first hop that leaves it, the request goes without it and without any secret of the
caller's or the config's: no header secret by name (``Authorization``, ``Cookie``,
``X-Api-Key``, ``X-Client-Secret``... see ``_redact``) or declared secret
(``with_header(..., secret=True)``, an auth hook's custom header), no header whose value
holds a declared secret value, no declared secret query parameter in the Location (a
server that echoes ``?subscription-key=`` into it), and no ``auth=``: only credentials
for the new host from ``.netrc`` (as requests looks them up) are sent. An https to http
downgrade is a new origin too.

Everything else is requests' behaviour, checked against it in
``tests/integration/test_requests_parity.py``: the Location joined and re-quoted as requests
does it, the fragment carried over, 301/302/303 rewritten to GET as requests does (and the
body dropped on any redirect but 307/308), the ``Cookie`` header rebuilt from the jar on
each hop, ``session.max_redirects`` (30 by default) before
:class:`~requestforge.TooManyRedirectsError`.

One deliberate difference: a 307/308 asks for the body again; a body that cannot be sent
twice (a generator) is not re-sent half-empty, as requests would, but the redirect
response is returned as it is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Final
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import requests
from requests.auth import AuthBase
from requests.utils import get_netrc_auth, requote_uri

from requestforge._exceptions import TooManyRedirectsError
from requestforge._models import HttpMethod, HttpRequest
from requestforge._redact import is_secret_header, redact_url
from requestforge._response import HttpResponse
from requestforge._secrets import known_secrets, redact_known_values

__all__ = ["REDIRECT_STATUSES", "follow_redirects", "same_origin"]

#: The statuses requests follows (``requests.Response.is_redirect``).
REDIRECT_STATUSES: Final = frozenset({301, 302, 303, 307, 308})
#: The statuses that keep the method and the body (RFC 9110 sections 15.4.8 and 15.4.9).
_KEEP_BODY: Final = frozenset({307, 308})
#: Headers that describe the body, dropped with it (as requests does).
_BODY_HEADERS: Final = frozenset({"content-length", "content-type", "transfer-encoding"})
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}

#: ``send(hop, trusted)``: send one hop, applying the auth hook only when ``trusted``.
Send = Callable[[HttpRequest, bool], HttpResponse]


class _ForeignOriginAuth(AuthBase):
    """The auth of a hop that left the first request's origin: ``.netrc`` credentials for
    the new host when the session trusts the environment (as requests' ``rebuild_auth``),
    else nothing. Being an explicit auth, it also keeps a session's own ``auth`` away."""

    def __init__(self, trust_env: bool) -> None:
        self._trust_env = trust_env

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        credentials = get_netrc_auth(r.url) if self._trust_env and r.url else None
        r.prepare_auth(credentials)
        return r


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) of ``url``, the port filled in from the scheme when absent."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:  # a bad port is never the same origin as anything
        port = -1
    return scheme, (parts.hostname or "").lower(), port or _DEFAULT_PORTS.get(scheme)


def same_origin(a: str, b: str) -> bool:
    """Whether two URLs share scheme, host and port."""
    return origin(a) == origin(b)


def follow_redirects(
    response: HttpResponse,
    request: HttpRequest,
    send: Send,
    *,
    session: requests.Session,
    rewind: Callable[[], None],
) -> tuple[HttpResponse, bool]:
    """Follow ``response``'s redirects; return the last response and whether it came from
    a hop that stayed on ``request``'s origin (so a 401 there is about our credentials).

    ``request`` is the caller's request before the auth hook; ``rewind`` puts its file
    bodies back at their start before a 307/308 sends them again.
    """
    history: list[HttpResponse] = []
    hop, trusted = request, True
    fragment = urlsplit(request.url).fragment
    while True:
        location = _location(response, session)
        if location is None:
            break
        url, fragment = _next_url(location, response.url, fragment)
        following = _next_request(hop, response.status_code, url)
        if following is None:
            break
        response.content  # noqa: B018 - read the hop's body, so its connection is reused
        response.close()
        history.append(response := _with_history(response, history))
        if len(history) > session.max_redirects:
            raise TooManyRedirectsError(
                f"{request.method.value} {redact_url(request.url)} was redirected more than "
                f"{session.max_redirects} times",
                request=request,
                response=_with_history(response, history[:-1]),
            )
        trusted = trusted and same_origin(url, request.url)
        hop = following if trusted else _without_credentials(following, session)
        if hop.data is not None or hop.files is not None:
            rewind()
        response = send(hop, trusted)
    if not history:
        return response, trusted
    return _with_history(response, history), trusted


def _location(response: HttpResponse, session: requests.Session) -> str | None:
    raw = response.raw_response
    if response.status_code not in REDIRECT_STATUSES or raw is None:
        return None
    return session.get_redirect_target(raw)


def _next_url(location: str, previous: str, fragment: str) -> tuple[str, str]:
    """The URL of the next hop and the fragment it carries, as requests computes them."""
    if location.startswith("//"):  # scheme-relative (RFC 3986 section 4.2)
        location = f"{urlsplit(previous).scheme}:{location}"
    parts = urlsplit(location)
    if parts.fragment:
        fragment = parts.fragment
    elif fragment:
        parts = parts._replace(fragment=fragment)
    url = parts.geturl()
    return (urljoin(previous, requote_uri(url)) if not parts.netloc else requote_uri(url)), fragment


def _next_request(previous: HttpRequest, status: int, url: str) -> HttpRequest | None:
    """The hop after ``previous`` got ``status``, or ``None`` when its body cannot be resent."""
    method = previous.method
    if (status in (302, 303) and method is not HttpMethod.HEAD) or (
        status == 301 and method is HttpMethod.POST
    ):
        method = HttpMethod.GET
    keep_body = status in _KEEP_BODY
    if keep_body and not previous.has_replayable_body:
        return None
    dropped = {"cookie"} if keep_body else {"cookie", *_BODY_HEADERS}
    headers = {k: v for k, v in previous.headers.items() if k.lower() not in dropped}
    hop = replace(previous, method=method, url=url, params={}, headers=headers)
    return hop if keep_body else replace(hop, data=None, json_data=None, files=None)


def _without_credentials(hop: HttpRequest, session: requests.Session) -> HttpRequest:
    """``hop`` stripped of every credential, for an origin that is not the first one."""
    headers = {
        k: v
        for k, v in hop.headers.items()
        if not is_secret_header(k) and redact_known_values(v) == v
    }
    return replace(
        hop,
        url=_without_declared_fields(hop.url),
        headers=headers,
        auth=_ForeignOriginAuth(session.trust_env),
    )


def _without_declared_fields(url: str) -> str:
    """``url`` without the query parameters components declared secret (``_secrets``).

    Only declared ones: a parameter merely named like a secret may be the new origin's
    own (a pre-signed URL's ``X-Amz-Signature``) and is kept.
    """
    declared = known_secrets().fields
    parts = urlsplit(url)
    if not declared or not parts.query:
        return url
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    kept = [(k, v) for k, v in pairs if k.lower() not in declared]
    if len(kept) == len(pairs):
        return url
    return urlunsplit(parts._replace(query=urlencode(kept)))


def _with_history(response: HttpResponse, history: list[HttpResponse]) -> HttpResponse:
    """``response`` with the hops before it as its ``history`` (and its raw response's)."""
    if response.raw_response is not None:
        response.raw_response.history = [h.raw_response for h in history if h.raw_response]
    return response.replace(history=tuple(history))
