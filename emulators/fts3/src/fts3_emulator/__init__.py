"""FTS3 emulator: FTS3's REST API over HTTPS, moving real bytes between XRootD servers."""
