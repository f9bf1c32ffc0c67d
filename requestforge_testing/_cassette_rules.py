"""What a test can change about its cassette: more secrets to scrub, fewer parts to match.

``scrub_headers`` and ``scrub_fields`` add to what :mod:`requestforge._redact` already
treats as secret (they never remove a default); ``match_on`` picks which parts of a request
(:data:`~requestforge_testing._cassette_match.ASPECTS`) a replay compares. ``ForgeCassette``
and the pytest side (marker, ``forge_cassette_config`` fixture) check them here, once, and
fail before any request is made with a :class:`~requestforge.ConfigurationError` that
names the option and what it accepts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from requestforge._exceptions import ConfigurationError
from requestforge_testing._cassette_match import ASPECTS

__all__ = ["MATCH_ON", "RULE_OPTIONS", "CassetteRules"]

#: What a replay compares unless told otherwise: every part.
MATCH_ON: Final = ASPECTS
#: The keywords these rules take (in ``ForgeCassette``, the marker and the config fixture).
RULE_OPTIONS: Final = ("scrub_headers", "scrub_fields", "match_on")
#: RFC 9110 section 5.6.2: the characters of a header name.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
#: vcrpy's matcher names, and the parts that stand for them here.
_VCRPY_NAMES: Final = {
    "uri": "host, path and query",
    "url": "host, path and query",
    "scheme": "host",
    "port": "host",
    "raw_body": "body",
    "headers": "auth_scheme, basic_user and jwt",
}


@dataclass(frozen=True)
class CassetteRules:
    """Checked options: names are lower case, ``match_on`` follows the order of
    :data:`MATCH_ON`."""

    scrub_headers: frozenset[str] = frozenset()
    scrub_fields: frozenset[str] = frozenset()
    match_on: tuple[str, ...] = MATCH_ON

    @classmethod
    def of(
        cls,
        *,
        scrub_headers: Iterable[str] = (),
        scrub_fields: Iterable[str] = (),
        match_on: Iterable[str] = MATCH_ON,
    ) -> CassetteRules:
        """Check the options; :class:`ConfigurationError` says which is wrong and why."""
        return cls(
            _names("scrub_headers", scrub_headers, "header"),
            _names("scrub_fields", scrub_fields, "field"),
            _match_on(match_on),
        )

    def extended(self, options: Mapping[str, object]) -> CassetteRules:
        """These rules, then ``options`` on top: more names to scrub, and ``match_on``
        replaced if given."""
        unknown = sorted(set(options) - set(RULE_OPTIONS))
        if unknown:
            raise ConfigurationError(
                f"unknown option(s) {', '.join(unknown)}: the rules are {', '.join(RULE_OPTIONS)}"
            )
        later = CassetteRules.of(**options)  # type: ignore[arg-type] # checked in there
        return CassetteRules(
            self.scrub_headers | later.scrub_headers,
            self.scrub_fields | later.scrub_fields,
            later.match_on if "match_on" in options else self.match_on,
        )


def _listed(option: str, value: object, what: str) -> list[object]:
    if isinstance(value, str | bytes):
        raise ConfigurationError(
            f"{option} must be a list of {what}s, not the single string {value!r}: "
            f"write [{value!r}]"
        )
    if not isinstance(value, Iterable):
        raise ConfigurationError(f"{option} must be a list of {what}s, got {value!r}")
    return list(value)


def _names(option: str, value: object, kind: str) -> frozenset[str]:
    names = _listed(option, value, f"{kind} name")
    for name in names:
        if not isinstance(name, str) or not name.strip():
            raise ConfigurationError(
                f"{option}: each {kind} name is a non-empty string, not {name!r}"
            )
        if kind == "header" and _TOKEN.fullmatch(name) is None:
            raise ConfigurationError(f"{option}: {name!r} is not a header name")
    return frozenset(str(name).lower() for name in names)


def _match_on(value: object) -> tuple[str, ...]:
    parts = _listed("match_on", value, "part")
    for part in parts:
        if part not in ASPECTS:
            hint = _VCRPY_NAMES.get(part) if isinstance(part, str) else None
            raise ConfigurationError(
                f"match_on: unknown part {part!r}"
                + (f" (vcrpy's {part!r} is {hint} here)" if hint else "")
                + f"; the parts are {', '.join(ASPECTS)}"
            )
    if not parts:
        raise ConfigurationError(
            f"match_on must name at least one part of {', '.join(ASPECTS)}: an empty list "
            "would replay any recording for any request"
        )
    return tuple(aspect for aspect in ASPECTS if aspect in parts)
