"""A local chain for the demo and the tests: anvil, Uniswap V2, funded accounts, a market mover.

- `host.chain.anvil.Anvil` runs the node (re-exported here as `Anvil` for the demo).
- `deploy_dex` deploys the real Uniswap V2 contracts from the npm build artifacts: WETH9,
  two ERC-20 test tokens (our "USD" stablecoin and "WBTC"), the factory, Router02 and the
  WETH/USD and WBTC/USD pairs, and checks that the router's hard-coded pair init-code hash
  is that of the pair bytecode the factory deploys.
- `add_liquidity`, `fund`, `pool_price`, `balances`: set up and inspect the market.
- `MarketMover` trades a pool to a target price from its own account, in one swap whose
  input comes from the constant-product formula with the 0.3% fee solved exactly.
- `enclave_config_toml` writes the measured enclave config for a deployment.

Accounts are anvil's defaults (the mnemonic "test test ... junk"): `DEV_ACCOUNTS[0]`
deploys, `[1]` moves the market, `[2]` provides liquidity; the rest are free for tests.
Every transaction is an EIP-1559 transaction signed here with eth-account and waited for;
a revert raises `ChainError` with the contract's reason.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Context, Decimal
from pathlib import Path
from typing import Any, Final, Literal, cast

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractConstructor, ContractFunction
from web3.exceptions import ContractLogicError, Web3RPCError
from web3.types import TxParams, TxReceipt, Wei

from host.chain.anvil import NODE_MODULES, Anvil, AnvilError, AnvilNotFound, find_anvil
from host.market.onchain import PoolTicks

__all__ = ["Anvil", "AnvilError", "AnvilNotFound", "find_anvil"]

# anvil's default dev accounts (mnemonic "test test test test test test test test test test
# test junk", m/44'/60'/0'/0/i). Public test keys: never use them on a real network.
DEV_PRIVATE_KEYS: Final = (
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
    "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a",
    "0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba",
)
DEV_ACCOUNTS: Final[tuple[LocalAccount, ...]] = tuple(
    Account.from_key(key) for key in DEV_PRIVATE_KEYS
)
DEPLOYER, MOVER, LIQUIDITY_PROVIDER = DEV_ACCOUNTS[0], DEV_ACCOUNTS[1], DEV_ACCOUNTS[2]

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

_PRICE = Context(prec=60)
_RECEIPT_TIMEOUT = 60.0
MAX_UINT256: Final = 2**256 - 1

Amount = Decimal | int | str


class ChainError(Exception):
    """A transaction reverted or the deployment is not what it must be; says which and why."""


# --- artifacts and transactions -----------------------------------------------------------

_ARTIFACTS: Final[Mapping[str, str]] = {
    "WETH9": "@uniswap/v2-periphery/build/WETH9.json",
    "ERC20": "@uniswap/v2-periphery/build/ERC20.json",
    "UniswapV2Factory": "@uniswap/v2-core/build/UniswapV2Factory.json",
    "UniswapV2Pair": "@uniswap/v2-core/build/UniswapV2Pair.json",
    "UniswapV2Router02": "@uniswap/v2-periphery/build/UniswapV2Router02.json",
}


@dataclass(frozen=True)
class Artifact:
    name: str
    abi: list[dict[str, Any]]
    bytecode: bytes


@functools.cache
def load_artifact(name: str, node_modules: Path = NODE_MODULES) -> Artifact:
    """A Uniswap V2 build artifact ("abi" and "bytecode") from the npm packages.

    Raises ChainError, naming `./scripts/bootstrap`, when the file is missing or malformed.
    """
    path = node_modules / _ARTIFACTS[name]
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        abi, bytecode = raw["abi"], raw["bytecode"]
        code = bytes.fromhex(bytecode.removeprefix("0x"))
    except FileNotFoundError:
        raise ChainError(
            f"missing {path}: run ./scripts/bootstrap (it installs tools/chain)"
        ) from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ChainError(f"{path} is not a build artifact with abi and bytecode: {exc}") from None
    if not code:
        raise ChainError(f"{path} has no bytecode")
    return Artifact(name=name, abi=abi, bytecode=code)


def _contract(w3: Web3, *, address: str, abi: list[dict[str, Any]]) -> Contract:
    return w3.eth.contract(address=to_checksum_address(address), abi=abi)


def pair_init_code_hash() -> bytes:
    """keccak256 of the UniswapV2Pair creation code: what CREATE2 pair addresses hash in."""
    return keccak(load_artifact("UniswapV2Pair").bytecode)


def create2_pair_address(factory: str, token_a: str, token_b: str, init_code_hash: bytes) -> str:
    """The address a Uniswap V2 factory gives the pair of two tokens (`pairFor`)."""
    token0, token1 = sorted(
        (to_checksum_address(token_a), to_checksum_address(token_b)), key=str.lower
    )
    salt = keccak(bytes.fromhex(token0[2:]) + bytes.fromhex(token1[2:]))
    digest = keccak(
        b"\xff" + bytes.fromhex(to_checksum_address(factory)[2:]) + salt + init_code_hash
    )
    return to_checksum_address(digest[12:])


def _fee_fields(w3: Web3) -> dict[str, int]:
    base_fee = int(w3.eth.get_block("latest").get("baseFeePerGas", 0))
    tip = int(w3.eth.max_priority_fee)
    return {"maxFeePerGas": 2 * base_fee + tip, "maxPriorityFeePerGas": tip}


def _reason(exc: Exception) -> str:
    if isinstance(exc, ContractLogicError) and exc.message:
        return exc.message
    return str(exc) or type(exc).__name__


def send_transaction(
    w3: Web3,
    account: LocalAccount,
    call: ContractFunction | ContractConstructor | TxParams,
    *,
    what: str,
    value: int = 0,
) -> TxReceipt:
    """Sign `call` (a contract function, a constructor, or plain transaction fields) as an
    EIP-1559 transaction from `account`, send it, wait for its receipt.

    Raises ChainError naming `what` and the revert reason when the transaction would revert
    (gas estimation) or did (receipt status 0).
    """
    fields: dict[str, Any] = {
        "from": account.address,
        "nonce": w3.eth.get_transaction_count(account.address, "pending"),
        "chainId": w3.eth.chain_id,
        "value": value,
        **_fee_fields(w3),
    }
    try:
        if isinstance(call, ContractFunction | ContractConstructor):
            tx = dict(call.build_transaction(cast(TxParams, fields)))
        else:
            tx = {**fields, **call}
            if "gas" not in tx:
                tx["gas"] = w3.eth.estimate_gas(cast(TxParams, tx))
    except (ContractLogicError, Web3RPCError) as exc:
        raise ChainError(f"{what} from {account.address} would revert: {_reason(exc)}") from None
    # A generous margin: the estimate runs at the latest block's timestamp, and a swap mined
    # in a later second also writes the pair's price accumulators (two cold SSTOREs, about
    # 40,000 gas) that the estimate did not include.
    tx["gas"] = int(tx["gas"]) * 3 // 2 + 60_000
    tx.setdefault("type", 2)
    signed = account.sign_transaction(tx)
    try:
        tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
    except Web3RPCError as exc:
        raise ChainError(f"{what} from {account.address} was refused: {_reason(exc)}") from None
    receipt = w3.eth.wait_for_transaction_receipt(
        tx_hash, timeout=_RECEIPT_TIMEOUT, poll_latency=0.05
    )
    if receipt["status"] != 1:
        reason = "no reason given"
        replay = {key: tx[key] for key in ("from", "to", "data", "value") if key in tx}
        try:
            w3.eth.call(cast(TxParams, replay), block_identifier=receipt["blockNumber"] - 1)
        except (ContractLogicError, Web3RPCError) as exc:
            reason = _reason(exc)
        raise ChainError(
            f"{what} from {account.address} reverted in block {receipt['blockNumber']} "
            f"(tx {tx_hash.to_0x_hex()}): {reason}"
        )
    return receipt


def _deploy(w3: Web3, account: LocalAccount, name: str, *args: Any) -> str:
    artifact = load_artifact(name)
    factory = w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    receipt = send_transaction(w3, account, factory.constructor(*args), what=f"deploying {name}")
    address = receipt["contractAddress"]
    if address is None:
        raise ChainError(f"deploying {name}: the receipt names no contract address")
    return to_checksum_address(address)


def units(amount: Amount, decimals: int = 18) -> int:
    """Whole tokens (a Decimal, an int, or a decimal string) to smallest units, rounded down."""
    value = Decimal(amount) if not isinstance(amount, Decimal) else amount
    if not value.is_finite() or value < 0:
        raise ValueError(f"an amount must be a finite number >= 0, found {amount!r}")
    return int(value.scaleb(decimals).to_integral_value(rounding=ROUND_FLOOR))


# --- the deployment ---------------------------------------------------------------------


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
        abi = load_artifact("WETH9" if symbol == "WETH" else "ERC20").abi
        return _contract(w3, address=self.tokens[symbol], abi=abi)

    def router_contract(self, w3: Web3) -> Contract:
        return _contract(w3, address=self.router, abi=load_artifact("UniswapV2Router02").abi)

    def factory_contract(self, w3: Web3) -> Contract:
        return _contract(w3, address=self.factory, abi=load_artifact("UniswapV2Factory").abi)

    def pair_contract(self, w3: Web3, pair_symbol: str) -> Contract:
        return _contract(
            w3, address=self.pairs[_pair(pair_symbol)], abi=load_artifact("UniswapV2Pair").abi
        )

    def base_is_token0(self, pair_symbol: str) -> bool:
        base, quote = PAIRS[_pair(pair_symbol)]
        return int(self.tokens[base], 16) < int(self.tokens[quote], 16)


def _pair(symbol: str) -> str:
    if symbol not in PAIRS:
        raise ValueError(f"unknown pair {symbol!r}: expected one of {', '.join(PAIRS)}")
    return symbol


def deploy_dex(w3: Web3, deployer: LocalAccount = DEPLOYER) -> Dex:
    """Deploy WETH9, USD and WBTC test tokens (all supply to `deployer`), the factory
    (fee setter `deployer`), Router02, and the WETH/USD and WBTC/USD pairs.

    Raises ChainError when a pair is not at the CREATE2 address the pair init-code hash
    gives, or when the router's code does not hard-code that hash (it would then swap
    against addresses where no pair is).
    """
    weth = _deploy(w3, deployer, "WETH9")
    usd = _deploy(w3, deployer, "ERC20", TOKEN_SUPPLY)
    wbtc = _deploy(w3, deployer, "ERC20", TOKEN_SUPPLY)
    factory_address = _deploy(w3, deployer, "UniswapV2Factory", deployer.address)
    router_address = _deploy(w3, deployer, "UniswapV2Router02", factory_address, weth)
    factory = _contract(w3, address=factory_address, abi=load_artifact("UniswapV2Factory").abi)
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
    router = _contract(w3, address=router_address, abi=load_artifact("UniswapV2Router02").abi)
    if (
        to_checksum_address(router.functions.factory().call()) != factory_address
        or to_checksum_address(router.functions.WETH().call()) != weth
    ):
        raise ChainError("Router02 does not name the factory and WETH it was deployed with")
    for address in (weth, usd, wbtc):
        token = _contract(w3, address=address, abi=load_artifact("ERC20").abi)
        if token.functions.decimals().call() != 18:
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


def _ensure_balance(w3: Web3, dex: Dex, account: LocalAccount, symbol: str, needed: int) -> None:
    """Make `account` hold `needed` units of `symbol`: WETH is wrapped from its ETH; any
    other token must already be there."""
    token = dex.token(w3, symbol)
    held = int(token.functions.balanceOf(account.address).call())
    if held >= needed:
        return
    if symbol != "WETH":
        raise ChainError(
            f"{account.address} holds {held} units of {symbol}, needs {needed}: fund it first "
            "(fund(w3, dex, DEPLOYER, address, ...))"
        )
    send_transaction(
        w3, account, token.functions.deposit(), what="wrapping ETH into WETH", value=needed - held
    )


def _ensure_allowance(w3: Web3, dex: Dex, account: LocalAccount, symbol: str, needed: int) -> None:
    token = dex.token(w3, symbol)
    if int(token.functions.allowance(account.address, dex.router).call()) >= needed:
        return
    send_transaction(
        w3,
        account,
        token.functions.approve(dex.router, MAX_UINT256),
        what=f"approving the router for {symbol}",
    )


def set_next_block_time(w3: Web3, timestamp: int) -> None:
    """Mine the next block at `timestamp` (unix seconds), if that is after the latest block:
    a historical replay keeps the chain's clock on market time (swap deadlines use it)."""
    latest = int(w3.eth.get_block("latest")["timestamp"])
    if timestamp > latest:
        w3.provider.make_request("evm_setNextBlockTimestamp", [timestamp])  # type: ignore[arg-type]


