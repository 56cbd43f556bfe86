"""``python -m switchboard.server``: the ``switchboard`` command without its script."""

import sys

from switchboard.server.cli import main

sys.exit(main())
