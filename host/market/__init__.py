"""Market-data adapters: where the ticks the host relays into the enclave come from."""

from host.market.replay import (
    Candle,
    MarketDataError,
    ReplaySource,
    read_candles,
    read_reserves,
)

__all__ = ["Candle", "MarketDataError", "ReplaySource", "read_candles", "read_reserves"]