def _deadline(w3: Web3) -> int:
    return int(w3.eth.get_block("latest")["timestamp"]) + 3600


def reserves(w3: Web3, dex: Dex, pair_symbol: str) -> tuple[int, int]:
    """(base reserve, quote reserve) of a pair in smallest units."""
    reserve0, reserve1, _ = dex.pair_contract(w3, pair_symbol).functions.getReserves().call()
    if dex.base_is_token0(pair_symbol):
        return int(reserve0), int(reserve1)
    return int(reserve1), int(reserve0)


def _price(pair_symbol: str, base_units: int, quote_units: int) -> Decimal:
    base, quote = PAIRS[pair_symbol]
    if base_units == 0 or quote_units == 0:
        raise ChainError(f"the {pair_symbol} pool has no liquidity: no price")
    scale = Decimal(10) ** (TOKEN_DECIMALS[base] - TOKEN_DECIMALS[quote])
    return _PRICE.multiply(_PRICE.divide(Decimal(quote_units), Decimal(base_units)), scale)


def pool_price(w3: Web3, dex: Dex, pair_symbol: str = "ETH/USD") -> Decimal:
    """The pool's price, quote per base (USD per ETH for "ETH/USD"), from `getReserves`."""
    return _price(_pair(pair_symbol), *reserves(w3, dex, pair_symbol))


