"""The seeded ICAT emulator of the adapter tests, for the audit's."""

from tests.integration.icat_adapter.conftest import seeded_icat

__all__ = ["seeded_icat"]
