"""FTS3 adapters: our own async client for the FTS3 REST API, the X.509 proxy it delegates,
and the ``TransferService`` port on top.

- ``wire``: the JSON FTS3 speaks (jobs we send, job and file states it answers) and its HTTP
  failures as ``errors`` types;
- ``proxy``: RFC 3820 proxy certificates for delegation (pure crypto);
- ``client``: ``Fts3Client``, one httpx connection pool with retries, delegation and bulk status;
- ``transfer_service``: ``Fts3TransferService``, the ``TransferService`` port.
"""