def add_liquidity(
    w3: Web3,
    dex: Dex,
    provider: LocalAccount,
    base_amount: Amount,
    price_usd: Amount,
    *,
    pair_symbol: str = "ETH/USD",
) -> TxReceipt:
    """Add `base_amount` whole base tokens and `base_amount * price_usd` USD to a pool.

    For "ETH/USD" the WETH is wrapped from the provider's ETH as needed; WBTC and USD must
    be in the provider's account already (`fund`). An empty pool then sits at exactly
    `price_usd`. A pool that already has liquidity must be at that price (within 1e-9):
    Uniswap adds at the pool's own price, so a different one raises ChainError.
    """
    base, quote = PAIRS[_pair(pair_symbol)]
    price = Decimal(price_usd)
    base_units = units(base_amount, TOKEN_DECIMALS[base])
    quote_units = units(Decimal(base_amount) * price, TOKEN_DECIMALS[quote])
    if base_units == 0 or quote_units == 0:
        raise ValueError("add_liquidity needs a positive amount and price")
    base_reserve, quote_reserve = reserves(w3, dex, pair_symbol)
    if base_reserve and quote_reserve:
        current = _price(pair_symbol, base_reserve, quote_reserve)
        if abs(current - price) > price * Decimal("1e-9"):
            raise ChainError(
                f"the {pair_symbol} pool is at {current:.6f}, not {price}: move it there first "
                "(MarketMover) or add liquidity at its price"
            )
    _ensure_balance(w3, dex, provider, base, base_units)
    _ensure_balance(w3, dex, provider, quote, quote_units)
    _ensure_allowance(w3, dex, provider, base, base_units)
    _ensure_allowance(w3, dex, provider, quote, quote_units)
    router = dex.router_contract(w3)
    first = base_reserve == 0 and quote_reserve == 0
    return send_transaction(
        w3,
        provider,
        router.functions.addLiquidity(
            dex.tokens[base],
            dex.tokens[quote],
            base_units,
            quote_units,
            base_units if first else base_units * 999 // 1000,
            quote_units if first else quote_units * 999 // 1000,
            provider.address,
            _deadline(w3),
        ),
        what=f"adding liquidity to {pair_symbol}",
    )


