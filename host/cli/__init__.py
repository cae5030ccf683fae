"""`tee-agent`, the command line: `main` runs it (the console script and `python -m host.cli`).

`parser` declares the commands, and `entry.main` dispatches to one module per command
(`verify_quote`, `verify_agent`, `run`, `init`, `status`, `receipts`, `attest`, `forward`),
which share `outcome` (exit codes), `arguments` and, for the clients of a running agent,
`connection`.
"""

from host.cli.entry import main

__all__ = ["main"]
