"""Skip a test module that needs the local chain when anvil is not installed.

Call `skip_without_anvil()` at the top of the module, before it imports what needs the
chain tools: the whole module is skipped, with a reason naming `./scripts/bootstrap`.
"""

from __future__ import annotations

import pytest


def skip_without_anvil() -> None:
    """Skip the calling module unless devnet imports and the anvil binary is installed."""
    anvil = pytest.importorskip("devnet.anvil")
    try:
        anvil.find_anvil()
    except Exception as exc:
        pytest.skip(
            f"anvil is not installed ({exc}); ./scripts/bootstrap installs it",
            allow_module_level=True,
        )
