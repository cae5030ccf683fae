"""The chain side of the host: the modules that talk to a chain for the agent (the
broadcaster, fee hints and balances, the end-to-end audit). The local chain of the demo and
the tests is not here but in the top-level `devnet` package, which the host never imports.

Each module is imported by name; this package imports nothing itself, so a caller that
needs one of them does not pay for the others.
"""
