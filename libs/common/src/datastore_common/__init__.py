"""datastore_common."""
