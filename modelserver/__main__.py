"""`python -m modelserver`: the model server without the rest of outrider (e.g. as a model container).

Usage: python -m modelserver --model models/digits.onnx --port 8000
"""

from __future__ import annotations

import argparse
import sys

from modelserver import cli


def run() -> int:
    """Parse the command line and serve."""
    parser = argparse.ArgumentParser(prog="python -m modelserver", description=cli.__doc__)
    cli.add_arguments(parser)
    return cli.main(parser.parse_args())


if __name__ == "__main__":
    sys.exit(run())
