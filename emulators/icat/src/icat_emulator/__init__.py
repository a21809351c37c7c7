"""icat_emulator."""
