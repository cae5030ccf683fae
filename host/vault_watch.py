"""The guarded vault as the host last read it: what `GetStatus` and `tee-agent status` show.

The market feed calls `VaultWatch.refresh` once per batch; API threads read
`VaultWatch.latest` at any time. A failed read keeps the last state read successfully and
says why it failed, so a node outage shows as an error beside slightly old figures rather
than as no vault at all.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal

from web3 import Web3

from host.chain.node_errors import redact_error
from host.chain.vault import Vault, VaultState


@dataclass(frozen=True)
class VaultReading:
    """The newest vault state read (None before the first success), and why the last read
    failed (None when it succeeded)."""

    address: str
    agent: str
    quote_decimals: int
    state: VaultState | None
    error: str | None


class VaultWatch:
    """Reads one vault's state for one agent; keeps the latest reading."""

    def __init__(
        self, w3: Web3, vault_address: str, agent_address: str, quote_decimals: int
    ) -> None:
        self._vault = Vault(w3, vault_address)
        self._agent = Web3.to_checksum_address(agent_address)
        # Replaced whole, never changed in place: a reader sees one reading or the next.
        self._latest = VaultReading(
            self._vault.address, self._agent, quote_decimals, None, "not read yet"
        )

    @property
    def latest(self) -> VaultReading:
        return self._latest

    def refresh(self) -> VaultReading:
        """Read the vault now; returns the new latest reading (never raises for the node)."""
        try:
            state = self._vault.state(self._agent)
        # VaultError (a call reverted: not a vault) or the node's own failure (down, timing
        # out); both may quote the RPC URL, which often holds an API key.
        except Exception as exc:
            node = getattr(self._vault.w3.provider, "endpoint_uri", None)
            reading = replace(self._latest, error=redact_error(exc, str(node) if node else None))
        else:
            reading = replace(self._latest, state=state, error=None)
        self._latest = reading
        return reading


def whole_tokens(amount: int, decimals: int) -> str:
    """Smallest units as whole tokens, exactly, in plain decimal notation: "1000.5", "0"."""
    value = Decimal(amount).scaleb(-decimals).normalize()
    return format(value, "f")
