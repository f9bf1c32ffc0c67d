"""Sphinx configuration for the requestforge documentation.

CI builds with ``-W --keep-going`` and ``nitpicky`` on, so a broken cross-reference or bad
docstring markup anywhere fails the build. Annotations name the private modules where
classes are defined (``requestforge._models.HttpRequest``); :func:`_public_reference` points
them at the public names the reference documents (``requestforge.HttpRequest``).
"""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path
from typing import Any

from docutils import nodes
from sphinx.addnodes import pending_xref
from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import requestforge  # noqa: E402 - after the path is set up

project = "requestforge"
author = "requestforge developers"
copyright = "requestforge developers"
release = version = requestforge.__version__

extensions = [
    "sphinx.ext.autodoc",
    "myst_parser",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]
templates_path: list[str] = []

html_theme = "alabaster"
html_title = f"requestforge {release}"
html_static_path: list[str] = []

# The reference documents the names of requestforge.__all__ in the order the pages give.
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
autodoc_default_options = {"members": True, "show-inheritance": True}
add_module_names = False
python_use_unqualified_type_names = True

# Every cross-reference must resolve, except to objects outside this project: there is no
# intersphinx (the build runs offline), so the standard library and requests stay plain text.
nitpicky = True
nitpick_ignore_regex = [
    (r"py:(class|obj|exc|data|func|meth|attr)", r"(?!requestforge).*"),
    # Type variables of generic classes have no page of their own.
    (r"py:class", r"requestforge\w*\._\w+\._?T"),
]

# MyST: the design notes and the changelog are Markdown.
myst_heading_anchors = 3

_PRIVATE_OWNER = re.compile(r"\b_[A-Z]\w*\.(?=[A-Z_]+\b)")
_PRIVATE = re.compile(r"^(requestforge(?:_testing)?)\.(?:_\w+|plugin)\.(\w+)(\.\w+)*$")


def _public_reference(
    app: Sphinx, env: BuildEnvironment, node: pending_xref, contnode: nodes.TextElement
) -> nodes.Element | None:
    """Resolve ``requestforge._x.Name[.attr]`` to ``requestforge.Name[.attr]`` when public."""
    target = node.get("reftarget", "")
    match = _PRIVATE.match(target)
    if match is None or node.get("refdomain") != "py":
        return None
    package, name = match.group(1), match.group(2)
    if name not in importlib.import_module(package).__all__:
        module = importlib.import_module(target[: match.start(2) - 1])
        # A private helper type in a public signature (a Protocol, a TypeAlias) exists but
        # has no page: show it as plain text. A name that does not exist still warns.
        return contnode if hasattr(module, name) else None
    public = f"{package}.{target[match.start(2) :]}"
    domain: Any = env.get_domain("py")
    resolved: nodes.Element | None = domain.resolve_xref(
        env, node.get("refdoc", ""), app.builder, node["reftype"], public, node, contnode
    )
    return resolved


def _public_bases(app: Sphinx, name: str, obj: object, options: object, bases: list[type]) -> None:
    """Show a class's public bases: a private helper base is replaced by its own bases."""
    public: list[type] = []
    pending = list(bases)
    while pending:
        base = pending.pop(0)
        origin = getattr(base, "__origin__", base)  # _Helper[T] is an alias of _Helper
        if origin.__name__.startswith("_") or _unexported(origin):
            pending[:0] = [b for b in origin.__bases__ if b is not object]
        elif base not in public:
            public.append(base)
    bases[:] = public or [object]


def _unexported(cls: type) -> bool:
    """A class of this project that its package does not export (a shared private base)."""
    package = cls.__module__.partition(".")[0]
    if package not in {"requestforge", "requestforge_testing"}:
        return False
    return cls.__name__ not in importlib.import_module(package).__all__


def _parseable_signature(  # noqa: PLR0917 - the signature Sphinx calls it with
    app: Sphinx,
    what: str,
    name: str,
    obj: object,
    options: object,
    signature: str | None,
    return_annotation: str | None,
) -> tuple[str | None, str | None] | None:
    """Make a signature parseable and free of private names.

    A dataclass ``field(default_factory=...)`` default shows as ``<factory>``, which is not
    Python: Sphinx could not parse the signature and would print it raw, private module
    paths included. A default such as ``_OAuth2TokenProvider.DEFAULT_TIMEOUT`` names a
    private base class; the constant is documented on the public class itself.
    """
    if signature is None:
        return None
    public = _PRIVATE_OWNER.sub("", signature.replace("<factory>", "..."))
    return (public, return_annotation) if public != signature else None


def setup(app: Sphinx) -> None:
    app.connect("missing-reference", _public_reference)
    app.connect("autodoc-process-bases", _public_bases)
    app.connect("autodoc-process-signature", _parseable_signature)
