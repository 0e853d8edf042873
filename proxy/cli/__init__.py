"""The `outrider` command (`proxy.cli.command`), its sub-commands and terminal helpers. Importing
this package loads nothing else: `main` imports the parser when it is called.
"""

from __future__ import annotations

from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `outrider` script (pyproject's `proxy.cli:main`)."""
    from proxy.cli.command import main as run

    return run(argv)
