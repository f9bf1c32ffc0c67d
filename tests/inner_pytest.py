"""Running pytest inside pytest (``pytester``) as a user's project would.

Shared by every test file that runs an inner pytest: only this plugin, loaded by name as a
user's ``-p requestforge_testing`` does, unknown markers and every warning as errors.
"""

from __future__ import annotations

# Imported before any inner run: pytester forgets the modules an inner run imported, and
# the next run imports them again, but cryptography's compiled bindings (behind trustme's
# certificates and joserfc's keys) stay: a second copy of its Python classes then fails
# ("curve must be an EllipticCurve instance").
import joserfc.jwk  # noqa: F401
import pytest
import trustme  # noqa: F401

INNER_ARGS: tuple[str, ...] = (
    "-p",
    "requestforge_testing",
    "-p",
    "no:cacheprovider",
    "--strict-markers",
    "-W",
    "error",
)


def run_inner(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, *args: str
) -> pytest.RunResult:
    """Run pytest in-process with ``INNER_ARGS`` and only this plugin, as CI loads it:
    autoloaded plugins could mask what it does alone."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    return pytester.runpytest(*INNER_ARGS, *args)
