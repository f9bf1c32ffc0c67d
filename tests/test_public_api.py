"""The curated public API: complete, private modules behind it, typed package."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import requestforge


def test_all_names_exist() -> None:
    """Every name in requestforge.__all__ is importable from the package."""
    missing = [name for name in requestforge.__all__ if not hasattr(requestforge, name)]
    assert missing == []


def test_every_private_module_export_is_public() -> None:
    """Each private module's __all__ is re-exported by the package, so nothing is forgotten."""
    forgotten = []
    for info in pkgutil.walk_packages(requestforge.__path__, "requestforge."):
        module = importlib.import_module(info.name)
        leaf = info.name.rsplit(".", 1)[1]
        if info.ispkg:
            assert not hasattr(module, "__all__"), f"{info.name} is a folder of private modules"
            continue
        assert leaf.startswith("_"), f"public module {info.name} should be private"
        for name in getattr(module, "__all__", ()):
            if name not in requestforge.__all__:
                forgotten.append(f"{info.name}.{name}")
    # helpers, deliberately not public API
    internal = {
        "requestforge._adopt",
        "requestforge._cached_session",
        "requestforge._body",
        "requestforge._deadline",
        "requestforge._redact",
        "requestforge._redirects",
        "requestforge._transport",
        "requestforge.tokens._endpoint",
    }
    assert [f for f in forgotten if f.rsplit(".", 1)[0] not in internal] == []


def test_old_import_paths_in_the_docs_still_work() -> None:
    """Every ``from requestforge... import name`` and ``requestforge.name`` in the docs resolves."""
    root = Path(__file__).parent.parent
    texts = [
        root / "README.md",
        *sorted((root / "docs").rglob("*.md")),
        *sorted((root / "docs").rglob("*.rst")),
    ]
    found: set[tuple[str, str]] = set()
    for path in texts:
        text = path.read_text(encoding="utf-8")
        for module, grouped, line in re.findall(
            r"from (requestforge[\w.]*) import (?:\(([^)]*)\)|([^\n(]+))", text
        ):
            for part in (grouped or line).split(","):
                name = part.split("#")[0].split(" as ")[0].strip()
                if name.isidentifier():
                    found.add((module, name))
        found.update(
            ("requestforge", name) for name in re.findall(r"\brequestforge\.([A-Za-z]\w*)", text)
        )
    assert len(found) > 30  # the docs do name the API
    broken = []
    for module, name in sorted(found):
        if module == "requestforge" and name in {"tokens"}:
            continue
        try:
            imported = importlib.import_module(module)
        except ImportError:
            broken.append(f"{module} (module)")
            continue
        if not hasattr(imported, name):
            try:
                importlib.import_module(f"{module}.{name}")
            except ImportError:
                broken.append(f"{module}.{name}")
    assert broken == []


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
