"""``python -m segkit.report refresh-nbval``: see :mod:`segkit.report.nbval`."""

import sys

from segkit.report.nbval import main

sys.exit(main())
