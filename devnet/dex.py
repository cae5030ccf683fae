"""A Uniswap V2 DEX on the local chain: its deployment (`Dex`, `deploy_dex`) and its reads.

`deploy_dex` deploys the real Uniswap V2 contracts from the npm build artifacts: WETH9, two
ERC-20 test tokens (our "USD" stablecoin and "WBTC"), the factory, Router02 and the WETH/USD
and WBTC/USD pairs, and checks that the router's hard-coded pair init-code hash is that of
the pair bytecode the factory deploys. `reserves`, `pool_price`, `balances` and `pool_ticks`
read the market; `set_next_block_time` keeps the chain's clock on market time.
(`devnet.market` funds accounts and seeds the pools.)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Context, Decimal
from typing import Any, Final

from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address
from web3 import Web3
from web3.contract import Contract

from devnet.accounts import DEPLOYER
from devnet.artifacts import (
    contract_at,
    create2_pair_address,
    load_artifact,
    pair_init_code_hash,
)
from host.chain.fees import agent_balances
from host.chain.transact import ChainError, send_transaction
from host.market.onchain import PoolTicks

# Token symbols as the enclave config names them; every token here has 18 decimals (WETH9
# and the v2-periphery test ERC20 both fix it).
TOKEN_DECIMALS: Final[Mapping[str, int]] = {"WETH": 18, "USD": 18, "WBTC": 18}
# Pair symbol (as ticks carry it) -> (base token, quote token).
PAIRS: Final[Mapping[str, tuple[str, str]]] = {
    "ETH/USD": ("WETH", "USD"),
    "BTC/USD": ("WBTC", "USD"),
}
# Test token supplies, minted to the deployer: far more than any demo needs.
TOKEN_SUPPLY: Final = 10**15 * 10**18
# Prices and swap sizes are computed to 60 significant digits: exact for 18-decimal reserves.
PRICE_CONTEXT: Final = Context(prec=60)


@dataclass(frozen=True)
class Dex:
    """A Uniswap V2 deployment on a local chain: checksummed addresses, and contract
    handles made on demand for any web3 client (they outlive a node restart)."""

    chain_id: int
    weth: str
    usd: str
    wbtc: str
    factory: str
    router: str
    eth_usd_pair: str
    btc_usd_pair: str
    init_code_hash: bytes

    @property
    def tokens(self) -> dict[str, str]:
        """Token symbol (as the enclave config names it) -> address."""
        return {"WETH": self.weth, "USD": self.usd, "WBTC": self.wbtc}

    @property
    def pairs(self) -> dict[str, str]:
        """Pair symbol -> pair contract address."""
        return {"ETH/USD": self.eth_usd_pair, "BTC/USD": self.btc_usd_pair}

    def token(self, w3: Web3, symbol: str) -> Contract:
        """The token contract of `symbol` (WETH with its deposit and withdraw)."""
        return contract_at(w3, "WETH9" if symbol == "WETH" else "ERC20", self.tokens[symbol])

    def router_contract(self, w3: Web3) -> Contract:
        return contract_at(w3, "UniswapV2Router02", self.router)

    def factory_contract(self, w3: Web3) -> Contract:
        return contract_at(w3, "UniswapV2Factory", self.factory)

    def pair_contract(self, w3: Web3, pair_symbol: str) -> Contract:
        """The pair contract of `pair_symbol`; raises ValueError for an unknown pair."""
        pair_tokens(pair_symbol)
        return contract_at(w3, "UniswapV2Pair", self.pairs[pair_symbol])

    def base_is_token0(self, pair_symbol: str) -> bool:
        """Whether the pair's base token sorts first (is the pair's token0)."""
        base, quote = pair_tokens(pair_symbol)
        return int(self.tokens[base], 16) < int(self.tokens[quote], 16)


def pair_tokens(pair_symbol: str) -> tuple[str, str]:
    """(base token, quote token) of a pair.

    Raises:
        ValueError: not one of `PAIRS`.
    """
    if pair_symbol not in PAIRS:
        raise ValueError(f"unknown pair {pair_symbol!r}: expected one of {', '.join(PAIRS)}")
    return PAIRS[pair_symbol]


def _deploy(w3: Web3, account: LocalAccount, name: str, *args: Any) -> str:
    artifact = load_artifact(name)
    factory = w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    receipt = send_transaction(w3, account, factory.constructor(*args), what=f"deploying {name}")
    address = receipt["contractAddress"]
    if address is None:
        raise ChainError(f"deploying {name}: the receipt names no contract address")
    return to_checksum_address(address)


def deploy_dex(w3: Web3, deployer: LocalAccount = DEPLOYER) -> Dex:
    """Deploy WETH9, USD and WBTC test tokens (all supply to `deployer`), the factory
    (fee setter `deployer`), Router02, and the WETH/USD and WBTC/USD pairs.

    Raises:
        ChainError: a pair is not at the CREATE2 address the pair init-code hash gives, or
            the router's code does not hard-code that hash (it would then swap against
            addresses where no pair is), or a deployment transaction failed.
    """
    weth = _deploy(w3, deployer, "WETH9")
    usd = _deploy(w3, deployer, "ERC20", TOKEN_SUPPLY)
    wbtc = _deploy(w3, deployer, "ERC20", TOKEN_SUPPLY)
    factory_address = _deploy(w3, deployer, "UniswapV2Factory", deployer.address)
    router_address = _deploy(w3, deployer, "UniswapV2Router02", factory_address, weth)
    factory = contract_at(w3, "UniswapV2Factory", factory_address)
    init_hash = pair_init_code_hash()
    pairs: dict[str, str] = {}
    for symbol, (base, quote) in PAIRS.items():
        tokens = {"WETH": weth, "USD": usd, "WBTC": wbtc}
        token_a, token_b = tokens[base], tokens[quote]
        send_transaction(
            w3,
            deployer,
            factory.functions.createPair(token_a, token_b),
            what=f"createPair {symbol}",
        )
        actual = to_checksum_address(factory.functions.getPair(token_a, token_b).call())
        expected = create2_pair_address(factory_address, token_a, token_b, init_hash)
        if actual != expected:
            raise ChainError(
                f"the factory put the {symbol} pair at {actual}, but CREATE2 with the "
                f"UniswapV2Pair init-code hash 0x{init_hash.hex()} gives {expected}"
            )
        pairs[symbol] = actual
    # Router02's UniswapV2Library.pairFor hard-codes the init-code hash (PUSH32 <hash>).
    router_code = bytes(w3.eth.get_code(to_checksum_address(router_address)))
    if b"\x7f" + init_hash not in router_code:
        raise ChainError(
            "the UniswapV2Router02 artifact does not hard-code the UniswapV2Pair init-code "
            f"hash 0x{init_hash.hex()}: its pairFor would name addresses where no pair is "
            "(the v2-core and v2-periphery artifacts do not match)"
        )
    router = contract_at(w3, "UniswapV2Router02", router_address)
    if (
        to_checksum_address(router.functions.factory().call()) != factory_address
        or to_checksum_address(router.functions.WETH().call()) != weth
    ):
        raise ChainError("Router02 does not name the factory and WETH it was deployed with")
    for address in (weth, usd, wbtc):
        if contract_at(w3, "ERC20", address).functions.decimals().call() != 18:
            raise ChainError(f"token {address} does not have 18 decimals")
    return Dex(
        chain_id=w3.eth.chain_id,
        weth=weth,
        usd=usd,
        wbtc=wbtc,
        factory=factory_address,
        router=router_address,
        eth_usd_pair=pairs["ETH/USD"],
        btc_usd_pair=pairs["BTC/USD"],
        init_code_hash=init_hash,
    )


def set_next_block_time(w3: Web3, timestamp: int) -> None:
    """Mine the next block at `timestamp` (unix seconds), if that is after the latest block:
    a historical replay keeps the chain's clock on market time (swap deadlines use it)."""
    latest = int(w3.eth.get_block("latest")["timestamp"])
    if timestamp > latest:
        w3.provider.make_request("evm_setNextBlockTimestamp", [timestamp])  # type: ignore[arg-type]


