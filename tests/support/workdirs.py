"""Working folders of session fixtures (configs, logs, SQLite files of emulators and stacks).

They live under pytest's temporary folder (``tmp_path_factory``), which pytest itself prunes
to the last three runs. A session whose tests all passed removes them as its fixtures end,
once their processes have stopped; after a failure they stay, logs included, for a look.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


def discard_unless_failed(session: pytest.Session, *folders: Path) -> None:
    """Remove ``folders`` unless a test of this session failed (call once processes using
    them have stopped)."""
    if session.testsfailed:
        return
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)
