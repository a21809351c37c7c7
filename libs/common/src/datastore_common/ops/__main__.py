"""``python -m datastore_common.ops``: the same as ``datastore-ops``."""

import sys

from datastore_common.ops.cli import main

sys.exit(main())
