"""datastore_icat_writer."""
