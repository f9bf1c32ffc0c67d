"""How a cassette tells whether a live request is a recorded one, and how they differ.

Both sides are scrubbed first (see ``_scrubbing``), so secrets are placeholders on both. A
recorded placeholder matches any value in the same place: the recording only promises that
*a* secret was there, and the live request's real credentials or replayed tokens are
equally secret. A live placeholder matches any recorded value likewise (a value declared
secret after the recording was made). Everything else is compared exactly, part by part
(:data:`ASPECTS`, the names ``match_on`` takes): the method; the host (scheme, host and
port); the path; the query parameters; the OAuth ``grant_type``; the body's other
parameters (form fields or JSON); the ``Authorization`` scheme; and the user part of HTTP
Basic credentials, which in OAuth is the client id (its secret is a placeholder, never
compared); and the structure of the JWTs the client signed (``jwt``: a DPoP proof header, a
client assertion or JWT bearer assertion field, see ``_cassette_jwt``), which the body then
compares as placeholders only. Headers such as ``User-Agent`` are not compared: they change
with library versions, not with what the code asks for.

A JWT recorded as a bare placeholder (a cassette older than JWT summaries) matches any
value, as before; a recorded summary must meet a JWT whose kept header members, claim names
and kept claim values are the same.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import parse_qsl, unquote_plus, urlsplit

from requestforge_testing._cassette_jwt import (
    JWT_FIELDS,
    JWT_HEADERS,
    JwtSummary,
    split_summary,
)
from requestforge_testing._scrubbing import (
    MIN_BASIC_SECRET,
    PLACEHOLDER_PREFIX,
    basic_credentials,
)

__all__ = ["ASPECTS", "Difference", "RequestView", "compare"]

#: The parts of a request that can be compared (``match_on``), in the order differences
#: are reported; all of them by default.
ASPECTS: Final = (
    "method",
    "host",
    "path",
    "query",
    "grant_type",
    "body",
    "auth_scheme",
    "basic_user",
    "jwt",
)
#: Differences listed per aspect before "... and N more".
MAX_LISTED: Final = 6

_PLACEHOLDER_RUN = re.compile(re.escape(PLACEHOLDER_PREFIX) + r"\d+")
_FORM: Final = "application/x-www-form-urlencoded"
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


@dataclass(frozen=True)
class Difference:
    """One way a live request differs from a recorded one, in one of :data:`ASPECTS`."""

    aspect: str
    detail: str

    def __str__(self) -> str:
        return f"{self.aspect}: {self.detail}"


@dataclass(frozen=True)
class RequestView:
    """The parts of a (scrubbed) request that matching looks at."""

    method: str
    host: str  # scheme://host[:port], the port only if not the scheme's default
    path: str
    query: tuple[tuple[str, str], ...]
    grant_type: str | None
    body_kind: str  # "none", "form", "json", "text" or "bytes"
    body: Any
    auth_scheme: str | None
    basic_user: str | None  # the user part of Basic credentials, if they show one
    #: Each signed JWT's place ("DPoP header", "client_assertion field") and its recorded
    #: summary (None for a bare placeholder, or a value that is not a JWT).
    jwts: tuple[tuple[str, JwtSummary | None], ...] = ()

    @classmethod
    def of(
        cls, method: str, uri: str, headers: Mapping[str, str], body: bytes | None
    ) -> RequestView:
        """Read the parts from a request's method, URI, headers and body."""
        parts = urlsplit(uri)
        scheme = parts.scheme.lower()
        try:
            port = parts.port or _DEFAULT_PORTS.get(scheme)
        except ValueError:
            port = None
        shown_port = "" if port is None or port == _DEFAULT_PORTS.get(scheme) else f":{port}"
        host = f"{scheme}://{(parts.hostname or '').lower()}{shown_port}"
        query = tuple(sorted(parse_qsl(parts.query, keep_blank_values=True)))
        content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
        kind, parsed = _parse_body(body or b"", content_type)
        jwts = [
            (f"{name} header", split_summary(value)[1])
            for name, value in headers.items()
            if name.lower() in JWT_HEADERS
        ]
        if kind == "form":
            parsed, fields = _without_summaries(parsed)
            jwts += fields
        grant = None
        if kind == "form":
            grant = next((v for k, v in parsed if k == "grant_type"), None)
        elif kind == "json" and isinstance(parsed, Mapping):
            value = parsed.get("grant_type")
            grant = value if isinstance(value, str) else None
        auth = next((v for k, v in headers.items() if k.lower() == "authorization"), None)
        scheme_name, _, credentials = (auth or "").strip().partition(" ")
        auth_scheme = scheme_name.lower() or None
        user = None
        if auth_scheme == "basic":
            pair = basic_credentials(credentials.strip())
            user = None if pair is None else pair[0]
        return cls(
            method.upper(),
            host,
            parts.path or "/",
            query,
            grant,
            kind,
            parsed,
            auth_scheme,
            user,
            tuple(jwts),
        )

    @property
    def url(self) -> str:
        """Host and path, without the query."""
        return self.host + self.path

    def describe(self) -> str:
        """``POST http://loopback-1.invalid/oauth/token (grant_type=password)``."""
        line = f"{self.method} {self.url}"
        if self.query:
            line += "?" + "&".join(f"{k}={v}" for k, v in self.query)
        return line + (f" (grant_type={self.grant_type})" if self.grant_type else "")


