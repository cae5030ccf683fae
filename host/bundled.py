"""Where the bundled data is: inside an installed wheel (the package `tee_agent_data`) or in
this checkout's data/ directory."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

_CHECKOUT_DATA = Path(__file__).resolve().parent.parent / "data"
ETH_USDT_CANDLES = "eth-usdt-binance-1h-2022-2023.csv"


def bundled_market_file(name: str = ETH_USDT_CANDLES) -> Path:
    """The bundled market data file `name` (see data/market/README.md for what each is).

    The path may not exist when neither a wheel nor a checkout provides the data; callers
    reading it report the missing file.
    """
    try:
        installed = Path(str(resources.files("tee_agent_data") / "market" / name))
    except ModuleNotFoundError:
        installed = None
    if installed is not None and installed.is_file():
        return installed
    return _CHECKOUT_DATA / "market" / name
