"""`python -m host.cli ...`: the same as `tee-agent ...`."""

import sys

from host.cli.entry import main

if __name__ == "__main__":
    sys.exit(main())
