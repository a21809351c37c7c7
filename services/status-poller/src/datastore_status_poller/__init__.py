"""datastore_status_poller."""
