"""`python -m proxy.cli ...` = `outrider ...` (how a supervisor starts its workers)."""

import sys

from proxy.cli.command import main

sys.exit(main())
