"""The checks of one request's arguments: URL, headers, params, body and requests' keywords.

The request-side half of ``_validate.py`` (kept apart only for size): every check raises
the ``error=`` it is given, :class:`~requestforge.InvalidRequestError` for a request and
:class:`~requestforge.ConfigurationError` for the same rule at build time (default
headers, the base URL), so one rule has one implementation. Each rule is the one requests,
urllib3 or ``http.client`` would enforce later with a built-in exception (or a message that
quotes the value): checked here first, before anything is sent. Messages name the argument
and what is wrong with it; they never quote a header value, a cookie or a body.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from http.cookiejar import CookieJar
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from requestforge._exceptions import InvalidRequestError, RequestForgeError
from requestforge._redact import redact_url
from requestforge._validate import _COOKIE_FORBIDDEN, _kind, _show

__all__: list[str] = []  # helpers for the package's own modules, not public API

#: RFC 9110 §5.6.2: a field name is a ``token``.
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
#: What no field value may hold: control characters other than HTAB (RFC 9110 §5.5), which
#: covers the CR/LF that would end the header and start another.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_CONTROL_BYTES = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
#: The mapping types the fast paths take without an ``isinstance`` against the ABC.
_PLAIN_MAPPINGS = (dict, MappingProxyType)
#: Header names joined by LF, every one a token; values joined by LF, checked at once.
_HEADER_NAMES = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+(?:\n[!#$%&'*+\-.^_`|~0-9A-Za-z]+)*")
_CONTROL_BUT_LF = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_LEADING_BLANK = re.compile(r"(?:^|\n)[ \t]")
#: The start of a URL up to its path: the scheme and, after ``//``, the authority.
_ORIGIN = re.compile(r"[^:/?#]*:(?://[^/?#]*)?")
#: A host name's label: 1 to 63 characters (RFC 1035 §2.3.4), as the IDNA codec that
#: urllib3 encodes a host with demands.
_MAX_LABEL = 63
#: The sizes a ``files`` value may have as a tuple: (filename, content[, type[, headers]]).
_FILE_TUPLE_SIZES = (2, 3, 4)


# -- headers -------------------------------------------------------------------------------


def header_name_problem(name: object) -> str | None:
    """Why ``name`` cannot be a header name, or None: it must be an RFC 9110 token."""
    if not isinstance(name, str):
        return f"a header name must be a string, got {type(name).__name__}"
    if _HEADER_NAME.fullmatch(name) is None:
        return (
            f"header name {_show(name)} is not an RFC 9110 token (ASCII letters, digits, "
            "!#$%&'*+-.^_`|~; no space, colon or control character)"
        )
    return None


def header_value_problem(value: object, *, sending: bool = True) -> str | None:
    """Why ``value`` cannot be a header value, or None. Never quotes the value (a secret).

    As requests and ``http.client`` take it: a string of Latin-1 characters (or bytes), with
    no control character but tab and, when ``sending``, no leading whitespace (requests
    refuses it); empty is allowed. A request being built may hold a blank value a hook
    replaces, so its construction passes ``sending=False`` and the client checks again
    before the first attempt.
    """
    if isinstance(value, str):
        return _text_value_problem(value, sending) if value else None
    if isinstance(value, bytes):
        if value and (
            _CONTROL_BYTES.search(value) is not None or (sending and value[:1].isspace())
        ):
            return "must not contain a control character or start with whitespace"
        return None
    return f"must be a string, got {type(value).__name__}"


def _text_value_problem(value: str, sending: bool) -> str | None:
    if _CONTROL.search(value) is not None:
        return "must not contain a line break or another control character"
    if sending and value[0].isspace():
        return "must not start with whitespace"
    if not value.isascii() and not _latin1(value):
        return (
            "has characters outside Latin-1, which HTTP/1.1 cannot send "
            "(encode them first, e.g. percent-encoding)"
        )
    return None


def valid_headers(
    name: str,
    headers: object,
    *,
    error: type[RequestForgeError] = InvalidRequestError,
    sending: bool = True,
) -> Mapping[str, str]:
    """``headers`` itself if it is a mapping of valid header names to valid values
    (``sending``: see :func:`header_value_problem`)."""
    if isinstance(headers, Mapping) and _plain_headers(headers, sending):
        return headers
    if not isinstance(headers, Mapping):
        raise error(f"{name} must be a mapping of header names to values, got {_kind(headers)}")
    for key, value in headers.items():
        problem = header_name_problem(key)
        if problem is not None:
            raise error(f"{name}: {problem}")
        problem = header_value_problem(value, sending=sending)
        if problem is not None:
            raise error(f"{name}: the value of header {key!r} {problem}")
    return headers


def _plain_headers(headers: Mapping[Any, Any], sending: bool) -> bool:
    """The common case in a few C-speed passes over all headers at once: string names that
    are tokens, ASCII string values without control characters (nor leading whitespace when
    ``sending``). False means "look at each header", not "invalid"."""
    try:
        names = "\n".join(headers)
        values = "\n".join(headers.values())
    except TypeError:  # a name or value that is not a string
        return False
    return (
        _HEADER_NAMES.fullmatch(names) is not None
        and values.isascii()
        and values.count("\n") == len(headers) - 1
        and _CONTROL_BUT_LF.search(values) is None
        and (not sending or _LEADING_BLANK.search(values) is None)
    )


# -- URLs ----------------------------------------------------------------------------------


def url_text(
    name: str, value: object, *, error: type[RequestForgeError] = InvalidRequestError
) -> str:
    """A URL string (absolute or relative); bytes, None and the rest are refused."""
    if not isinstance(value, str):
        raise error(f"{name} must be a string, got {_kind(value)}")
    if not value.isascii() and _unencodable(value):
        raise error(f"{name} contains characters that cannot be encoded (lone surrogates)")
    return value


def absolute_url(
    name: str, value: object, *, error: type[RequestForgeError] = InvalidRequestError
) -> str:
    """An absolute URL whose authority urllib3 can connect to: a bracketed host that is an
    IPv6 address, a port in range, host labels of 1 to 63 characters."""
    url = url_text(name, value, error=error)
    match = _ORIGIN.match(url)
    problem = _origin_problem(match.group() if match is not None else "")
    if problem is not None:
        raise error(f"{name} {redact_url(url)!r} {problem}")
    return url


@lru_cache(maxsize=256)
def _origin_problem(origin: str) -> str | None:
    """What is wrong with the scheme and authority of a URL (cached: a client talks to a
    few origins, many times)."""
    try:
        parts = urlsplit(origin)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError:
        return "is not a valid URL (a bracketed host that is no IPv6 address, or a bad port)"
    if not parts.scheme or not host:
        return "has no scheme or no host"
    if ":" not in host:  # an IPv6 address has no labels
        labels = host.split(".")
        if len(labels) > 1 and labels[-1] == "":
            labels.pop()  # a trailing dot: the root
        # A non-ASCII label's length is checked by requests' IDNA encoding, with a typed error.
        if any(not label or (label.isascii() and len(label) > _MAX_LABEL) for label in labels):
            return f"has a host label that is empty or longer than {_MAX_LABEL} characters"
    return None


# -- params and body -----------------------------------------------------------------------


def valid_params(name: str, params: object) -> Mapping[str, Any]:
    """Query parameters: a mapping of string names to values (a list or tuple repeats the
    name), or None / empty for none."""
    if params is None:
        return {}
    if isinstance(params, _PLAIN_MAPPINGS) and _plain_params(params):
        return params
    if not isinstance(params, Mapping):
        raise InvalidRequestError(
            f"{name} must be a mapping of names to values, got {_kind(params)}"
        )
    for key, value in params.items():
        if not isinstance(key, str):
            raise InvalidRequestError(f"{name} names must be strings, got {_kind(key)}")
        _check_text(f"{name}[{key!r}]", key)
        for item in value if isinstance(value, list | tuple) else (value,):
            if isinstance(item, str):
                _check_text(f"{name}[{key!r}]", item)
    return params


def _plain_params(params: Mapping[Any, Any]) -> bool:
    """The common case at C speed: ASCII string names, and values that are ints or ASCII
    strings. False means "look at each one", not "invalid"."""
    try:
        names = "".join(params)
    except TypeError:
        return False
    return names.isascii() and all(
        type(value) is int or (type(value) is str and value.isascii()) for value in params.values()
    )


def valid_data(data: object, *, files: object) -> None:
    """``data=`` as requests encodes it: None, str, bytes, a form (a mapping, or a list of
    ``(name, value)`` pairs), a file or another iterable of bytes; with ``files`` a form only.
    """
    if data is None or isinstance(data, bytes | bytearray):
        return
    if isinstance(data, str):
        _check_text("data", data)
        form = False
    elif isinstance(data, Mapping):
        _check_form(data.items())
        form = True
    elif isinstance(data, list | tuple):
        if not all(isinstance(pair, list | tuple) and len(pair) == 2 for pair in data):
            raise InvalidRequestError("data as a list must hold (name, value) pairs")
        _check_form(data)
        form = True
    elif hasattr(data, "read") or (isinstance(data, Iterable) and not isinstance(data, memoryview)):
        form = False
    else:
        raise InvalidRequestError(
            "data must be str, bytes, a mapping or list of (name, value) pairs, a file or an "
            f"iterable of bytes, got {type(data).__name__}"
        )
    if files and data and not form:
        raise InvalidRequestError("with files=, data must be a form (a mapping or pairs)")


def _check_form(pairs: Iterable[tuple[object, object]]) -> None:
    for key, value in pairs:
        if not isinstance(key, str):
            raise InvalidRequestError(f"data field names must be strings, got {_kind(key)}")
        _check_text("data field name", key)
        for item in value if isinstance(value, list | tuple) else (value,):
            if isinstance(item, str):
                _check_text(f"data field {key!r}", item)


def json_problem(value: object) -> str | None:
    """Why ``value`` cannot be sent as ``json=`` (requests encodes with ``allow_nan=False``),
    or None."""
    if value is None or isinstance(value, str | int):  # bool is an int
        return None
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        return f"is not JSON-serialisable ({type(exc).__name__}: {_first_words(exc)})"
    except RecursionError:
        return "is nested too deeply to encode"
    return None


def valid_json(value: object) -> None:
    """Raise ``InvalidRequestError`` when ``json=`` cannot be encoded."""
    problem = json_problem(value)
    if problem is not None:
        raise InvalidRequestError(f"json {problem}")


def _first_words(exc: BaseException) -> str:
    """The start of json's message, which names a type or says "Circular reference" and
    "Out of range float values": never more than that (no value is quoted)."""
    return str(exc).split(":", 1)[0][:60]


def _check_text(name: str, value: str) -> None:
    if not value.isascii() and _unencodable(value):
        raise InvalidRequestError(f"{name} contains characters that cannot be encoded")


def _unencodable(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


# -- requests' keywords --------------------------------------------------------------------


def valid_request_options(
    *,
    cookies: object,
    files: object,
    auth: object,
    allow_redirects: object,
    stream: object,
    proxies: object,
    verify: object,
    cert: object,
    error: type[RequestForgeError],
) -> None:
    """The requests keywords of one request, each of a type requests accepts (see
    :meth:`HttpClient.request <requestforge.HttpClient.request>`); raise ``error`` otherwise,
    so no built-in exception escapes from deep inside requests. Never quotes a secret."""
    from requests.auth import AuthBase  # noqa: PLC0415 - keeps this module's imports light

    _check_cookies(cookies, error)
    _check_files(files, error)
    if (
        auth is not None
        and not isinstance(auth, AuthBase)
        and not (isinstance(auth, tuple) and len(auth) == 2 and all(_latin1(a) for a in auth))
    ):
        raise error(
            "auth must be a (user, password) tuple of Latin-1 strings or a "
            f"requests.auth.AuthBase, got {type(auth).__name__}"
        )
    for name, flag in (("allow_redirects", allow_redirects), ("stream", stream)):
        if not isinstance(flag, bool):
            raise error(f"{name} must be True or False, got {_show(flag)}")
    _check_proxies(proxies, error)
    if verify is not None and not isinstance(verify, bool):
        if not isinstance(verify, str) or not verify:
            raise error(f"verify must be True, False or a CA bundle path, got {_show(verify)}")
        if not os.path.exists(verify):
            raise error(f"verify: CA bundle not found: {verify!r}")
    if cert is not None:
        given = cert if isinstance(cert, tuple) and len(cert) == 2 else (cert,)
        paths = [path for path in given if isinstance(path, str) and path]
        if len(paths) != len(given):
            raise error(f"cert must be a path or a (cert, key) pair of paths, got {_show(cert)}")
        missing = [path for path in paths if not os.path.isfile(path)]
        if missing:
            raise error(f"cert: file not found: {missing[0]!r}")


def _latin1(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


def _check_cookies(cookies: object, error: type[RequestForgeError]) -> None:
    if cookies is None or isinstance(cookies, CookieJar):
        return
    if not isinstance(cookies, Mapping):
        raise error(f"cookies must be a mapping or a CookieJar, got {type(cookies).__name__}")
    for name, value in cookies.items():
        if not isinstance(name, str) or not name or _COOKIE_FORBIDDEN.search(name) or "=" in name:
            raise error(f"cookies: invalid cookie name {_show(name)}")
        if not isinstance(value, str) or _COOKIE_FORBIDDEN.search(value) or not _latin1(value):
            raise error(
                f"cookies: the value of cookie {name!r} must be a Latin-1 string without ';' "
                "or control characters"
            )


def _check_files(files: object, error: type[RequestForgeError]) -> None:
    if files is None:
        return
    if isinstance(files, Mapping):
        pairs: Iterable[object] = files.items()
    elif isinstance(files, list | tuple):
        pairs = files
    else:
        raise error(
            f"files must be a mapping or a list of (field, file) pairs, got {type(files).__name__}"
        )
    for pair in pairs:
        if not (isinstance(pair, tuple) and len(pair) == 2 and isinstance(pair[0], str)):
            raise error("files must be a mapping or a list of (field, file) pairs, field a str")
        field, value = pair
        content = value
        if isinstance(value, tuple | list):
            if len(value) not in _FILE_TUPLE_SIZES:
                raise error(
                    f"files[{field!r}] as a tuple must be (filename, content[, content_type"
                    "[, headers]])"
                )
            filename, content = value[0], value[1]
            if filename is not None and not isinstance(filename, str):
                raise error(f"files[{field!r}]: the filename must be a string or None")
            if len(value) > 2 and value[2] is not None and not isinstance(value[2], str):
                raise error(f"files[{field!r}]: the content type must be a string or None")
            if len(value) > 3 and value[3] is not None:
                valid_headers(f"files[{field!r}] headers", value[3], error=error)
        if not (
            content is None
            or isinstance(content, str | bytes | bytearray)
            or hasattr(content, "read")
        ):
            raise error(
                f"files[{field!r}] must be str, bytes or a file, got {type(content).__name__}"
            )


def _check_proxies(proxies: object, error: type[RequestForgeError]) -> None:
    if proxies is None:
        return
    if not (
        isinstance(proxies, Mapping)
        and all(isinstance(k, str) and isinstance(v, str | None) for k, v in proxies.items())
    ):
        raise error(f"proxies must be a mapping of str to str, got {type(proxies).__name__}")
    for key, proxy in proxies.items():
        if key != "no_proxy" and proxy:
            try:
                parts = urlsplit(proxy)
                parts.port  # noqa: B018 - raises ValueError for a bad port
            except ValueError:
                raise error(f"proxies[{key!r}] is not a valid URL: {redact_url(proxy)!r}") from None
