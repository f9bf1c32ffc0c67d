"""``SecretScrubber``: replaces every secret in an HTTP exchange with a stable placeholder.

Cassettes are committed, so nothing secret may reach them. What counts as a secret comes
from what the library *knows* first (``requestforge._secrets``: the exact header names,
field names and values that auth hooks, providers and fetchers declared, so an
``Ocp-Apim-Subscription-Key`` header or a ``?subscription-key=`` is hidden because its hook
said so), then from :mod:`requestforge._redact`'s name rules: credential headers, cookies,
secret query/form/JSON fields at any depth, URL user info. A declared value is replaced
wherever it turns up (a header, a path segment, a query value, a body). Each distinct secret becomes
``forge-scrubbed-<n>``, the same ``<n>`` wherever it appears, so a cassette still shows that
the token a response issued is the one the next request carried, and a replayed token is
a valid header value. Once seen in a structured place, a secret is also replaced wherever
else it turns up as text (a token echoed in another header or inside a JSON string).

HTTP Basic credentials keep their user part, which in OAuth is the client id (RFC 6749
section 2.3.1), and lose their secret: ``Basic <base64(id:secret)>`` is stored decoded as
``Basic <id>:forge-scrubbed-<n>``, readable in a cassette's diff and comparable on replay, the
id exactly as it was sent (form-encoded or not). A secret shorter than
:data:`MIN_BASIC_SECRET` marks an API key sent as the user name (``KEY:`` or ``KEY:X``), and
then the whole credentials become one placeholder, as they do for a header listed in
``extra_headers``.

A JWT the client signed (a DPoP proof, a client assertion: see ``_cassette_jwt``) keeps a
summary of its structure after its placeholder, ``forge-scrubbed-<n> jwt{header}.{claims}``,
so a replay can check its algorithm, type and purpose, never its value.

Loopback servers get a new port every run, so ``http://127.0.0.1:<port>`` (or ``localhost``,
``[::1]``) becomes ``http://loopback-<n>.invalid``, numbered by port in the order first seen:
the same host on every run, and one that can never resolve (RFC 2606's ``.invalid``).

Pure data in, data out: nothing here knows about vcrpy.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import re
import threading
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any, Final
from urllib.parse import parse_qsl, quote, quote_plus, unquote, unquote_plus, urlencode, urlsplit

from requestforge._redact import REDACTED, is_credential_field, is_secret_header
from requestforge._secrets import known_secrets
from requestforge_testing._cassette_jwt import (
    JWT_FIELDS,
    JWT_HEADERS,
    SEPARATOR,
    JwtSummary,
    split_summary,
    summarise,
)

__all__ = [
    "LOOPBACK_HOST_SUFFIX",
    "MIN_BASIC_SECRET",
    "PLACEHOLDER_PREFIX",
    "SecretScrubber",
    "basic_credentials",
    "body_values",
    "declared_pattern",
    "is_declared_field",
    "is_placeholder",
    "url_values",
]

#: Every placeholder starts with this: letters, digits and hyphens only, so a placeholder is
#: valid in a header, a URL, a form and JSON without escaping, and is a valid token string.
PLACEHOLDER_PREFIX: Final = "forge-scrubbed-"
#: A loopback host becomes ``loopback-<n>`` plus this reserved top-level domain.
LOOPBACK_HOST_SUFFIX: Final = ".invalid"
#: A Basic secret shorter than this is taken for the dummy next to an API key sent as the
#: user name (Stripe's ``KEY:``, Freshdesk's ``KEY:X``): the user part is then hidden too.
MIN_BASIC_SECRET: Final = 4

_PLACEHOLDER = re.compile(re.escape(PLACEHOLDER_PREFIX) + r"(\d+)")
#: A secret shorter than this is replaced only where it is a whole value: replacing a
#: two-letter password inside every other word would mangle the cassette.
MIN_EMBEDDED: Final = 6
_LOOPBACK_URL = re.compile(
    r"(?P<scheme>https?://)(?P<host>localhost|127(?:\.\d{1,3}){3}|\[::1\])(?::(?P<port>\d{1,5}))?",
    re.IGNORECASE,
)
_FORM: Final = "application/x-www-form-urlencoded"
_CREDENTIAL_HEADERS: Final = frozenset({"authorization", "proxy-authorization"})
#: Fields of the protocol, never secret, that a replay compares exactly: kept as sent even
#: if a test declared a password spelled ``password``.
_PROTOCOL_FIELDS: Final = frozenset({"grant_type"})
#: Headers that frame the message: never rewritten (a declared "1234" must not turn a
#: ``Content-Length`` into a placeholder that no HTTP library can parse on replay).
_FRAMING_HEADERS: Final = frozenset({"content-length", "transfer-encoding", "content-encoding"})
#: Basic credentials as a cassette stores them: the user part, then a placeholder. Base64
#: never contains a colon, so this cannot be mistaken for credentials as sent.
_STORED_BASIC = re.compile(r"(?P<user>[^:]*):(?P<secret>" + _PLACEHOLDER.pattern + ")")


@lru_cache(maxsize=4)
def _declared(values: frozenset[str]) -> re.Pattern[str] | None:
    """One pattern for every declared value long enough to be replaced inside other text,
    longest first (a value containing another is replaced whole); compiled once per state
    of the knowledge, which rarely changes."""
    long_enough = sorted((v for v in values if len(v) >= MIN_EMBEDDED), key=len, reverse=True)
    return re.compile("|".join(map(re.escape, long_enough))) if long_enough else None


def declared_pattern() -> re.Pattern[str] | None:
    """The pattern of the secret values declared so far (``requestforge._secrets``) that
    are replaced wherever they appear; shorter ones only where they are a whole value."""
    return _declared(known_secrets().values)


def is_declared_field(name: str) -> bool:
    """Whether a component declared ``name`` as a query/form/JSON field carrying a secret."""
    return name.lower() in known_secrets().fields


def is_placeholder(value: str) -> bool:
    """Whether ``value`` is exactly one scrubber placeholder (with a JWT summary or not)."""
    return _PLACEHOLDER.fullmatch(split_summary(value)[0]) is not None


def basic_credentials(credentials: str) -> tuple[str, str] | None:
    """``(user, secret)`` of Basic credentials, as sent (base64) or as stored
    (``user:forge-scrubbed-<n>``); None if they are neither (or one placeholder)."""
    stored = _STORED_BASIC.fullmatch(credentials)
    if stored is not None:
        return stored.group("user"), stored.group("secret")
    try:
        decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, secret = decoded.partition(":")
    return (user, secret) if sep else None


class SecretScrubber:
    """Maps secrets to placeholders for one cassette; thread-safe; scrubbing is idempotent.

    ``extra_headers`` and ``extra_fields`` name secrets :mod:`requestforge._redact` cannot
    know about (a partner's key header, a ``pwd`` field), case-insensitively; listing
    ``Authorization`` hides Basic credentials whole, user part included.

    Placeholders already in the input (a loaded cassette, a replayed token) are kept, and
    numbering continues after the highest one seen, so new secrets never reuse a number.
    """

    #: See :data:`MIN_EMBEDDED`.
    MIN_EMBEDDED_LENGTH: Final = MIN_EMBEDDED

    def __init__(
        self, *, extra_headers: Iterable[str] = (), extra_fields: Iterable[str] = ()
    ) -> None:
        #: Header names (lower case) whose whole value is a secret, on top of the defaults.
        self._extra_headers = frozenset(name.lower() for name in extra_headers)
        #: Query, form and JSON field names (lower case) that hold secrets, likewise.
        self._extra_fields = frozenset(name.lower() for name in extra_fields)
        self._lock = threading.Lock()
        self._placeholders: dict[str, str] = {}
        self._learned: set[str] = set()
        self._next = 1
        self._ports: dict[str, str] = {}

    # -- the mapping ---------------------------------------------------------------------

    @property
    def secrets(self) -> frozenset[str]:
        """Every secret seen so far (for leak checks; never print them)."""
        with self._lock:
            return frozenset(self._placeholders) | frozenset(self._learned)

    def placeholder(self, secret: str) -> str:
        """The placeholder for ``secret`` (the same one every time); empty stays empty."""
        if not secret:
            return secret
        found = _PLACEHOLDER.fullmatch(split_summary(secret)[0])
        with self._lock:
            if found is not None:
                self._next = max(self._next, int(found.group(1)) + 1)
                return secret
            existing = self._placeholders.get(secret)
            if existing is None:
                existing = f"{PLACEHOLDER_PREFIX}{self._next}"
                self._next += 1
                self._placeholders[secret] = existing
            return existing

    def signed(self, value: str) -> str:
        """The placeholder of a JWT the client signed, then its summary (see
        ``_cassette_jwt``); a bare placeholder for a value that is not a JWT. Stored
        summaries are kept, their strings scrubbed again (a secret learned since)."""
        head, stored = split_summary(value)
        if stored is not None and is_placeholder(head):
            head = self.placeholder(head)  # numbering continues after it
            summary: JwtSummary | None = stored.scrubbed(self._kept)
        else:
            head = self.placeholder(value)  # numbered before any secret inside it
            summary = None if is_placeholder(value) else summarise(value, self._kept)
        return head if summary is None else f"{head}{SEPARATOR}{summary.encode()}"

    def _kept(self, value: str) -> str:
        """A value a JWT summary keeps: a URL (``aud``, ``htu``) scrubbed as one, so a
        secret query value is hidden by its name; other text as text."""
        return self.url(value) if value.startswith(("http://", "https://")) else self.text(value)

    def learn(self, secret: str) -> None:
        """Know ``secret`` for replacement elsewhere without numbering it until it is used."""
        if secret and not is_placeholder(secret):
            with self._lock:
                self._learned.add(secret)

    def loopback_host(self, port: str) -> str:
        """The stable host standing for a loopback server on ``port`` ("" for the default)."""
        with self._lock:
            host = self._ports.get(port)
            if host is None:
                host = f"loopback-{len(self._ports) + 1}{LOOPBACK_HOST_SUFFIX}"
                self._ports[port] = host
            return host

    # -- text ----------------------------------------------------------------------------

    def text(self, value: str) -> str:
        """``value`` with every declared and known secret in it replaced and loopback URLs
        normalised."""
        value = self._declared_in(value)
        with self._lock:
            known = {**dict.fromkeys(self._learned, ""), **self._placeholders}
        if value in known:
            return self.placeholder(value)
        for secret in sorted(known, key=len, reverse=True):
            if len(secret) >= self.MIN_EMBEDDED_LENGTH and secret in value:
                value = value.replace(secret, self.placeholder(secret))
        return _LOOPBACK_URL.sub(self._loopback_url, value)

    def _declared_in(self, value: str) -> str:
        """Declared values replaced; placeholders already there are left whole (a declared
        ``forge`` must not rewrite ``forge-scrubbed-3``)."""
        if not value or is_placeholder(value):
            return value
        if value in known_secrets().values:
            return self.placeholder(value)
        declared = declared_pattern()
        if declared is None:
            return value
        pieces, last = [], 0
        for run in _PLACEHOLDER.finditer(value):
            pieces += [declared.sub(self._declared_match, value[last : run.start()]), run[0]]
            last = run.end()
        pieces.append(declared.sub(self._declared_match, value[last:]))
        return "".join(pieces)

    def _declared_match(self, found: re.Match[str]) -> str:
        return self.placeholder(found.group(0))

    def hide(self, value: str) -> str:
        """``value`` with every secret seen so far shown as ``[REDACTED]``, numbering
        nothing: for log lines, which must not change the cassette's placeholders."""
        for secret in sorted(self.secrets, key=len, reverse=True):
            if len(secret) >= self.MIN_EMBEDDED_LENGTH:
                value = value.replace(secret, REDACTED)
        return value

    def raw(self, value: bytes) -> bytes:
        """Declared and known secrets replaced in a body that is not text."""
        declared = known_secrets().values
        for secret in sorted(declared, key=len, reverse=True):
            encoded = secret.encode("utf-8")
            if len(secret) >= self.MIN_EMBEDDED_LENGTH and encoded in value:
                value = value.replace(encoded, self.placeholder(secret).encode("ascii"))
        for secret in sorted(self.secrets, key=len, reverse=True):
            encoded = secret.encode("utf-8")
            if len(secret) >= self.MIN_EMBEDDED_LENGTH and encoded in value:
                value = value.replace(encoded, self.placeholder(secret).encode("ascii"))
        return value

    def _loopback_url(self, found: re.Match[str]) -> str:
        return found.group("scheme") + self.loopback_host(found.group("port") or "")

    # -- HTTP parts ----------------------------------------------------------------------

    def url(self, url: str) -> str:
        """User info and secret query values replaced, a loopback host normalised."""
        try:
            parts = urlsplit(url)
            host, port = parts.hostname, parts.port
        except ValueError:  # unparseable: still hide what is known
            return self.text(url)
        userinfo, at, hostport = parts.netloc.rpartition("@")
        if at:
            userinfo = quote(self.placeholder(unquote(userinfo)), safe="")
        if host is not None and _is_loopback(host):
            hostport = self.loopback_host("" if port is None else str(port))
        netloc = f"{userinfo}@{hostport}" if at else hostport
        path = "/".join(self._segment(segment) for segment in parts.path.split("/"))
        query = parts.query
        if "=" in query:
            pairs = parse_qsl(query, keep_blank_values=True)
            scrubbed = self._pairs(pairs)
            if scrubbed != pairs:
                query = urlencode(scrubbed)
        rebuilt = f"{parts.scheme}://{netloc}{path}" if parts.scheme else f"{netloc}{path}"
        rebuilt += f"?{query}" if query else ""
        return rebuilt + (f"#{self.text(parts.fragment)}" if parts.fragment else "")

    def _segment(self, segment: str) -> str:
        decoded = unquote(segment)
        scrubbed = self.text(decoded)
        return segment if scrubbed == decoded else quote(scrubbed, safe="")

    def header(self, name: str, value: str) -> str:
        """One header value with its secrets replaced; the auth scheme, the Basic user and
        cookie names stay."""
        lowered = name.lower()
        if lowered in _FRAMING_HEADERS:
            return value
        if lowered in _CREDENTIAL_HEADERS:
            return self._credentials(value, whole=lowered in self._extra_headers)
        if lowered == "cookie":
            return "; ".join(self._cookie(part.strip()) for part in value.split(";"))
        if lowered == "set-cookie":
            first, sep, attributes = value.partition(";")
            return self._cookie(first.strip()) + sep + self.text(attributes)
        if lowered in JWT_HEADERS:  # a DPoP proof: secret, and its structure kept
            return self.signed(value)
        secret = lowered in self._extra_headers or is_secret_header(name)
        return self.placeholder(value) if secret else self.text(value)

    def _credentials(self, value: str, *, whole: bool) -> str:
        scheme, sep, credentials = value.strip().partition(" ")
        credentials = credentials.strip()
        if not sep or not credentials:
            return self.placeholder(value)
        pair = basic_credentials(credentials) if scheme.lower() == "basic" else None
        if pair is None:
            return f"{scheme} {self.placeholder(credentials)}"
        user, secret = pair
        user_is_secret = whole or len(secret) < MIN_BASIC_SECRET  # or an API key as the user
        for part in (secret, user) if user_is_secret else (secret,):
            self.learn(part)
            self.learn(unquote_plus(part))  # RFC 6749 section 2.3.1 form-encodes both
        if user_is_secret:
            return f"{scheme} {self.placeholder(credentials)}"
        secret = self.placeholder(secret)  # numbered first: a user equal to it is hidden too
        return f"{scheme} {self.text(user)}:{secret}"

    def _cookie(self, pair: str) -> str:
        name, sep, value = pair.partition("=")
        return f"{name}={self.placeholder(value)}" if sep else self.placeholder(pair)

    def _secret_field(self, name: str) -> bool:
        return is_credential_field(name) or name.lower() in self._extra_fields

    def _named_field(self, name: str) -> bool:
        """A field whose every value is secret, numbers included: named by the test
        (``extra_fields``) or declared by a component."""
        return name.lower() in self._extra_fields or is_declared_field(name)

    def _pairs(
        self, pairs: Iterable[tuple[str, str]], *, jwts: bool = False
    ) -> list[tuple[str, str]]:
        """Scrubbed pairs; with ``jwts`` (a form body), signed JWTs keep their summary."""
        return [
            (
                name,
                value
                if name in _PROTOCOL_FIELDS
                else self.signed(value)
                if jwts and name in JWT_FIELDS
                else self.placeholder(value)
                if self._secret_field(name)
                else self.text(value),
            )
            for name, value in pairs
        ]

    def json(self, value: Any, *, secret: bool = False, named: bool = False) -> Any:
        """A decoded JSON value with every string under a credential name replaced.

        Only strings, by default: credentials are strings in every protocol we know, while
        numbers under such names are codes and counts a test may assert on. Under a name in
        ``extra_fields`` or a declared field name (``named``), numbers are secrets too: the
        test or the component said so.
        """
        if isinstance(value, Mapping):
            return {
                key: item
                if key in _PROTOCOL_FIELDS and isinstance(item, str)
                else self.json(
                    item,
                    secret=secret or is_credential_field(str(key)),
                    named=named or self._named_field(str(key)),
                )
                for key, item in value.items()
            }
        if isinstance(value, list):
            return [self.json(item, secret=secret, named=named) for item in value]
        if isinstance(value, str):
            return self.placeholder(value) if secret or named else self.text(value)
        if named and isinstance(value, int | float) and not isinstance(value, bool):
            return self.placeholder(json.dumps(value))
        return value

    def body(self, body: bytes, content_type: str) -> bytes:
        """A form, JSON or text body with its secrets replaced (unchanged bytes if none)."""
        if not body:
            return body
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return self.raw(body)
        media_type = content_type.partition(";")[0].strip().lower()
        if media_type == _FORM:
            pairs = parse_qsl(text, keep_blank_values=True)
            scrubbed = self._pairs(pairs, jwts=True)
            if pairs:
                return body if scrubbed == pairs else urlencode(scrubbed).encode("utf-8")
        if "json" in media_type or text.lstrip()[:1] in ("{", "["):
            try:
                data = json.loads(text)
            except ValueError:
                pass
            else:
                scrubbed_data = self.json(data)
                return body if scrubbed_data == data else json.dumps(scrubbed_data).encode()
        scrubbed_text = self.text(text)
        return body if scrubbed_text == text else scrubbed_text.encode("utf-8")

    def leaks(self, serialized: str) -> list[str]:
        """Placeholders of known secrets still visible in ``serialized`` (never the secrets).

        Checks the plain, form-encoded and JSON-escaped spellings of every secret long
        enough to be told apart from ordinary text, and every declared value as declared.
        """
        declared = declared_pattern()
        outside = _PLACEHOLDER.sub(" ", serialized)  # a placeholder is not a leak
        found = (
            []
            if declared is None
            else [self.placeholder(m.group(0)) for m in declared.finditer(outside)]
        )
        for secret in self.secrets:
            if len(secret) < self.MIN_EMBEDDED_LENGTH:
                continue
            spellings = {
                secret,
                quote_plus(secret),
                quote(secret, safe=""),
                json.dumps(secret)[1:-1],
            }
            if any(spelling in serialized for spelling in spellings):
                found.append(self.placeholder(secret))
        return sorted(set(found))


def url_values(url: str) -> list[str]:
    """The values in a URL (host, path segments, query values), without parameter names."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return [url]
    values = [parts.netloc, *(unquote(segment) for segment in parts.path.split("/"))]
    return values + [value for _, value in parse_qsl(parts.query, keep_blank_values=True)]


def body_values(body: bytes, content_type: str) -> list[str]:
    """The values in a body: form values, JSON strings, or the whole text; no names, which
    may spell a secret such as ``password`` without revealing anything."""
    text = body.decode("utf-8", "replace")
    media_type = content_type.partition(";")[0].strip().lower()
    if media_type == _FORM:
        return [value for _, value in parse_qsl(text, keep_blank_values=True)]
    try:
        return list(_json_strings(json.loads(text)))
    except ValueError:
        return [text]


def _json_strings(value: Any) -> Iterable[str]:
    if isinstance(value, Mapping):
        for item in value.values():
            yield from _json_strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _json_strings(item)
    elif isinstance(value, str):
        yield value


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
