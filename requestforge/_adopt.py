"""requests' own request objects, taken by :meth:`HttpClient.send <requestforge.HttpClient.send>`.

Code ported from requests often builds a ``requests.Request`` (or prepares one) and hands it
to ``session.send``. The client takes both, as the :class:`~requestforge.HttpRequest` they
describe, so they go through the same hooks, auth, retries and redirects as any call:

- a ``requests.Request``: its fields become the request's keywords (method, url, params,
  headers, data, json, files, cookies, auth), exactly as ``request()`` takes them;
- a ``requests.PreparedRequest``: sent as prepared, method, URL (query included), headers
  (``Content-Type``, ``Content-Length``, ``Cookie``, ``Authorization`` too) and the encoded
  body as they are. A body that is a generator can be sent once only, as any one-shot body.

requests' ``hooks=`` are refused with :class:`~requestforge.InvalidRequestError` rather
than silently not run: the client's own hooks are the way to act on responses.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import requests

from requestforge._exceptions import InvalidRequestError
from requestforge._models import HttpRequest, parse_method

__all__ = ["adopt"]


def adopt(request: object) -> HttpRequest:
    """``request`` as an :class:`~requestforge.HttpRequest`; raise for anything else."""
    if isinstance(request, HttpRequest):
        return request
    if isinstance(request, requests.Request | requests.PreparedRequest):
        _refuse_hooks(request.hooks)
    if isinstance(request, requests.Request):
        return HttpRequest(
            parse_method(_text("method", request.method)),
            _text("url", request.url),
            headers=_mapping("headers", request.headers),
            params=_mapping("params", request.params),
            json_data=request.json,
            data=request.data or None,  # requests' default is [], meaning none
            cookies=request.cookies or None,
            files=request.files or None,
            auth=request.auth,
        )
    if isinstance(request, requests.PreparedRequest):
        return HttpRequest(
            parse_method(_text("method", request.method)),
            _text("url", request.url),
            headers=_mapping("headers", request.headers),
            data=request.body,
        )
    raise InvalidRequestError(
        "send() takes an HttpRequest, a requests.Request or a requests.PreparedRequest, "
        f"got {type(request).__name__}"
    )


def _refuse_hooks(hooks: Any) -> None:
    if isinstance(hooks, Mapping):
        hooks = [hooks.get(event) for event in hooks]
    if any(hooks or ()):
        raise InvalidRequestError(
            "requests hooks= on a Request are not run by HttpClient; use its response hooks "
            "(HttpClientConfigBuilder.with_response_hook) instead"
        )


def _mapping(name: str, value: object) -> dict[Any, Any]:
    """A Request's headers or params as a dict: a mapping, or ``(name, value)`` pairs."""
    if not value:
        return {}
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, list | tuple) and all(
        isinstance(pair, tuple | list) and len(pair) == 2 and isinstance(pair[0], str)
        for pair in value
    ):
        return dict(value)
    raise InvalidRequestError(
        f"the request's {name} must be a mapping or (name, value) pairs, got {type(value).__name__}"
    )


def _text(name: str, value: object) -> str:
    if isinstance(value, bytes):
        value = value.decode("ascii", errors="replace")
    if not isinstance(value, str) or not value:
        raise InvalidRequestError(
            f"the request's {name} must be a non-empty string, got {type(value).__name__}"
        )
    return value
