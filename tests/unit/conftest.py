"""Unit tests run on what the test itself says, never on the machine's configuration.

``load_settings`` reads ``DATASTORE__*`` overrides and the file named by ``DATASTORE_CONFIG``
or else ``./config.yaml``; a developer's shell or working copy may have any of these. Every
unit test therefore starts with no ``DATASTORE_*`` variable and in an empty working folder of
its own (which also keeps relative defaults such as ``sqlite:///var/gateway/...`` out of the
repository). A test that wants a configuration sets it with ``monkeypatch``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _isolated_configuration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [name for name in os.environ if name.startswith("DATASTORE_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
