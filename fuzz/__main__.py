"""`python -m fuzz` is `./fuzz/run` (see fuzz.runner)."""

from __future__ import annotations

import sys

from fuzz.runner import main

sys.exit(main())
