"""Unit tests for the requests keyword set on ``HttpClient.request`` and ``HttpRequest``:
typing, early validation, redaction and the replay rules."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
import requests.auth
from mypy import api as mypy_api

from requestforge import HttpClient, HttpMethod, HttpRequest, InvalidRequestError

URL = "https://api.example.test/x"


def test_mypy_rejects_a_misspelt_keyword(tmp_path: Path) -> None:
    """mypy --strict flags client.get("/x", parmas={}) and accepts the real keywords."""
    snippet = tmp_path / "snippet.py"
    snippet.write_text(
        "from requestforge import HttpClient\n"
        "client = HttpClient()\n"
        'client.get("/x", params={}, cookies={"a": "b"}, auth=("u", "p"), verify=False)\n'
        'client.get("/x", parmas={})\n'
    )
    out, _, status = mypy_api.run(["--strict", "--no-incremental", str(snippet)])
    assert status == 1
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert len(errors) == 1
    assert 'snippet.py:4: error: Unexpected keyword argument "parmas"' in errors[0]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"cookies": ["a"]},
        {"files": "not files"},
        {"files": [("f",)]},
        {"auth": ("only-user",)},
        {"auth": ("u", 1)},
        {"auth": "user:pass"},
        {"allow_redirects": 0},
        {"proxies": {"https": 8080}},
        {"verify": 1},
        {"cert": ("a", "b", "c")},
    ],
    ids=repr,
)
def test_a_wrong_type_is_an_invalid_request_error(kwargs: dict[str, Any]) -> None:
    """A keyword of the wrong type is refused before anything is sent."""
    with HttpClient() as client, pytest.raises(InvalidRequestError):
        client.request("GET", URL, **kwargs)


def test_secrets_never_reach_repr_dict_or_curl() -> None:
    """auth and cookie values appear in no repr, to_dict() or to_curl()."""
    request = HttpRequest(
        HttpMethod.POST,
        URL,
        cookies={"session": "cookie-secret"},
        auth=("user", "auth-secret"),
        files={"f": ("name.txt", b"file-secret")},
        proxies={"https": "http://proxyuser:proxy-secret@proxy.test:3128"},
    )
    shown = [repr(request), repr(request.to_dict()), request.to_curl()]
    for text in shown:
        for secret in ("cookie-secret", "auth-secret", "file-secret", "proxy-secret"):
            assert secret not in text
    assert request.to_dict()["cookies"] == {"session": "[REDACTED]"}
    assert request.to_dict()["files"] == {"f": "name.txt"}
    assert "session=" in request.to_curl()


def test_request_keywords_are_frozen_copies() -> None:
    """Changing the caller's cookies or proxies dict afterwards does not change the request."""
    cookies = {"a": "1"}
    proxies = {"https": "http://proxy.test"}
    request = HttpRequest(HttpMethod.GET, URL, cookies=cookies, proxies=proxies)
    cookies["a"] = "2"
    proxies["https"] = "http://other.test"
    assert request.cookies == {"a": "1"}
    assert request.proxies == {"https": "http://proxy.test"}


class _OneShot(io.RawIOBase):
    """A readable file that cannot seek, such as a pipe: its content can be sent once."""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        return 0


@pytest.mark.parametrize(
    ("files", "replayable"),
    [
        ({"f": b"bytes"}, True),
        ({"f": ("a.txt", "text")}, True),
        ({"f": ("a.bin", io.BytesIO(b"x"), "application/octet-stream")}, True),
        ([("f", io.BytesIO(b"x")), ("g", b"y")], True),
        ({"f": ("pipe", _OneShot())}, False),
        ([("f", b"x"), ("g", ("one-shot", _OneShot()))], False),
    ],
    ids=["bytes", "str", "seekable", "pairs", "one-shot", "one-shot-among-many"],
)
def test_multipart_is_replayable_only_when_every_file_is(files: Any, replayable: bool) -> None:
    """files= can be resent only if every part is bytes/str or a seekable file."""
    assert HttpRequest(HttpMethod.POST, URL, files=files).has_replayable_body is replayable


def test_per_request_auth_object_is_accepted() -> None:
    """A requests.auth.AuthBase is carried on the request as given."""
    auth = requests.auth.HTTPDigestAuth("u", "p")
    assert HttpRequest(HttpMethod.GET, URL, auth=auth).auth is auth