def fund(
    w3: Web3,
    dex: Dex,
    funder: LocalAccount,
    address: str,
    eth: Amount = 0,
    weth: Amount = 0,
    usd: Amount = 0,
    wbtc: Amount = 0,
) -> None:
    """Send `address` whole amounts of ETH (for gas) and tokens from `funder`.

    WETH is wrapped from the funder's ETH as needed; USD and WBTC come from the funder's
    balance (the deployer holds their whole supply).
    """
    recipient = to_checksum_address(address)
    if (wei := units(eth)) > 0:
        send_transaction(
            w3, funder, {"to": recipient, "value": Wei(wei)}, what=f"sending {eth} ETH"
        )
    for symbol, amount in (("WETH", weth), ("USD", usd), ("WBTC", wbtc)):
        amount_units = units(amount, TOKEN_DECIMALS[symbol])
        if amount_units == 0:
            continue
        _ensure_balance(w3, dex, funder, symbol, amount_units)
        send_transaction(
            w3,
            funder,
            dex.token(w3, symbol).functions.transfer(recipient, amount_units),
            what=f"sending {amount} {symbol}",
        )


def balances(w3: Web3, dex: Dex, address: str) -> dict[str, int]:
    """ETH, WETH, USD and WBTC held by `address`, in smallest units (wei)."""
    holder = to_checksum_address(address)
    held = {"ETH": int(w3.eth.get_balance(holder))}
    for symbol in ("WETH", "USD", "WBTC"):
        held[symbol] = int(dex.token(w3, symbol).functions.balanceOf(holder).call())
    return held


