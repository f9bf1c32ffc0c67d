"""``ForgeCassette``: record an HTTP exchange once, with secrets scrubbed, and replay it.

vcrpy does the recording and replaying; this module adds what auth flows need on top:

- **Scrubbing at record time** (``_scrubbing``): what components declared secret (header
  and field names, values anywhere) first, then credential headers, cookies, secret form,
  query and JSON fields by name, become ``forge-scrubbed-<n>`` placeholders, the same one
  for the same secret everywhere, and loopback hosts become ``loopback-<n>.invalid``. A last pass
  runs over the whole cassette when it is saved, and a cassette in which a known secret
  would still be visible is not written at all.
- **Basic credentials keep the client id**: ``Basic <id>:forge-scrubbed-<n>``, so a replay
  with another client id fails, naming both ids and never the secret.
- **Matching that survives scrubbing** (``_cassette_match``): method, host, path, query,
  grant type, body, ``Authorization`` scheme and Basic user, or the parts ``match_on``
  names; a refused request raises :class:`CassetteMismatchError` saying which of those
  differ from the closest recording. ``scrub_headers`` and ``scrub_fields`` add secrets
  (``_cassette_rules``).
- **No connection under record mode none**: vcrpy answers or refuses every request before
  a socket is opened (its stubs defer ``connect()`` until a request is really sent), and
  drops pooled connections opened before the cassette; the tests hold it to that.
- **vcrpy's own logs** (``_cassette_logs``): while the cassette is open, a filter on
  vcrpy's loggers redacts the requests and responses they write at DEBUG and INFO.
- **Recorded time**: the cassette keeps when it was recorded (under a top-level
  ``requestforge`` key, which stock vcrpy ignores) and puts a ``FakeClock`` there on replay.
- **One thread only**: vcrpy patches connection classes process-wide and is not thread-safe
  (kevin1024/vcrpy#849: requests from other threads go to the real server or are dropped
  from the recording), so a request from any thread but the one that opened the cassette
  is refused with :class:`CassetteThreadError`, and raised again when the cassette closes.

vcrpy is imported only when a cassette is opened, so loading the plugin costs nothing.
"""

from __future__ import annotations

import copy
import os
import threading
from collections.abc import Iterable, Mapping
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from requestforge._clock import get_default_clock
from requestforge._exceptions import ConfigurationError
from requestforge_testing._cassette_errors import (
    Candidate,
    CassetteError,
    CassetteMismatchError,
    CassetteThreadError,
    MissingCassetteError,
    mismatch_message,
    shown,
    summary,
)
from requestforge_testing._cassette_logs import redacting_vcr_logs
from requestforge_testing._cassette_match import RequestView, compare
from requestforge_testing._cassette_rules import MATCH_ON, CassetteRules
from requestforge_testing._clock import FakeClock
from requestforge_testing._env import testing_extra_hint
from requestforge_testing._scrubbing import SecretScrubber, body_values, url_values

__all__ = ["MATCH_ON", "METADATA_KEY", "RECORD_MODES", "ForgeCassette"]

#: vcrpy's record modes: ``none`` only replays, ``once`` records a cassette that does not
#: exist yet, ``new_episodes`` also records requests it has no match for, ``all`` records
#: everything again from scratch.
RECORD_MODES: Final = ("none", "once", "new_episodes", "all")
#: The top-level YAML key for requestforge's own data; vcrpy reads only ``interactions``
#: (and ``version``, and in 9.x ``metadata``), so stock vcrpy still loads the file.
METADATA_KEY: Final = "requestforge"
#: Version of what is stored under :data:`METADATA_KEY`.
METADATA_FORMAT: Final = 1
_CONTENT_LENGTH: Final = "content-length"


