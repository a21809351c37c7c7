"""XRootD adapters: the raw client and the ``Storage`` port on it.

- ``urls``: ``root://host:port//path`` URLs split and joined;
- ``client``: ``XRootDClient``, asynchronous stat, checksum, list, mkdir, remove on any server;
- ``storage``: ``XRootDStorage``, the ``Storage`` port (size and adler32 of source files).
"""
