"""``python -m minidocker.runtime``: the same command as ``minidocker-runtime`` (see :mod:`.cli`)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