class ForgeCassette:
    """A vcrpy cassette for one test: records once with secrets scrubbed, then replays.

    Use it as a context manager around the code under test (or through the
    ``forge_cassette`` fixture). ``record_mode`` is one of :data:`RECORD_MODES`; under
    ``none`` a missing file raises :class:`MissingCassetteError` on entry. Give ``clock``
    (a :class:`FakeClock`) to have it set to the recording's time on replay, so token
    expiry replays exactly. Opened once, and usable from the opening thread only.

    ``scrub_headers`` and ``scrub_fields`` name more secrets, on top of the defaults: headers
    whose whole value is replaced (``Authorization`` there hides Basic credentials whole),
    and query, form or JSON fields (any depth) whose values are; case-insensitive.
    ``match_on`` names the parts a replay compares, of :data:`MATCH_ON` (all by default):
    ``method``, ``host`` (scheme, host, port), ``path``, ``query``, ``grant_type``, ``body``,
    ``auth_scheme``, ``basic_user`` (the client id of HTTP Basic) and ``jwt`` (the structure
    of a DPoP proof or client assertion the client signed).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        record_mode: str = "once",
        clock: FakeClock | None = None,
        scrub_headers: Iterable[str] = (),
        scrub_fields: Iterable[str] = (),
        match_on: Iterable[str] = MATCH_ON,
    ) -> None:
        if not isinstance(path, str | os.PathLike) or not os.fspath(path):
            raise ConfigurationError(f"path must be a non-empty path, got {path!r}")
        if record_mode not in RECORD_MODES:
            raise ConfigurationError(
                f"record_mode must be one of {', '.join(RECORD_MODES)}, got {record_mode!r}"
            )
        if clock is not None and not isinstance(clock, FakeClock):
            raise ConfigurationError(f"clock must be a FakeClock, got {type(clock).__name__}")
        self._rules = CassetteRules.of(
            scrub_headers=scrub_headers, scrub_fields=scrub_fields, match_on=match_on
        )
        self._path = Path(path)
        self._record_mode = record_mode
        self._clock = clock
        self._scrubber = SecretScrubber(
            extra_headers=self._rules.scrub_headers, extra_fields=self._rules.scrub_fields
        )
        self._lock = threading.Lock()
        self._violations: list[CassetteError] = []
        self._recorded_at: datetime | None = None
        self._context: Any = None
        self._logs = ExitStack()
        self._vcr: Any = None
        self._owner: threading.Thread | None = None
        self._replaying = False
        self._loaded = 0
        self._discard = False

    # -- public state --------------------------------------------------------------------

    @property
    def path(self) -> Path:
        """Where the cassette is read from and written to."""
        return self._path

    @property
    def record_mode(self) -> str:
        """The vcrpy record mode in force."""
        return self._record_mode

    @property
    def match_on(self) -> tuple[str, ...]:
        """The parts of a request a replay compares, in :data:`MATCH_ON` order."""
        return self._rules.match_on

    @property
    def scrub_headers(self) -> frozenset[str]:
        """Header names scrubbed whole on top of the defaults (lower case)."""
        return self._rules.scrub_headers

    @property
    def scrub_fields(self) -> frozenset[str]:
        """Query, form and JSON field names scrubbed on top of the defaults (lower case)."""
        return self._rules.scrub_fields

    @property
    def recorded_at(self) -> datetime | None:
        """When the interactions were recorded (None for a file stock vcrpy wrote)."""
        return self._recorded_at

    @property
    def replaying(self) -> bool:
        """Whether recorded interactions were loaded to be played back."""
        return self._replaying

    @property
    def play_count(self) -> int:
        """Recorded interactions played back so far."""
        return 0 if self._vcr is None else int(self._vcr.play_count)

    @property
    def recorded_count(self) -> int:
        """Interactions recorded by this run (not loaded from the file)."""
        return 0 if self._vcr is None else len(self._vcr.data) - self._loaded

    @property
    def all_played(self) -> bool:
        """Whether every loaded interaction was played back at least once: a contract test
        asserts it to catch code that stopped sending a request it used to send."""
        if self._vcr is None:
            return False
        return sum(1 for i in range(self._loaded) if self._vcr.play_counts[i]) == self._loaded

    @property
    def violations(self) -> list[CassetteError]:
        """Every request refused so far (a copy)."""
        with self._lock:
            return list(self._violations)

    def __repr__(self) -> str:
        return f"ForgeCassette({str(self._path)!r}, record_mode={self._record_mode!r})"

    # -- lifecycle -----------------------------------------------------------------------

    def __enter__(self) -> ForgeCassette:
        return self.open()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close(failed=exc_type is not None)

    def open(self) -> ForgeCassette:
        """Load the cassette and start intercepting HTTP; see the class docstring."""
        if self._owner is not None:
            raise RuntimeError(f"{self!r} was opened before: a ForgeCassette is used once")
        exists = self._path.is_file() and self._path.stat().st_size > 0
        if self._record_mode == "none" and not exists:
            raise MissingCassetteError(
                f"no cassette at {shown(self._path)}, and record mode 'none' only replays. "
                "Record it once by running the test with --forge-record-mode=once (pytest) or "
                "ForgeCassette(..., record_mode='once'), against the real or local server, "
                "and commit the file."
            )
        try:
            import vcr.cassette  # noqa: PLC0415 - vcrpy patches HTTP libraries: only when used
            from vcr.serializers import yamlserializer  # noqa: PLC0415
        except ImportError as exc:
            raise ModuleNotFoundError(testing_extra_hint(("vcrpy",))) from exc

        self._owner = threading.current_thread()
        self._persister = _Persister(self)
        self._replaying = exists and self._record_mode != "all"
        context = _bound_class(vcr.cassette.Cassette, self).use(
            path=str(self._path),
            serializer=yamlserializer,
            persister=self._persister,
            record_mode=self._record_mode,
            match_on=tuple(_matcher(aspect) for aspect in self._rules.match_on),
            before_record_request=self._scrub_request,
            before_record_response=self._scrub_response,
        )
        self._logs.enter_context(redacting_vcr_logs(self._scrubber.hide))
        try:
            self._vcr = context.__enter__()
        except BaseException:
            self._logs.close()
            raise
        self._context = context
        self._loaded = len(self._vcr.data)
        if not self._replaying or self._recorded_at is None:
            self._recorded_at = (self._clock or get_default_clock()).now()
        elif self._clock is not None:
            self._clock.set(self._recorded_at)
        return self

    def close(self, *, failed: bool = False) -> None:
        """Stop intercepting and save what was recorded, unless ``failed`` or a request was
        refused (half a recording would only replay as a mismatch); then, unless ``failed``,
        raise the refusals the code under test caught and went on from."""
        if self._context is None:
            raise RuntimeError(f"{self!r} is not open")
        violations = self.violations
        self._discard = failed or bool(violations)
        context, self._context = self._context, None
        with self._logs:  # vcrpy logs while it saves and unpatches: filtered until done
            context.__exit__(None, None, None)
        if self._persister.error is not None:
            raise self._persister.error
        if violations and not failed:
            raise summary(self._path, violations)

    # -- hooks vcrpy calls (on the opening thread, or refused) ---------------------------

    def _check_thread(self, request: Any) -> None:
        current = threading.current_thread()
        if self._owner is None or current is self._owner:
            return
        error = CassetteThreadError(
            f"the cassette {shown(self._path)} was opened in thread {self._owner.name!r}, "
            f"but thread {current.name!r} sent {request.method} "
            f"{self._scrubber.url(request.uri)} through it. vcrpy is not thread-safe "
            "(kevin1024/vcrpy#849: requests from other threads reach the real server or go "
            "missing from the recording), so the request was refused, not sent. Use a "
            "cassette from one thread; test concurrency against forge_api_server or "
            "forge_oauth_server directly.",
            owner=self._owner.name,
            offender=current.name,
        )
        with self._lock:
            self._violations.append(error)
        raise error

    def _refuse(self, cassette: Any, request: Any) -> CassetteMismatchError:
        live = _view(self._scrub_request(request))
        aspects = self._rules.match_on
        candidates = [
            Candidate(
                index,
                cassette.play_counts[index] > 0,
                _view(stored),
                compare(_view(stored), live, aspects),
            )
            for index, (stored, _) in enumerate(cassette.data)
        ]
        closest = min(candidates, key=Candidate.rank, default=None)
        error = CassetteMismatchError(
            mismatch_message(
                self._path, self._record_mode, live, candidates, closest, aspects=aspects
            ),
            request=live.describe(),
            differences=() if closest is None else tuple(closest.differences),
        )
        with self._lock:
            self._violations.append(error)
        return error

    def _scrub_request(self, request: Any) -> Any:
        from vcr.request import Request  # noqa: PLC0415
        from vcr.util import read_body  # noqa: PLC0415

        headers = {name: _text(value) for name, value in request.headers.items()}
        body = read_body(request)
        if isinstance(body, str):
            body = body.encode("utf-8")
        content_type = _get(headers, "content-type") or ""
        scrubbed_body = body if body is None else self._scrubber.body(body, content_type)
        scrubbed = {name: self._scrubber.header(name, value) for name, value in headers.items()}
        if scrubbed_body != body and _get(scrubbed, _CONTENT_LENGTH) is not None:
            _set(scrubbed, _CONTENT_LENGTH, str(len(scrubbed_body or b"")))
        return Request(request.method, self._scrubber.url(request.uri), scrubbed_body, scrubbed)

    def _scrub_response(self, response: dict[str, Any]) -> dict[str, Any]:
        from vcr.filters import decode_response  # noqa: PLC0415

        response = decode_response(copy.deepcopy(response))  # a gzipped token is still a token
        headers = {
            name: [self._scrubber.header(name, _text(v)) for v in values]
            for name, values in response.get("headers", {}).items()
        }
        body = response.get("body", {}).get("string", b"")
        if isinstance(body, str):
            body = body.encode("utf-8")
        content_type = (_get(headers, "content-type") or [""])[0]
        scrubbed_body = self._scrubber.body(body, content_type)
        if scrubbed_body != body and _get(headers, _CONTENT_LENGTH) is not None:
            _set(headers, _CONTENT_LENGTH, [str(len(scrubbed_body))])
        status = dict(response.get("status", {}))
        if isinstance(status.get("message"), str):
            status["message"] = self._scrubber.text(status["message"])
        return {**response, "headers": headers, "body": {"string": scrubbed_body}, "status": status}

    # -- the file (called by _Persister) -------------------------------------------------

    def _load(self, path: str, serializer: Any) -> tuple[list[Any], list[Any]]:
        from vcr.persisters.filesystem import CassetteNotFoundError  # noqa: PLC0415
        from vcr.serialize import deserialize  # noqa: PLC0415

        file = Path(path)
        if self._record_mode == "all" or not file.is_file():
            raise CassetteNotFoundError()  # "all" records from scratch: never load, never merge
        text = file.read_text(encoding="utf-8")
        if not text.strip():
            raise CassetteNotFoundError()
        ours = serializer.deserialize(text).get(METADATA_KEY)
        if isinstance(ours, Mapping) and isinstance(ours.get("recorded_at"), str):
            self._recorded_at = datetime.fromisoformat(ours["recorded_at"])
        requests, responses = deserialize(text, serializer)[:2]
        return requests, responses

    def _save(self, path: str, cassette: Mapping[str, Any], serializer: Any) -> None:
        from vcr.serialize import serialize  # noqa: PLC0415

        if self._discard:
            return
        # The last pass: a secret learned from a later interaction is replaced in earlier ones.
        requests = [self._scrub_request(r) for r in cassette["requests"]]
        responses = [self._scrub_response(r) for r in cassette["responses"]]
        leaks = self._scrubber.leaks(_values(requests, responses))
        text = serialize({"requests": requests, "responses": responses}, serializer)
        recorded_at = (self._recorded_at or get_default_clock().now()).isoformat()
        text += serializer.serialize(
            {METADATA_KEY: {"format": METADATA_FORMAT, "recorded_at": recorded_at}}
        )
        if leaks:
            raise CassetteError(
                f"not saving {shown(self._path)}: the secrets standing for "
                f"{', '.join(leaks)} would still be visible in it in a form the scrubber "
                "does not rewrite. Please report this, with the kind of request."
            )
        file = Path(path)
        file.parent.mkdir(parents=True, exist_ok=True)
        partial = file.with_name(file.name + ".partial")
        partial.write_text(text, encoding="utf-8")
        partial.replace(file)  # a crash never leaves half a cassette behind


class _Persister:
    """vcrpy's persister interface, delegating to the cassette that owns the file."""

    def __init__(self, owner: ForgeCassette) -> None:
        self._owner = owner

    def load_cassette(self, cassette_path: str, serializer: Any) -> tuple[list[Any], list[Any]]:
        return self._owner._load(cassette_path, serializer)

    def save_cassette(
        self, cassette_path: str, cassette_dict: Mapping[str, Any], serializer: Any
    ) -> None:
        # vcrpy saves *before* it removes its patches, and an exception here would leave
        # HTTP patched (through this cassette) until the garbage collector finds it: hold
        # the error until close() has left vcrpy's context.
        try:
            self._owner._save(cassette_path, cassette_dict, serializer)
        except Exception as exc:  # noqa: BLE001 - re-raised by ForgeCassette.close()
            self.error = exc

    error: Exception | None = None


