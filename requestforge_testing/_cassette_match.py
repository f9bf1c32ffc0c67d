"""How a cassette tells whether a live request is a recorded one, and how they differ.

Both sides are scrubbed first (see ``_scrubbing``), so secrets are placeholders on both. A
recorded placeholder matches any value in the same place: the recording only promises that
*a* secret was there, and the live request's real credentials or replayed tokens are
equally secret. Everything else is compared exactly: method, URL (scheme, host, port,
path), query parameters, the OAuth ``grant_type``, the body's parameters (form fields or
JSON) and the ``Authorization`` scheme. Headers such as ``User-Agent`` are not compared:
they change with library versions, not with what the code asks for.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import parse_qsl, urlsplit

from requestforge_testing._scrubbing import PLACEHOLDER_PREFIX

__all__ = ["ASPECTS", "Difference", "RequestView", "compare"]

#: What is compared, in the order differences are reported.
ASPECTS: Final = ("method", "URL", "query", "grant type", "parameters", "authorization")
#: Differences listed per aspect before "... and N more".
MAX_LISTED: Final = 6

_PLACEHOLDER_RUN = re.compile(re.escape(PLACEHOLDER_PREFIX) + r"\d+")
_FORM: Final = "application/x-www-form-urlencoded"
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


@dataclass(frozen=True)
class Difference:
    """One way a live request differs from a recorded one."""

    aspect: str
    detail: str

    def __str__(self) -> str:
        return f"{self.aspect}: {self.detail}"


@dataclass(frozen=True)
class RequestView:
    """The parts of a (scrubbed) request that matching looks at."""

    method: str
    url: str
    query: tuple[tuple[str, str], ...]
    grant_type: str | None
    body_kind: str  # "none", "form", "json", "text" or "bytes"
    body: Any
    auth_scheme: str | None

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
        url = f"{scheme}://{(parts.hostname or '').lower()}{shown_port}{parts.path or '/'}"
        query = tuple(sorted(parse_qsl(parts.query, keep_blank_values=True)))
        content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
        kind, parsed = _parse_body(body or b"", content_type)
        grant = None
        if kind == "form":
            grant = next((v for k, v in parsed if k == "grant_type"), None)
        elif kind == "json" and isinstance(parsed, Mapping):
            value = parsed.get("grant_type")
            grant = value if isinstance(value, str) else None
        auth = next((v for k, v in headers.items() if k.lower() == "authorization"), None)
        auth_scheme = None if auth is None else auth.strip().partition(" ")[0].lower() or None
        return cls(method.upper(), url, query, grant, kind, parsed, auth_scheme)

    def describe(self) -> str:
        """``POST http://loopback-1.invalid/oauth/token (grant_type=password)``."""
        line = f"{self.method} {self.url}"
        if self.query:
            line += "?" + "&".join(f"{k}={v}" for k, v in self.query)
        return line + (f" (grant_type={self.grant_type})" if self.grant_type else "")


def compare(recorded: RequestView, live: RequestView) -> list[Difference]:
    """Every aspect in which ``live`` differs from ``recorded``; empty means a match."""
    found: list[Difference] = []
    if recorded.method != live.method:
        found.append(Difference("method", f"recorded {recorded.method}, sent {live.method}"))
    if not same_text(recorded.url, live.url):
        found.append(Difference("URL", f"recorded {recorded.url}, sent {live.url}"))
    query = _pair_differences(recorded.query, live.query)
    if query:
        found.append(Difference("query", query))
    if recorded.grant_type != live.grant_type:
        found.append(
            Difference("grant type", f"recorded {recorded.grant_type!r}, sent {live.grant_type!r}")
        )
    parameters = _body_differences(recorded, live)
    if parameters:
        found.append(Difference("parameters", parameters))
    if recorded.auth_scheme != live.auth_scheme:
        found.append(
            Difference(
                "authorization",
                f"recorded {recorded.auth_scheme or 'none'}, sent {live.auth_scheme or 'none'}",
            )
        )
    return found


def same_text(recorded: str, live: str) -> bool:
    """Equal, where each placeholder in ``recorded`` stands for any non-empty text."""
    if recorded == live:
        return True
    if PLACEHOLDER_PREFIX not in recorded:
        return False
    pattern = ".+?".join(re.escape(part) for part in _PLACEHOLDER_RUN.split(recorded))
    return re.fullmatch(pattern, live, flags=re.DOTALL) is not None


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
    missing = _without(recorded_names, live_names)
    extra = _without(live_names, recorded_names)
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


def _body_differences(recorded: RequestView, live: RequestView) -> str:
    if recorded.body_kind != live.body_kind:
        return f"recorded a {recorded.body_kind} body, sent a {live.body_kind} body"
    if recorded.body_kind == "form":
        return _pair_differences(_without_grant(recorded.body), _without_grant(live.body))
    if recorded.body_kind == "json":
        old, new = recorded.body, live.body
        if isinstance(old, Mapping) and isinstance(new, Mapping):
            old = {k: v for k, v in old.items() if k != "grant_type"}
            new = {k: v for k, v in new.items() if k != "grant_type"}
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


def _without_grant(pairs: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, v) for k, v in pairs if k != "grant_type"))


def _without(names: list[str], others: list[str]) -> list[str]:
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
