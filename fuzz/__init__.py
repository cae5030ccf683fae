"""Coverage-guided fuzzing of every parser an attacker can reach (`./fuzz/run`).

One module per target, each with `TestOneInput(data: bytes)`: it feeds the bytes to the
parser and lets only that parser's typed, documented errors pass. Anything else escaping
(another exception type, a status outside the documented set) is a finding. See
docs/fuzzing.md.
"""

from __future__ import annotations

# Every target, by module name (fuzz/<name>.py, seeds under fuzz/corpus/<name>/).
TARGETS = (
    "quotes",
    "event_logs",
    "collateral",
    "receipts_file",
    "owner_commands",
    "agent_rpcs",
    "enclave_requests",
)
