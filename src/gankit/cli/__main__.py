"""``python -m gankit.cli``."""

import sys

from gankit.cli.main import main

sys.exit(main())
