"""The seeded ICAT emulator fixture of the adapter tests, shared here."""

from tests.integration.icat_adapter.conftest import seeded_icat

__all__ = ["seeded_icat"]
