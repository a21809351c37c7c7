"""The `datastore` command: a client of the gateway over HTTP only."""
