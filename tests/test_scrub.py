"""Scrubbed copies of lower layers' exceptions, and the redacting log filter."""

from __future__ import annotations

import logging
import traceback

import pytest
import requests
from urllib3.exceptions import MaxRetryError, NewConnectionError

from requestforge import RedactedCause, RedactingFilter, RequestForgeError
from requestforge._scrub import URLLIB3_LOGGERS, install_log_redaction, redacted_cause

URL = "/api?access_token=CANARY-AT-5c2e&page=2"


def urllib3_failure() -> requests.ConnectionError:
    """A requests ConnectionError chained as requests and urllib3 chain it."""
    reason = NewConnectionError(None, "Failed to establish a new connection")  # type: ignore[arg-type]
    try:
        try:
            raise reason
        except NewConnectionError as exc:
            raise MaxRetryError(None, URL, exc) from exc  # type: ignore[arg-type]
    except MaxRetryError as exc:
        error = requests.ConnectionError(exc)
        error.__context__ = exc
        return error


def test_the_copy_keeps_the_type_and_loses_the_query_secret() -> None:
    """The chained copy is the same requests type, its text and its chain redacted."""
    original = urllib3_failure()
    assert "CANARY-AT-5c2e" in str(original)
    copy = redacted_cause(original)
    assert type(copy) is requests.ConnectionError
    assert isinstance(copy.args[0], MaxRetryError)
    assert "CANARY-AT-5c2e" not in "".join(traceback.format_exception(copy))
    assert "page=2" in str(copy)


def test_attributes_that_are_objects_are_dropped() -> None:
    """request/response/pool attributes (which hold the URL) are None on the copy."""
    original = urllib3_failure()
    original.request = requests.Request("GET", "http://h" + URL).prepare()
    copy = redacted_cause(original)
    assert isinstance(copy, requests.ConnectionError)
    assert copy.request is None


def test_our_own_errors_are_chained_as_they_are() -> None:
    """A RequestForgeError is already clean: it is returned itself."""
    error = RequestForgeError("fine")
    assert redacted_cause(error) is error


def test_a_type_that_cannot_be_copied_becomes_a_redacted_cause() -> None:
    """An exception whose __str__ needs what the copy lacks is named by a RedactedCause."""

    class Picky(Exception):
        def __init__(self, url: str) -> None:
            super().__init__()
            self.where = {"url": url}

        def __str__(self) -> str:
            return "failed at " + self.where["url"]

    stand_in = redacted_cause(Picky("http://h" + URL))
    assert isinstance(stand_in, RedactedCause)
    assert stand_in.original_type is Picky
    assert "Picky" in str(stand_in)
    assert "CANARY-AT-5c2e" not in str(stand_in)


def test_a_cyclic_chain_is_copied_once() -> None:
    """An exception that is its own context's context does not recurse forever."""
    first, second = ValueError("a " + URL), ValueError("b")
    first.__context__, second.__context__ = second, first
    copy = redacted_cause(first)
    assert copy.__context__ is not None
    assert copy.__context__.__context__ is copy


def record(msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("urllib3.connectionpool", logging.DEBUG, __file__, 1, msg, args, None)


def test_the_filter_redacts_lazily_and_empties_args() -> None:
    """The record's message is redacted when formatted; args no longer hold the secret."""
    entry = record('%s://%s:%s "%s %s %s" %s %s', "http", "h", 80, "GET", URL, "HTTP/1.1", 200, 2)
    assert RedactingFilter().filter(entry)
    assert entry.args is None
    assert (
        entry.getMessage() == 'http://h:80 "GET /api?access_token=[REDACTED]&page=2 HTTP/1.1" 200 2'
    )


def test_a_broken_record_still_formats() -> None:
    """A record whose args do not fit its format is shown (redacted), never raises."""
    entry = record("%d items at %s", "not a number")
    RedactingFilter().filter(entry)
    assert "not a number" in entry.getMessage()


def test_installing_is_idempotent_and_covers_urllib3s_loggers() -> None:
    """Installed twice, each urllib3 logger has the filter exactly once."""
    install_log_redaction()
    install_log_redaction()
    for name in URLLIB3_LOGGERS:
        filters = [f for f in logging.getLogger(name).filters if isinstance(f, RedactingFilter)]
        assert len(filters) == 1, name


@pytest.mark.parametrize("level", [logging.DEBUG, logging.WARNING])
def test_urllib3_records_reach_handlers_redacted(
    caplog: pytest.LogCaptureFixture, level: int
) -> None:
    """A record logged on urllib3's connection pool logger reaches handlers redacted."""
    install_log_redaction()
    with caplog.at_level(logging.DEBUG, logger="urllib3"):
        logging.getLogger("urllib3.connectionpool").log(level, "GET %s", URL)
    assert [r.getMessage() for r in caplog.records] == ["GET /api?access_token=[REDACTED]&page=2"]
