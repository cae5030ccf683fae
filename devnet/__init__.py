"""The local-chain kit of the demo and the tests: anvil, Uniswap V2, funded accounts, a
market mover, the enclave config of a deployment, and the demo itself.

- `devnet.anvil`: the anvil node as a managed process.
- `devnet.accounts`: anvil's dev accounts and the part each plays here.
- `devnet.artifacts`: the Uniswap V2 build artifacts, the pair init-code hash, CREATE2.
- (`host.chain.transact` signs, sends and waits for transactions from a local account; `ChainError`.)
- `devnet.dex`: deploying the Uniswap V2 contracts (`Dex`), and reading the pools.
- `devnet.market`: funding accounts and seeding the pools (`deploy_market`: all at once).
- `devnet.market_mover`: an independent account that trades a pool to a target price.
- `devnet.enclave_config`: the measured enclave config for a deployment.
- `devnet.demo`: the demo (`python -m devnet.demo`, or `./scripts/demo`).

Not part of the product: host/, enclave/ and attestation/ import nothing from here, and the
wheel leaves it out, since it needs a checkout (the npm tools in tools/chain/node_modules,
the candles in data/, the examples in examples/). Run it from the repository root.
"""
