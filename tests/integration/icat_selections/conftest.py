"""The shared ICAT emulator (seeded), a client pool for the user side, and archived data."""

from __future__ import annotations

from tests.integration.icat_adapter.conftest import (  # noqa: F401  (fixtures)
    catalogue,
    icat_settings,
    seeded_icat,
)
