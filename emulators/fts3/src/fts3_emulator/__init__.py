"""fts3_emulator."""
