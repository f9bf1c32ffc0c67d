"""``_code``: which frames are the user's code, and how a call site is named."""

from __future__ import annotations

import json
import os
import re
import sys
import threading
from pathlib import Path

import pytest
import requests

from requestforge import (
    HttpClient,
    TokenManager,
)
from requestforge_testing import (
    FakeTokenProvider,
    forge_stress,
)
from requestforge_testing._code import call_site, is_user_code

HERE = Path(__file__).resolve()

SOURCE = HERE.read_text().splitlines()


def line_of(tag: str) -> int:
    """The line of this file that ends with the comment ``# <- tag``."""
    [number] = [n for n, text in enumerate(SOURCE, 1) if text.endswith(f"# <- {tag}")]
    return number


# -- which code is the user's -----------------------------------------------------------------


def a_user_function() -> None:
    """Code of this test file."""


@pytest.mark.parametrize(
    ("code", "module"),
    [
        (json.dumps.__code__, "json"),
        (threading.Thread.run.__code__, "threading"),
        (requests.get.__code__, "requests.api"),
        (pytest.raises.__code__, "_pytest.python_api"),
        (HttpClient.get.__code__, "requestforge._client"),
        (TokenManager.get_token.__code__, "requestforge.tokens._manager"),
        (forge_stress.__code__, "requestforge_testing._stress.runner"),
        (FakeTokenProvider.fetch_token.__code__, "requestforge_testing._providers"),
    ],
    ids=[
        "stdlib",
        "stdlib-threading",
        "site-packages",
        "pytest",
        "requestforge",
        "requestforge-tokens",
        "plugin",
        "plugin-provider",
    ],
)
def test_the_library_the_plugin_and_installed_packages_are_not_user_code(
    code: object, module: str
) -> None:
    """Frames of the standard library, site-packages, pytest, requestforge and the plugin are
    never the user's."""
    assert isinstance(code, type(a_user_function.__code__))
    assert not is_user_code(code, module)


def test_a_test_file_is_user_code() -> None:
    """This file's functions are the user's, and so is code exec'd from a string."""
    assert is_user_code(a_user_function.__code__, __name__)
    exec_code = compile("pass", "<string>", "exec")
    assert is_user_code(exec_code, "__main__")
    frozen = compile("pass", "<frozen importlib._bootstrap>", "exec")
    assert not is_user_code(frozen, "importlib._bootstrap")


def test_both_rules_apply_and_include_overrides_the_packages() -> None:
    """A site-packages file is not the user's whatever its module name; requestforge in the
    project tree is excluded by name, and counts again when named in include."""
    assert not is_user_code(requests.get.__code__, "my_app")
    assert not is_user_code(a_user_function.__code__, "requestforge.extras")
    assert not is_user_code(a_user_function.__code__, "requestforge_testing")
    assert is_user_code(a_user_function.__code__, "requestforge_tools")
    assert is_user_code(HttpClient.get.__code__, "requestforge._client", ("requestforge",))
    assert is_user_code(requests.get.__code__, "requests.api", ("requests",))


def test_call_site_names_the_first_user_frame_past_the_standard_library() -> None:
    """From inside a callback run by the json module, the site is this file's line that
    called json.loads, relative to the working directory."""
    seen: list[str | None] = []

    def hook(obj: dict[str, object]) -> dict[str, object]:
        seen.append(call_site(sys._getframe(1)))  # frame 1: json's decoder
        return obj

    json.loads("{}", object_hook=hook)  # <- json callback
    function = "test_call_site_names_the_first_user_frame_past_the_standard_library"
    relative = os.path.relpath(HERE)
    assert seen == [f"{relative}:{line_of('json callback')} in {function}"]
    direct = call_site(sys._getframe())  # <- direct call site
    assert direct == f"{relative}:{line_of('direct call site')} in {function}"
    assert call_site(None) is None


def test_a_site_outside_the_working_directory_is_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run from elsewhere, the site keeps the file's full path."""
    monkeypatch.chdir(tmp_path)
    site = call_site(sys._getframe())  # <- absolute site
    assert site is not None
    path, line = re.fullmatch(r"(.+):(\d+) in \w+", site).groups()  # type: ignore[union-attr]
    assert os.path.isabs(path)
    assert Path(path).resolve() == HERE
    assert int(line) == line_of("absolute site")