def swap_input(reserve_in: int, reserve_out: int, target_ratio: Decimal) -> int:
    """The input amount that takes a Uniswap V2 pool (0.3% fee) from reserves
    (`reserve_in`, `reserve_out`) to `reserve_in' / reserve_out' == target_ratio`.

    With a = input, the pair pays out 997 a R_out / (1000 R_in + 997 a), which leaves
    R_out' = 1000 R_in R_out / (1000 R_in + 997 a); so (R_in + a) / R_out' = T is the
    quadratic 997 a^2 + 1997 R_in a + 1000 R_in (R_in - T R_out) = 0, whose positive root
    is the answer (0 when the ratio is already at or above the target).
    """
    r_in, r_out = Decimal(reserve_in), Decimal(reserve_out)
    c = _PRICE.multiply(1000 * r_in, r_in - _PRICE.multiply(target_ratio, r_out))
    if c >= 0:
        return 0
    b = 1997 * r_in
    root = _PRICE.sqrt(b * b - 4 * 997 * c)
    return int(((root - b) / (2 * 997)).to_integral_value(rounding=ROUND_FLOOR))


class MarketMover:
    """An account of its own (not the agent's) that trades a pool to a target price.

    It needs funds: WETH is wrapped from its ETH as needed; USD and WBTC must be sent to it
    first (`deploy_market` does so).
    """

    def __init__(self, w3: Web3, dex: Dex, account: LocalAccount = MOVER) -> None:
        self.w3 = w3
        self.dex = dex
        self.account = account

    def move_to(
        self, price: Amount, pair_symbol: str = "ETH/USD", *, tolerance: Decimal = Decimal("0.001")
    ) -> Decimal:
        """Swap through the router (swapExactTokensForTokens) until the pool is at `price`
        (quote per base); returns the pool price after, within `tolerance` (relative).

        One swap normally lands within 1e-12; up to two more correct any rounding. Raises
        ChainError when the pool does not get within `tolerance`.
        """
        base, quote = PAIRS[_pair(pair_symbol)]
        target = Decimal(price)
        if not target.is_finite() or target <= 0:
            raise ValueError(f"a target price must be above 0, found {price!r}")
        # The target in raw units: quote units per base unit.
        raw_target = target.scaleb(TOKEN_DECIMALS[quote] - TOKEN_DECIMALS[base])
        current = pool_price(self.w3, self.dex, pair_symbol)
        for _ in range(3):
            if abs(current - target) <= target * Decimal("1e-9"):
                break
            base_reserve, quote_reserve = reserves(self.w3, self.dex, pair_symbol)
            if target > current:
                # Buy base with quote: quote reserve / base reserve rises to the target.
                token_in, token_out = quote, base
                amount = swap_input(quote_reserve, base_reserve, raw_target)
            else:
                token_in, token_out = base, quote
                amount = swap_input(base_reserve, quote_reserve, _PRICE.divide(1, raw_target))
            if amount == 0:
                break
            self._swap(token_in, token_out, amount)
            current = pool_price(self.w3, self.dex, pair_symbol)
        if abs(current - target) > target * tolerance:
            raise ChainError(
                f"could not move {pair_symbol} to {target}: the pool is at {current:.6f}"
            )
        return current

    def _swap(self, token_in: str, token_out: str, amount: int) -> TxReceipt:
        _ensure_balance(self.w3, self.dex, self.account, token_in, amount)
        _ensure_allowance(self.w3, self.dex, self.account, token_in, amount)
        router = self.dex.router_contract(self.w3)
        return send_transaction(
            self.w3,
            self.account,
            router.functions.swapExactTokensForTokens(
                amount,
                0,  # the mover takes whatever the pool gives: the price is checked after
                [self.dex.tokens[token_in], self.dex.tokens[token_out]],
                self.account.address,
                _deadline(self.w3),
            ),
            what=f"moving the market: {amount} units of {token_in} for {token_out}",
        )