def compare(
    recorded: RequestView, live: RequestView, aspects: Collection[str] = ASPECTS
) -> list[Difference]:
    """Every aspect (of ``aspects``) in which ``live`` differs from ``recorded``; empty
    means a match."""
    found: list[Difference] = []
    if "method" in aspects and recorded.method != live.method:
        found.append(Difference("method", f"recorded {recorded.method}, sent {live.method}"))
    if "host" in aspects and not same_text(recorded.host, live.host):
        found.append(Difference("host", f"recorded {recorded.host}, sent {live.host}"))
    if "path" in aspects and not same_text(recorded.path, live.path):
        found.append(Difference("path", f"recorded {recorded.path}, sent {live.path}"))
    query = _pair_differences(recorded.query, live.query) if "query" in aspects else ""
    if query:
        found.append(Difference("query", query))
    if "grant_type" in aspects and recorded.grant_type != live.grant_type:
        found.append(
            Difference("grant_type", f"recorded {recorded.grant_type!r}, sent {live.grant_type!r}")
        )
    grant = "grant_type" in aspects
    body = _body_differences(recorded, live, grant=grant) if "body" in aspects else ""
    if body:
        found.append(Difference("body", body))
    if "auth_scheme" in aspects and recorded.auth_scheme != live.auth_scheme:
        found.append(
            Difference(
                "auth_scheme",
                f"recorded {recorded.auth_scheme or 'none'}, sent {live.auth_scheme or 'none'}",
            )
        )
    user = _user_difference(recorded, live) if "basic_user" in aspects else ""
    if user:
        found.append(Difference("basic_user", user))
    jwt = _jwt_differences(recorded, live) if "jwt" in aspects else ""
    if jwt:
        found.append(Difference("jwt", jwt))
    return found


def _without_summaries(
    pairs: tuple[tuple[str, str], ...],
) -> tuple[tuple[tuple[str, str], ...], list[tuple[str, JwtSummary | None]]]:
    """Form pairs with each signed JWT's summary taken off (the body compares its
    placeholder), and the summaries by place."""
    kept, jwts = [], []
    for name, value in pairs:
        if name not in JWT_FIELDS:
            kept.append((name, value))
            continue
        head, summary = split_summary(value)
        kept.append((name, head))
        jwts.append((f"{name} field", summary))
    return tuple(kept), jwts


