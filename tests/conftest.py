"""Root test configuration.

Fixtures that start or reach real services live in ``tests/support/*_fixtures.py``, one module
per area; they are loaded here automatically so every test folder can use them.
"""

from pathlib import Path

pytest_plugins = sorted(
    f"tests.support.{path.stem}"
    for path in (Path(__file__).parent / "support").glob("*_fixtures.py")
)
