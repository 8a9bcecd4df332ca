"""``accelerate launch -m zoo.train RECIPE [KEY=VALUE ...]``: the same command line as ``zoo train``.

This shim is the one module of zoo.train that imports the CLI layer (the import-linter contract names
it): accelerate launches modules, and the arguments belong to zoo.cli.train.
"""

import sys

from zoo.cli.train import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m zoo.train"))
