"""`python -m host.cli ...`: the same as `tee-agent ...`."""

import sys

from host.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
