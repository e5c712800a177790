"""`python -m ponder_client ask ...`: the client's commands without the server installed."""

import sys

from .cli import main

sys.exit(main())
