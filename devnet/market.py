"""The market on a deployed DEX: funded accounts, router allowances, seeded pools.

`fund` sends an account ETH and tokens, `add_liquidity` adds to a pool at a given price, and
`deploy_market` does all of it at once: the DEX (`devnet.dex.deploy_dex`), the liquidity
provider and the market mover funded, both pools seeded at given prices.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Final

from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address
from web3 import Web3
from web3.types import TxReceipt, Wei

from devnet.accounts import DEPLOYER, LIQUIDITY_PROVIDER, MOVER
from devnet.dex import (
    TOKEN_DECIMALS,
    Dex,
    deploy_dex,
    pair_tokens,
    reserves,
    reserves_price,
    swap_deadline,
)
from host.chain.transact import Amount, ChainError, send_transaction, units

MAX_UINT256: Final = 2**256 - 1


def ensure_balance(w3: Web3, dex: Dex, account: LocalAccount, symbol: str, needed: int) -> None:
    """Make `account` hold `needed` units of `symbol`: WETH is wrapped from its ETH; any
    other token must already be there.

    Raises:
        ChainError: the account holds too little of a token other than WETH, or wrapping failed.
    """
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


def ensure_allowance(w3: Web3, dex: Dex, account: LocalAccount, symbol: str, needed: int) -> None:
    """Let the router spend at least `needed` units of `account`'s `symbol` (approving it
    for everything when it may not yet).

    Raises:
        ChainError: the approval failed.
    """
    token = dex.token(w3, symbol)
    if int(token.functions.allowance(account.address, dex.router).call()) >= needed:
        return
    send_transaction(
        w3,
        account,
        token.functions.approve(dex.router, MAX_UINT256),
        what=f"approving the router for {symbol}",
    )


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
    `price_usd`.

    Raises:
        ChainError: the pool already has liquidity at another price than `price_usd` (beyond
            1e-9: Uniswap adds at the pool's own price), or a transaction failed.
        ValueError: an unknown pair, or a zero amount or price.
    """
    base, quote = pair_tokens(pair_symbol)
    price = Decimal(price_usd)
    base_units = units(base_amount, TOKEN_DECIMALS[base])
    quote_units = units(Decimal(base_amount) * price, TOKEN_DECIMALS[quote])
    if base_units == 0 or quote_units == 0:
        raise ValueError("add_liquidity needs a positive amount and price")
    base_reserve, quote_reserve = reserves(w3, dex, pair_symbol)
    if base_reserve and quote_reserve:
        current = reserves_price(pair_symbol, base_reserve, quote_reserve)
        if abs(current - price) > price * Decimal("1e-9"):
            raise ChainError(
                f"the {pair_symbol} pool is at {current:.6f}, not {price}: move it there first "
                "(MarketMover) or add liquidity at its price"
            )
    ensure_balance(w3, dex, provider, base, base_units)
    ensure_balance(w3, dex, provider, quote, quote_units)
    ensure_allowance(w3, dex, provider, base, base_units)
    ensure_allowance(w3, dex, provider, quote, quote_units)
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
            swap_deadline(w3),
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

    Raises:
        ChainError: the funder holds too little, or a transaction failed.
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
        ensure_balance(w3, dex, funder, symbol, amount_units)
        send_transaction(
            w3,
            funder,
            dex.token(w3, symbol).functions.transfer(recipient, amount_units),
            what=f"sending {amount} {symbol}",
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

    Raises:
        ChainError: the deployment is not what it must be, or a transaction failed.
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