def _bound_class(base: Any, owner: ForgeCassette) -> Any:
    """A vcrpy Cassette subclass that checks the thread and explains refusals for ``owner``."""

    class _Cassette(base):  # type: ignore[misc]
        def can_play_response_for(self, request: Any) -> Any:
            owner._check_thread(request)
            playable = super().can_play_response_for(request)
            if not playable and self.write_protected:
                raise owner._refuse(self, request)
            return playable

        def append(self, request: Any, response: Any) -> None:
            owner._check_thread(request)
            super().append(request, response)

    return _Cassette


def _matcher(aspect: str) -> Any:
    """A vcrpy matcher (live request first, recorded second) for one aspect of ``compare``."""

    def match(live: Any, recorded: Any) -> None:
        for difference in compare(_view(recorded), _view(live), (aspect,)):
            raise AssertionError(difference.detail)

    match.__name__ = aspect
    return match


def _view(request: Any) -> RequestView:
    from vcr.util import read_body  # noqa: PLC0415

    body = read_body(request)
    headers = {name: _text(value) for name, value in request.headers.items()}
    return RequestView.of(request.method, request.uri, headers, body)


def _values(requests: list[Any], responses: list[Any]) -> str:
    """Every value a cassette will hold, one per line; not the header, field or key names,
    which may spell a secret such as ``password`` without revealing anything."""
    from vcr.util import read_body  # noqa: PLC0415

    values: list[str] = []
    for request in requests:
        headers = {name: _text(value) for name, value in request.headers.items()}
        values += url_values(request.uri) + list(headers.values())
        body = _encoded(read_body(request))
        values += body_values(body, _get(headers, "content-type") or "")
    for response in responses:
        headers = {name: _text(value) for name, value in response["headers"].items()}
        values += [*headers.values(), str(response["status"].get("message", ""))]
        body = _encoded(response["body"]["string"])
        values += body_values(body, _get(headers, "content-type") or "")
    return "\n".join(values)


def _encoded(body: object) -> bytes:
    if isinstance(body, bytes):
        return body
    return b"" if body is None else str(body).encode("utf-8")


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, list | tuple):
        return ", ".join(_text(v) for v in value)
    return str(value)


def _get(headers: Mapping[str, Any], name: str) -> Any:
    return next((v for k, v in headers.items() if k.lower() == name), None)


def _set(headers: dict[str, Any], name: str, value: Any) -> None:
    key = next((k for k in headers if k.lower() == name), name)
    headers[key] = value
