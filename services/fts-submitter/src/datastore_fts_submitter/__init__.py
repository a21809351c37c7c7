"""datastore_fts_submitter."""