def deploy_market(
    w3: Web3,
    eth_price: Amount,
    btc_price: Amount,
    *,
    eth_liquidity: Amount = 1000,
    btc_liquidity: Amount = 100,
    mover_usd: Amount = 100_000_000,
    mover_wbtc: Amount = 1000,
) -> Dex:
    """Deploy the DEX, fund the liquidity provider and the market mover, and seed both pools:
    `eth_liquidity` WETH at `eth_price` and `btc_liquidity` WBTC at `btc_price`.

    The mover gets enough USD and WBTC (and wraps its own ETH) to move either pool by
    ±50% several times over.
    """
    dex = deploy_dex(w3, DEPLOYER)
    fund(
        w3,
        dex,
        DEPLOYER,
        LIQUIDITY_PROVIDER.address,
        usd=Decimal(eth_liquidity) * Decimal(eth_price)
        + Decimal(btc_liquidity) * Decimal(btc_price),
        wbtc=btc_liquidity,
    )
    fund(w3, dex, DEPLOYER, MOVER.address, usd=mover_usd, wbtc=mover_wbtc)
    add_liquidity(w3, dex, LIQUIDITY_PROVIDER, eth_liquidity, eth_price, pair_symbol="ETH/USD")
    add_liquidity(w3, dex, LIQUIDITY_PROVIDER, btc_liquidity, btc_price, pair_symbol="BTC/USD")
    return dex


def pool_ticks(w3: Web3, dex: Dex, pair_symbol: str = "ETH/USD") -> PoolTicks:
    """The on-chain market-data adapter for one of the deployment's pools."""
    base, quote = PAIRS[_pair(pair_symbol)]
    return PoolTicks(
        w3,
        dex.pairs[pair_symbol],
        dex.base_is_token0(pair_symbol),
        TOKEN_DECIMALS[base],
        TOKEN_DECIMALS[quote],
        pair_symbol,
    )


# --- the enclave config -------------------------------------------------------------------

DEFAULT_LLM_STRATEGY = """You are the trading policy of an autonomous agent on the ETH/USD market.
Each message is the market view as JSON. Copy trend, can_buy and can_sell from it, then act:
- trend up and can_buy true: buy, amount = buy_amount.
- trend down and can_sell true: sell, amount = sell_amount.
- otherwise: hold, amount 0."""