def _jwt_differences(recorded: RequestView, live: RequestView) -> str:
    """How the signed JWTs differ, place by place. A header's JWT must be sent where one
    was recorded (and not where none was); a field's presence is the body's to report."""
    found = []
    places = dict.fromkeys(where.lower() for where, _ in recorded.jwts + live.jwts)
    for place in places:
        old = [summary for where, summary in recorded.jwts if where.lower() == place]
        new = [summary for where, summary in live.jwts if where.lower() == place]
        shown = next(where for where, _ in recorded.jwts + live.jwts if where.lower() == place)
        if not (old and new):
            if place.endswith(" header"):
                found.append(f"{shown}: {'not sent' if old else 'not recorded'}")
            continue
        for before, after in zip(old, new, strict=False):
            detail = _summary_differences(before, after)
            if detail:
                found.append(f"{shown}: {detail}")
    return "; ".join(found)


def _summary_differences(recorded: JwtSummary | None, live: JwtSummary | None) -> str:
    if recorded is None:  # a bare placeholder only promised that a secret was there
        return ""
    if live is None:
        return "recorded a JWT, sent a value that is not one"
    items = _member_differences("header", recorded.header, live.header)
    items += _member_differences("claim", recorded.claims, live.claims)
    return _listed(items)


def _member_differences(
    kind: str, recorded: Mapping[str, Any], live: Mapping[str, Any]
) -> list[str]:
    found = [f"{kind} {name} not sent" for name in sorted(recorded) if name not in live]
    found += [f"{kind} {name} not recorded" for name in sorted(live) if name not in recorded]
    for name in sorted(set(recorded) & set(live)):
        if not same_json(recorded[name], live[name]):
            found.append(f"{kind} {name} {_shown(recorded[name])} -> {_shown(live[name])}")
    return found


def _shown(value: Any) -> str:
    return repr(value) if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _user_difference(recorded: RequestView, live: RequestView) -> str:
    """How the Basic user (the client id) differs; never the secret, which is a placeholder
    on both sides. Credentials recorded without a readable user match any."""
    old, new = recorded.basic_user, live.basic_user
    if old is None or (new is not None and same_text(old, new)):
        return ""
    if new is None:
        if live.auth_scheme != "basic":
            return f"recorded {old!r}, sent no Basic credentials"
        return (
            f"recorded {old!r}, sent Basic credentials scrubbed whole (not user:secret, or "
            f"a secret shorter than {MIN_BASIC_SECRET} characters: an API key as the user)"
        )
    detail = f"recorded {old!r}, sent {new!r}"
    plain = unquote_plus(old)
    if plain == unquote_plus(new):
        encoded = (plain != old, plain != new)
        where = {(True, False): "in the recording only", (False, True): "in the request only"}
        detail += (
            f" (the same id {plain!r}, form-encoded {where.get(encoded, 'differently')}: "
            "RFC 6749 section 2.3.1 form-encodes an OAuth client id before Basic)"
        )
    return detail


def same_text(recorded: str, live: str) -> bool:
    """Equal, where each placeholder in ``recorded`` stands for any non-empty text, and so
    does one in ``live``: a value declared secret only since the recording (the knowledge
    is process-wide and only grows) is a placeholder in the live request alone."""
    if recorded == live:
        return True
    return _fits(recorded, live) or _fits(live, recorded)


def _fits(pattern_side: str, text: str) -> bool:
    if PLACEHOLDER_PREFIX not in pattern_side:
        return False
    pattern = ".+?".join(re.escape(part) for part in _PLACEHOLDER_RUN.split(pattern_side))
    return re.fullmatch(pattern, text, flags=re.DOTALL) is not None


def same_json(recorded: Any, live: Any) -> bool:
    """Structural JSON equality with :func:`same_text` for strings."""
    if isinstance(recorded, Mapping) and isinstance(live, Mapping):
        return recorded.keys() == live.keys() and all(
            same_json(value, live[key]) for key, value in recorded.items()
        )
    if isinstance(recorded, list) and isinstance(live, list):
        return len(recorded) == len(live) and all(map(same_json, recorded, live))
    if isinstance(recorded, str) and isinstance(live, str):
        return same_text(recorded, live)
    return type(recorded) is type(live) and bool(recorded == live)


