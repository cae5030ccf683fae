"""`tee-agent`, the command line: `main` runs it (the console script and `python -m host.cli`).

`parser` declares the commands (on `command_parser`'s class, whose misuse exit `entry` can
print as JSON), and `entry.main` dispatches to one module per command
(`verify_quote`, `verify_agent`, `run`, `init`, `status`, `receipts`, `attest`, `forward`;
for `vault`: `vault_deploy`, `vault_register`, `vault_owner_calls`, `vault_status`), which
share `outcome` (exit codes), `arguments` and, for the clients of a running agent,
`connection`; `agent_attestation` verifies an agent's attestation (`attest`, `vault
register`), and the vault commands share `vault_chain` (node, vault, tokens, amounts) and
`vault_key` (the owner's key file).
"""

from host.cli.entry import main

__all__ = ["main"]
