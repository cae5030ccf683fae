"""Where the bundled data and examples are: inside an installed wheel (the packages
`tee_agent_data` and `tee_agent_examples`) or in this checkout's data/ and examples/."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

_CHECKOUT = Path(__file__).resolve().parent.parent
ETH_USDT_CANDLES = "eth-usdt-binance-1h-2022-2023.csv"


def bundled_market_file(name: str = ETH_USDT_CANDLES) -> Path:
    """The bundled market data file `name` (see data/market/README.md for what each is).

    The path may not exist when neither a wheel nor a checkout provides the data; callers
    reading it report the missing file.
    """
    return _bundled("tee_agent_data", "data", "market", name)


def bundled_example(name: str) -> Path:
    """The example file `name` of examples/ (enclave.toml, enclave-llm.toml, ...); as
    `bundled_market_file`, the path may not exist."""
    return _bundled("tee_agent_examples", "examples", name)


def _bundled(package: str, checkout_dir: str, *parts: str) -> Path:
    try:
        installed = Path(str(resources.files(package).joinpath(*parts)))
    except ModuleNotFoundError:
        installed = None
    if installed is not None and installed.is_file():
        return installed
    return _CHECKOUT.joinpath(checkout_dir, *parts)
