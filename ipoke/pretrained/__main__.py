"""``python -m ipoke.pretrained``: ``ipoke weights`` without importing the other commands (for ``make``)."""

import sys

from ipoke.errors import IpokeError
from ipoke.pretrained.cli import run

try:
    sys.exit(run(None))
except IpokeError as err:
    print(f"ipoke weights: error: {err}", file=sys.stderr)
    sys.exit(2)
