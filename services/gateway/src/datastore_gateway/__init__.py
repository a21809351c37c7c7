"""datastore_gateway."""
