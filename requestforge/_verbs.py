"""The verb methods of :class:`~requestforge.HttpClient`, each with requests' keyword set.

Explicit keyword parameters (not ``**kwargs``), so a type checker rejects a misspelt or
unsupported keyword. Defaults are requests': ``allow_redirects`` is True, except for
``head()``, where it is False, as in ``requests.Session.head``.
"""

from __future__ import annotations

from collections.abc import Mapping
from http.cookiejar import CookieJar
from typing import Any

from requests.auth import AuthBase

from requestforge._models import ExtensionMethod, HttpMethod, HttpResponse

__all__: list[str] = []


class VerbMethods:
    """``get()`` ... ``options()``: each is ``request()`` with its method filled in."""

    def request(
        self,
        method: HttpMethod | ExtensionMethod | str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        cookies: Mapping[str, str] | CookieJar | None = None,
        files: Any = None,
        auth: tuple[str, str] | AuthBase | None = None,
        timeout: float | tuple[float, float] | None = None,
        allow_redirects: bool = True,
        proxies: Mapping[str, str] | None = None,
        verify: bool | str | None = None,
        cert: str | tuple[str, str] | None = None,
        json: Any = None,
    ) -> HttpResponse:
        """Send a request (implemented by :class:`~requestforge.HttpClient`)."""
        raise NotImplementedError

    def get(
        self,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        cookies: Mapping[str, str] | CookieJar | None = None,
        files: Any = None,
        auth: tuple[str, str] | AuthBase | None = None,
        timeout: float | tuple[float, float] | None = None,
        allow_redirects: bool = True,
        proxies: Mapping[str, str] | None = None,
        verify: bool | str | None = None,
        cert: str | tuple[str, str] | None = None,
        json: Any = None,
    ) -> HttpResponse:
        """Send a GET request; the keywords are :meth:`request`'s."""
        return self.request(
            HttpMethod.GET,
            url,
            params=params,
            data=data,
            headers=headers,
            cookies=cookies,
            files=files,
            auth=auth,
            timeout=timeout,
            allow_redirects=allow_redirects,
            proxies=proxies,
            verify=verify,
            cert=cert,
            json=json,
        )

    def post(
        self,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        cookies: Mapping[str, str] | CookieJar | None = None,
        files: Any = None,
        auth: tuple[str, str] | AuthBase | None = None,
        timeout: float | tuple[float, float] | None = None,
        allow_redirects: bool = True,
        proxies: Mapping[str, str] | None = None,
        verify: bool | str | None = None,
        cert: str | tuple[str, str] | None = None,
        json: Any = None,
    ) -> HttpResponse:
        """Send a POST request; the keywords are :meth:`request`'s."""
        return self.request(
            HttpMethod.POST,
            url,
            params=params,
            data=data,
            headers=headers,
            cookies=cookies,
            files=files,
            auth=auth,
            timeout=timeout,
            allow_redirects=allow_redirects,
            proxies=proxies,
            verify=verify,
            cert=cert,
            json=json,
        )

    def put(
        self,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        cookies: Mapping[str, str] | CookieJar | None = None,
        files: Any = None,
        auth: tuple[str, str] | AuthBase | None = None,
        timeout: float | tuple[float, float] | None = None,
        allow_redirects: bool = True,
        proxies: Mapping[str, str] | None = None,
        verify: bool | str | None = None,
        cert: str | tuple[str, str] | None = None,
        json: Any = None,
    ) -> HttpResponse:
        """Send a PUT request; the keywords are :meth:`request`'s."""
        return self.request(
            HttpMethod.PUT,
            url,
            params=params,
            data=data,
            headers=headers,
            cookies=cookies,
            files=files,
            auth=auth,
            timeout=timeout,
            allow_redirects=allow_redirects,
            proxies=proxies,
            verify=verify,
            cert=cert,
            json=json,
        )

    def patch(
        self,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        cookies: Mapping[str, str] | CookieJar | None = None,
        files: Any = None,
        auth: tuple[str, str] | AuthBase | None = None,
        timeout: float | tuple[float, float] | None = None,
        allow_redirects: bool = True,
        proxies: Mapping[str, str] | None = None,
        verify: bool | str | None = None,
        cert: str | tuple[str, str] | None = None,
        json: Any = None,
    ) -> HttpResponse:
        """Send a PATCH request; the keywords are :meth:`request`'s."""
        return self.request(
            HttpMethod.PATCH,
            url,
            params=params,
            data=data,
            headers=headers,
            cookies=cookies,
            files=files,
            auth=auth,
            timeout=timeout,
            allow_redirects=allow_redirects,
            proxies=proxies,
            verify=verify,
            cert=cert,
            json=json,
        )

    def delete(
        self,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        cookies: Mapping[str, str] | CookieJar | None = None,
        files: Any = None,
        auth: tuple[str, str] | AuthBase | None = None,
        timeout: float | tuple[float, float] | None = None,
        allow_redirects: bool = True,
        proxies: Mapping[str, str] | None = None,
        verify: bool | str | None = None,
        cert: str | tuple[str, str] | None = None,
        json: Any = None,
    ) -> HttpResponse:
        """Send a DELETE request; the keywords are :meth:`request`'s."""
        return self.request(
            HttpMethod.DELETE,
            url,
            params=params,
            data=data,
            headers=headers,
            cookies=cookies,
            files=files,
            auth=auth,
            timeout=timeout,
            allow_redirects=allow_redirects,
            proxies=proxies,
            verify=verify,
            cert=cert,
            json=json,
        )

    def head(
        self,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        cookies: Mapping[str, str] | CookieJar | None = None,
        files: Any = None,
        auth: tuple[str, str] | AuthBase | None = None,
        timeout: float | tuple[float, float] | None = None,
        allow_redirects: bool = False,
        proxies: Mapping[str, str] | None = None,
        verify: bool | str | None = None,
        cert: str | tuple[str, str] | None = None,
        json: Any = None,
    ) -> HttpResponse:
        """Send a HEAD request; the keywords are :meth:`request`'s, but ``allow_redirects``
        defaults to False, as in requests."""
        return self.request(
            HttpMethod.HEAD,
            url,
            params=params,
            data=data,
            headers=headers,
            cookies=cookies,
            files=files,
            auth=auth,
            timeout=timeout,
            allow_redirects=allow_redirects,
            proxies=proxies,
            verify=verify,
            cert=cert,
            json=json,
        )

    def options(
        self,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        cookies: Mapping[str, str] | CookieJar | None = None,
        files: Any = None,
        auth: tuple[str, str] | AuthBase | None = None,
        timeout: float | tuple[float, float] | None = None,
        allow_redirects: bool = True,
        proxies: Mapping[str, str] | None = None,
        verify: bool | str | None = None,
        cert: str | tuple[str, str] | None = None,
        json: Any = None,
    ) -> HttpResponse:
        """Send an OPTIONS request; the keywords are :meth:`request`'s."""
        return self.request(
            HttpMethod.OPTIONS,
            url,
            params=params,
            data=data,
            headers=headers,
            cookies=cookies,
            files=files,
            auth=auth,
            timeout=timeout,
            allow_redirects=allow_redirects,
            proxies=proxies,
            verify=verify,
            cert=cert,
            json=json,
        )