def llm_examples() -> list[tuple[str, str]]:
    """The worked examples of examples/enclave-llm.toml, for this deployment's ETH/USD pair
    (the example speaks of USDT; here the stablecoin is USD)."""
    import tomllib

    example = Path(__file__).resolve().parents[2] / "examples" / "enclave-llm.toml"
    config = tomllib.loads(example.read_text(encoding="utf-8"))
    return [
        (item["market"].replace("USDT", "USD"), item["decision"].replace("USDT", "USD"))
        for item in config["policy"]["llm"]["examples"]
    ]


def _toml_string(text: str) -> str:
    return json.dumps(text)  # a JSON string is a valid TOML basic string


def enclave_config_toml(
    dex: Dex,
    owner_public_hex: str,
    *,
    policy: Literal["rule", "llm"] = "rule",
    clock: Literal["wall", "replay"] = "replay",
    max_notional_per_trade_usd: Amount = 1000,
    max_notional_per_day_usd: Amount = 5000,
    max_slippage_bps: int = 100,
    max_fee_per_gas_gwei: Amount = 100,
    min_seconds_between_trades: int = 3600,
    max_price_move_percent: Amount = 20,
    decision_interval_seconds: int = 3600,
    short_window: int = 12,
    long_window: int = 48,
    trade_fraction: Amount = "0.25",
    slippage_bps: int = 50,
    llm_strategy: str = DEFAULT_LLM_STRATEGY,
    llm_model_sha256: str | None = None,
    path: Path | None = None,
) -> str:
    """The measured enclave config (TOML) for this deployment: its chain id and router,
    WETH/USD/WBTC, the ETH/USD and BTC/USD pairs, guardrails allowing this chain and
    these tokens, and the given limits and owner key. Also written to `path` when given.

    Raises ValueError for an owner key that is not 32 bytes of hex.
    """
    owner = owner_public_hex.removeprefix("0x")
    if len(owner) != 64 or any(c not in "0123456789abcdefABCDEF" for c in owner):
        raise ValueError(f"the owner key must be 32 bytes of hex, found {owner_public_hex!r}")
    tokens = "\n".join(
        f'[tokens.{symbol}]\naddress = "{address}"\ndecimals = {TOKEN_DECIMALS[symbol]}\n'
        for symbol, address in dex.tokens.items()
    )
    pairs = "\n".join(
        f'[[pairs]]\nsymbol = "{symbol}"\nbase = "{base}"\nquote = "{quote}"\n'
        for symbol, (base, quote) in PAIRS.items()
    )
    llm = ""
    if policy == "llm":
        model = "" if llm_model_sha256 is None else f'model_sha256 = "{llm_model_sha256}"\n'
        examples = "".join(
            f"\n[[policy.llm.examples]]\nmarket = {_toml_string(market)}\n"
            f"decision = {_toml_string(decision)}\n"
            for market, decision in llm_examples()
        )
        llm = f"\n[policy.llm]\n{model}strategy = {_toml_string(llm_strategy)}\n{examples}"
    text = f"""\
# tee-agent enclave configuration for a local Uniswap V2 deployment (host.chain.localnet).
# All of it is measured: change a value and the agent's attested identity changes with it.

[chain]
chain_id = {dex.chain_id}
router = "{dex.router}"   # Uniswap V2 Router02

{tokens}
{pairs}
[market]
clock = "{clock}"
max_price_move_percent = "{max_price_move_percent}"
decision_interval_seconds = {decision_interval_seconds}

[guardrails]
allowed_chain_ids = [{dex.chain_id}]
allowed_tokens = [{", ".join(f'"{symbol}"' for symbol in dex.tokens)}]
max_notional_per_trade_usd = "{max_notional_per_trade_usd}"
max_notional_per_day_usd = "{max_notional_per_day_usd}"
max_slippage_bps = {max_slippage_bps}
max_fee_per_gas_gwei = "{max_fee_per_gas_gwei}"
min_seconds_between_trades = {min_seconds_between_trades}

[policy]
kind = "{policy}"

[policy.rule]
short_window = {short_window}
long_window = {long_window}
trade_fraction = "{trade_fraction}"
slippage_bps = {slippage_bps}
{llm}
[owner]
public_key = "{owner.lower()}"
"""
    if path is not None:
        path.write_text(text, encoding="utf-8")
    return text
