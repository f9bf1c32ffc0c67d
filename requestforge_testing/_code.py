"""Which code is the user's: the one rule behind forced interleavings and call sites.

``forge_stress`` interleaves threads only inside the user's own code, and failure messages
name the first frame of it on a stack. The user's code is every Python file that is not
part of the standard library or an installed package (site-packages), and not a module of
requestforge, requestforge_testing or pytest — even where those live in the project tree
(an editable install). ``include`` names packages to count as the user's all the same.
"""

from __future__ import annotations

import os
import site
import sys
import sysconfig
from collections.abc import Iterable
from functools import lru_cache
from types import CodeType, FrameType
from typing import Final

__all__ = ["call_site", "describe_site", "is_user_code"]

#: Never the user's code unless named in ``include``: the library, the harness, pytest.
OWN_PACKAGES: Final = ("requestforge", "requestforge_testing", "_pytest", "pytest", "pluggy")


def _library_dirs() -> tuple[str, ...]:
    paths = {sysconfig.get_path(name) for name in ("stdlib", "platstdlib", "purelib", "platlib")}
    paths.add(os.path.dirname(os.__file__))
    paths.update(getattr(site, "getsitepackages", list)())
    user_site = getattr(site, "getusersitepackages", lambda: None)()
    if isinstance(user_site, str):
        paths.add(user_site)
    return tuple(sorted({os.path.join(os.path.realpath(p), "") for p in paths if p}))


_LIBRARY_DIRS: Final = _library_dirs()


@lru_cache(maxsize=4096)
def _is_library_file(filename: str) -> bool:
    if filename.startswith("<"):
        return filename.startswith("<frozen")  # "<string>" is exec'd user code
    return os.path.realpath(filename).startswith(_LIBRARY_DIRS)


def _in_packages(module: str, packages: Iterable[str]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def is_user_code(code: CodeType, module: str, include: tuple[str, ...] = ()) -> bool:
    """Whether ``code`` (of module ``module``) is the user's, or in a package of ``include``."""
    if include and _in_packages(module, include):
        return True
    return not _in_packages(module, OWN_PACKAGES) and not _is_library_file(code.co_filename)


def call_site(frame: FrameType | None) -> str | None:
    """``file:line in function`` of the first frame of the user's code from ``frame``
    outwards, or None when the stack holds none (``fn`` was a library method itself)."""
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if is_user_code(frame.f_code, module if isinstance(module, str) else ""):
            return describe_site(frame.f_code.co_filename, frame.f_lineno, frame.f_code.co_name)
        frame = frame.f_back
    return None


def describe_site(filename: str, line: int | None, function: str) -> str:
    """``tests/test_x.py:12 in get_token``, relative to the working directory when inside it."""
    shown = filename
    if not filename.startswith("<"):
        try:
            relative = os.path.relpath(filename)
        except ValueError:  # another drive (Windows)
            relative = filename
        if not relative.startswith(os.pardir):
            shown = relative
    return f"{shown}:{line} in {function}"


def caller_site(depth: int = 2) -> str | None:
    """The user's call site of the function that calls this one (``depth`` frames up)."""
    return call_site(sys._getframe(depth))