def _parse_body(body: bytes, content_type: str) -> tuple[str, Any]:
    if not body:
        return "none", None
    media_type = content_type.partition(";")[0].strip().lower()
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return "bytes", body
    if media_type == _FORM:
        return "form", tuple(parse_qsl(text, keep_blank_values=True))
    if "json" in media_type or text.lstrip()[:1] in ("{", "["):
        try:
            return "json", json.loads(text)
        except ValueError:
            pass
    return "text", text


def _pair_differences(
    recorded: tuple[tuple[str, str], ...], live: tuple[tuple[str, str], ...]
) -> str:
    """ "not sent: a; not recorded: b; changed: c 'x' -> 'y'" for two parameter lists."""
    recorded_names = sorted(k for k, _ in recorded)
    live_names = sorted(k for k, _ in live)
    missing = _unmatched(recorded_names, live_names)
    extra = _unmatched(live_names, recorded_names)
    changed = []
    for name in sorted(set(recorded_names) & set(live_names)):
        old = [v for k, v in recorded if k == name]
        new = [v for k, v in live if k == name]
        if len(old) == len(new) and all(map(same_text, old, new)):
            continue
        shown_old = old[0] if len(old) == 1 else old
        shown_new = new[0] if len(new) == 1 else new
        changed.append(f"{name} {shown_old!r} -> {shown_new!r}")
    parts = []
    if missing:
        parts.append("not sent: " + _listed(missing))
    if extra:
        parts.append("not recorded: " + _listed(extra))
    if changed:
        parts.append("changed: " + _listed(changed))
    return "; ".join(parts)


def _body_differences(recorded: RequestView, live: RequestView, *, grant: bool) -> str:
    """The body's differences; without ``grant_type`` if ``grant`` (reported on its own)."""
    if recorded.body_kind != live.body_kind:
        return f"recorded a {recorded.body_kind} body, sent a {live.body_kind} body"
    skip = "grant_type" if grant else None
    if recorded.body_kind == "form":
        return _pair_differences(_without(recorded.body, skip), _without(live.body, skip))
    if recorded.body_kind == "json":
        old, new = recorded.body, live.body
        if isinstance(old, Mapping) and isinstance(new, Mapping):
            old = {k: v for k, v in old.items() if k != skip}
            new = {k: v for k, v in new.items() if k != skip}
        return _listed(_json_differences(old, new, "$"))
    if recorded.body_kind == "text" and not same_text(recorded.body, live.body):
        return f"recorded {recorded.body!r:.120}, sent {live.body!r:.120}"
    if recorded.body_kind == "bytes" and recorded.body != live.body:
        return f"recorded {len(recorded.body)} bytes, sent {len(live.body)} bytes that differ"
    return ""


def _json_differences(recorded: Any, live: Any, path: str) -> list[str]:
    if same_json(recorded, live):
        return []
    if isinstance(recorded, Mapping) and isinstance(live, Mapping):
        found = [f"{path}.{k} not sent" for k in recorded if k not in live]
        found += [f"{path}.{k} not recorded" for k in live if k not in recorded]
        for key in [k for k in recorded if k in live]:
            found += _json_differences(recorded[key], live[key], f"{path}.{key}")
        return found
    if isinstance(recorded, list) and isinstance(live, list) and len(recorded) == len(live):
        found = []
        for index, (old, new) in enumerate(zip(recorded, live, strict=True)):
            found += _json_differences(old, new, f"{path}[{index}]")
        return found
    return [f"{path} {json.dumps(recorded):.60} -> {json.dumps(live):.60}"]


def _without(pairs: tuple[tuple[str, str], ...], name: str | None) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, v) for k, v in pairs if k != name))


def _unmatched(names: list[str], others: list[str]) -> list[str]:
    rest = list(others)
    out = []
    for name in names:
        if name in rest:
            rest.remove(name)
        else:
            out.append(name)
    return out


def _listed(items: list[str]) -> str:
    shown = ", ".join(items[:MAX_LISTED])
    return shown + (f" and {len(items) - MAX_LISTED} more" if len(items) > MAX_LISTED else "")
