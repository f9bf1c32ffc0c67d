"""The curated public API: complete, private modules behind it, typed package."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from pathlib import Path

import requestforge


def test_all_names_exist() -> None:
    """Every name in requestforge.__all__ is importable from the package."""
    missing = [name for name in requestforge.__all__ if not hasattr(requestforge, name)]
    assert missing == []


def test_every_private_module_export_is_public() -> None:
    """Each private module's __all__ is re-exported by the package, so nothing is forgotten."""
    forgotten = []
    for info in pkgutil.iter_modules(requestforge.__path__):
        module = importlib.import_module(f"requestforge.{info.name}")
        assert info.name.startswith("_"), f"public module {info.name} should be private"
        for name in getattr(module, "__all__", ()):
            if name not in requestforge.__all__:
                forgotten.append(f"{info.name}.{name}")
    # helpers, deliberately not public API
    internal = {
        "_adopt",
        "_body",
        "_deadline",
        "_redact",
        "_redirects",
        "_token_endpoint",
        "_transport",
    }
    assert [f for f in forgotten if f.split(".")[0] not in internal] == []


def test_public_objects_report_the_package_as_home() -> None:
    """Public classes live in private modules of requestforge (not re-exported from elsewhere)."""
    for name in requestforge.__all__:
        obj = getattr(requestforge, name)
        if not (inspect.isclass(obj) or inspect.isfunction(obj)):
            continue  # constants and type aliases have no home module
        module = obj.__module__
        assert module.startswith("requestforge"), (name, module)


def test_package_is_typed() -> None:
    """The py.typed marker ships with the package."""
    assert (Path(requestforge.__file__).parent / "py.typed").is_file()


def test_the_plugin_package_exports_exist() -> None:
    """Every name in requestforge_testing.__all__ is importable; ForgeClockWarning is a
    UserWarning, so filters for UserWarning (and pytest's) catch it."""
    import requestforge_testing

    missing = [n for n in requestforge_testing.__all__ if not hasattr(requestforge_testing, n)]
    assert missing == []
    assert issubclass(requestforge_testing.ForgeClockWarning, UserWarning)
