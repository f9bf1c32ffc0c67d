"""Root conftest: pytester lets the plugin's own tests run pytest inside pytest.

requestforge_testing itself is not listed here: it is loaded by its ``pytest11`` entry point,
exactly as in a user's project after ``pip install requestforge``.
"""

pytest_plugins = ["pytester"]
