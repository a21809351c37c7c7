"""Integration tests against the real local XRootD stack."""
