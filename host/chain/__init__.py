"""The chain side of the host: the local anvil node with Uniswap V2 for the demo and tests
(`host.chain.localnet`) and the modules that talk to a chain for the agent.

Each module is imported by name; this package imports nothing itself, so a caller that
needs one of them does not pay for the others.
"""
