"""Running pytest inside pytest (``pytester``) as a user's project would.

Shared by every test file that runs an inner pytest: only this plugin, loaded by name as a
user's ``-p requestforge_testing`` does, unknown markers and every warning as errors.
"""

from __future__ import annotations

INNER_ARGS: tuple[str, ...] = (
    "-p",
    "requestforge_testing",
    "-p",
    "no:cacheprovider",
    "--strict-markers",
    "-W",
    "error",
)
