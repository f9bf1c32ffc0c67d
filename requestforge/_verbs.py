"""The verb methods of :class:`~requestforge.HttpClient`, each with requests' keyword set.

The keywords are one ``TypedDict``, :class:`RequestOptions`, unpacked into each verb, so a
type checker rejects a misspelt or unsupported keyword and there is one list to keep in
step with :meth:`HttpClient.request <requestforge.HttpClient.request>`. Defaults are
requests': ``allow_redirects`` is True, except for ``head()``, where it is False, as in
``requests.Session.head``.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from http.cookiejar import CookieJar
from typing import TYPE_CHECKING, Any, TypedDict

from requests.auth import AuthBase

from requestforge._models import ExtensionMethod, HttpMethod
from requestforge._response import HttpResponse

if TYPE_CHECKING:
    if sys.version_info >= (3, 11):
        from typing import Unpack
    else:
        from typing_extensions import Unpack

__all__ = ["RequestOptions"]


class RequestOptions(TypedDict, total=False):
    """The keywords of :meth:`HttpClient.request <requestforge.HttpClient.request>` and of
    every verb method, with requests' names and meanings; type your own wrappers with it
    (``def fetch(url: str, **options: Unpack[RequestOptions])``)."""

    params: Mapping[str, Any] | None
    data: Any
    headers: Mapping[str, str] | None
    cookies: Mapping[str, str] | CookieJar | None
    files: Any
    auth: tuple[str, str] | AuthBase | None
    timeout: float | tuple[float, float] | None
    allow_redirects: bool
    proxies: Mapping[str, str] | None
    stream: bool
    verify: bool | str | None
    cert: str | tuple[str, str] | None
    json: Any


class VerbMethods:
    """``get()`` ... ``options()``: each is ``request()`` with its method filled in."""

    def request(
        self,
        method: HttpMethod | ExtensionMethod | str,
        url: str,
        **options: Unpack[RequestOptions],
    ) -> HttpResponse:
        """Send a request (implemented by :class:`~requestforge.HttpClient`)."""
        raise NotImplementedError

    def get(self, url: str, **options: Unpack[RequestOptions]) -> HttpResponse:
        """Send a GET request; the keywords are :meth:`request`'s."""
        return self.request(HttpMethod.GET, url, **options)

    def post(self, url: str, **options: Unpack[RequestOptions]) -> HttpResponse:
        """Send a POST request; the keywords are :meth:`request`'s."""
        return self.request(HttpMethod.POST, url, **options)

    def put(self, url: str, **options: Unpack[RequestOptions]) -> HttpResponse:
        """Send a PUT request; the keywords are :meth:`request`'s."""
        return self.request(HttpMethod.PUT, url, **options)

    def patch(self, url: str, **options: Unpack[RequestOptions]) -> HttpResponse:
        """Send a PATCH request; the keywords are :meth:`request`'s."""
        return self.request(HttpMethod.PATCH, url, **options)

    def delete(self, url: str, **options: Unpack[RequestOptions]) -> HttpResponse:
        """Send a DELETE request; the keywords are :meth:`request`'s."""
        return self.request(HttpMethod.DELETE, url, **options)

    def head(self, url: str, **options: Unpack[RequestOptions]) -> HttpResponse:
        """Send a HEAD request; the keywords are :meth:`request`'s, but ``allow_redirects``
        defaults to False, as in requests."""
        options.setdefault("allow_redirects", False)
        return self.request(HttpMethod.HEAD, url, **options)

    def options(self, url: str, **options: Unpack[RequestOptions]) -> HttpResponse:
        """Send an OPTIONS request; the keywords are :meth:`request`'s."""
        return self.request(HttpMethod.OPTIONS, url, **options)
