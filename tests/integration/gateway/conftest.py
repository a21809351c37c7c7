from tests.integration.icat_adapter.conftest import seeded_icat

__all__ = ["seeded_icat"]
