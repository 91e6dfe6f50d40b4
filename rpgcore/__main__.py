"""``python -m rpgcore``: the same command line as the ``rpgcore`` script."""

import sys

from rpgcore.cli import main

if __name__ == "__main__":
    sys.exit(main())
