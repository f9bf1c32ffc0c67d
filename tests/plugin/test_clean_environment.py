"""forge_clean_environment: requests finds no proxy, CA bundle or .netrc entry, in one test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.inner_pytest import run_inner

#: A shell set up for a corporate proxy: every variable requests reads besides NETRC.
SHELL = {
    "HTTP_PROXY": "http://shell-proxy.invalid:3128",
    "HTTPS_PROXY": "http://shell-proxy.invalid:3128",
    "ALL_PROXY": "socks5://shell-proxy.invalid:1080",
    "NO_PROXY": "internal.invalid",
    "REQUESTS_CA_BUNDLE": "/shell/requests-bundle.pem",
    "CURL_CA_BUNDLE": "/shell/curl-bundle.pem",
    "REQUEST_METHOD": "GET",  # set, urllib ignores HTTP_PROXY (the CGI "httpoxy" guard)
}

#: Run inside: what requests would take from the environment for a request to example.org.
INNER_TESTS = """
import os

import requests

URL = "http://example.org/"


def seen_by_requests():
    with requests.Session() as session:
        settings = session.merge_environment_settings(URL, {}, None, None, None)
    return settings["proxies"], settings["verify"], requests.utils.get_netrc_auth(URL)


def test_clean(forge_clean_environment, monkeypatch):
    assert forge_clean_environment is None
    assert seen_by_requests() == ({}, True, None)
    assert not os.path.exists(os.environ["NETRC"])
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:1")
    assert seen_by_requests()[0] == {"http": "http://127.0.0.1:1"}


def test_untouched():
    proxies, verify, auth = seen_by_requests()
    assert proxies["https"] == "http://shell-proxy.invalid:3128"
    assert verify == "/shell/requests-bundle.pem"
    assert auth == ("shell", "s3cret")
"""


@pytest.mark.usefixtures("forge_clean_environment")
def test_no_variable_of_the_shell_is_left() -> None:
    """None of the variables is set, in either case, and NETRC names a missing file."""
    assert [name for name in os.environ if name.upper() in SHELL] == []
    assert not Path(os.environ["NETRC"]).exists()


def test_only_the_tests_that_ask_get_a_clean_environment(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The shell's proxies, CA bundle and .netrc are gone (lower-case names too) in a test
    with the fixture, a proxy it sets itself counts, and the next test sees the shell."""
    for name, value in SHELL.items():
        monkeypatch.setenv(name.lower(), value)
        monkeypatch.setenv(name, value)
    netrc = tmp_path / "shell-netrc"
    netrc.write_text("machine example.org login shell password s3cret\n")
    monkeypatch.setenv("NETRC", str(netrc))
    pytester.makepyfile(INNER_TESTS)
    result = run_inner(pytester, monkeypatch)
    result.assert_outcomes(passed=2)