def swap_deadline(w3: Web3) -> int:
    """A router deadline an hour after the latest block (chain time, not wall time)."""
    return int(w3.eth.get_block("latest")["timestamp"]) + 3600


def reserves(w3: Web3, dex: Dex, pair_symbol: str) -> tuple[int, int]:
    """(base reserve, quote reserve) of a pair in smallest units."""
    reserve0, reserve1, _ = dex.pair_contract(w3, pair_symbol).functions.getReserves().call()
    if dex.base_is_token0(pair_symbol):
        return int(reserve0), int(reserve1)
    return int(reserve1), int(reserve0)


def reserves_price(pair_symbol: str, base_units: int, quote_units: int) -> Decimal:
    """The price, quote per base, that a pair's reserves (in smallest units) make.

    Raises:
        ChainError: a reserve is zero (the pool has no liquidity).
        ValueError: an unknown pair.
    """
    base, quote = pair_tokens(pair_symbol)
    if base_units == 0 or quote_units == 0:
        raise ChainError(f"the {pair_symbol} pool has no liquidity: no price")
    scale = Decimal(10) ** (TOKEN_DECIMALS[base] - TOKEN_DECIMALS[quote])
    return PRICE_CONTEXT.multiply(
        PRICE_CONTEXT.divide(Decimal(quote_units), Decimal(base_units)), scale
    )


def pool_price(w3: Web3, dex: Dex, pair_symbol: str = "ETH/USD") -> Decimal:
    """The pool's price, quote per base (USD per ETH for "ETH/USD"), from `getReserves`.

    Raises:
        ChainError: the pool has no liquidity.
        ValueError: an unknown pair.
    """
    pair_tokens(pair_symbol)
    return reserves_price(pair_symbol, *reserves(w3, dex, pair_symbol))


def balances(w3: Web3, dex: Dex, address: str) -> dict[str, int]:
    """ETH, WETH, USD and WBTC held by `address`, in smallest units (wei).

    Raises:
        host.chain.fees.ChainReadError: a token's balanceOf fails.
    """
    holder = to_checksum_address(address)
    tokens = {symbol: (token, TOKEN_DECIMALS[symbol]) for symbol, token in dex.tokens.items()}
    return {"ETH": int(w3.eth.get_balance(holder)), **agent_balances(w3, tokens, holder)}


def pool_ticks(w3: Web3, dex: Dex, pair_symbol: str = "ETH/USD") -> PoolTicks:
    """The on-chain market-data adapter for one of the deployment's pools.

    Raises:
        ValueError: an unknown pair.
    """
    base, quote = pair_tokens(pair_symbol)
    return PoolTicks(
        w3,
        dex.pairs[pair_symbol],
        dex.base_is_token0(pair_symbol),
        TOKEN_DECIMALS[base],
        TOKEN_DECIMALS[quote],
        pair_symbol,
    )
