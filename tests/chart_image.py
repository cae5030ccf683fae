"""Open a chart PNG the way an image viewer does (decoded in full, not just its header) and
look for the colours the chart draws its trades in."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
from matplotlib import image

from backtest.chart import BUY_COLOUR, CHART_HEIGHT, CHART_WIDTH, SELL_COLOUR


def open_chart(path: Path) -> npt.NDArray[np.uint8]:
    """The chart's pixels as RGB bytes; asserts it is a whole PNG of the documented size and
    not blank."""
    png = path.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    pixels = image.imread(path, format="png")  # decodes every row: a truncated file fails
    assert pixels.shape[:2] == (CHART_HEIGHT, CHART_WIDTH), pixels.shape
    rgb = np.round(pixels[:, :, :3] * 255).astype(np.uint8)
    assert len(np.unique(rgb.reshape(-1, 3), axis=0)) > 16, "the chart is (almost) blank"
    return rgb


def shows_colour(rgb: npt.NDArray[np.uint8], colour: str) -> bool:
    """Whether any pixel is exactly `colour` ("#rrggbb")."""
    wanted = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)], dtype=np.uint8)
    return bool(np.any(np.all(rgb == wanted, axis=2)))


def shows_trades(rgb: npt.NDArray[np.uint8], buys: int, sells: int) -> bool:
    """Whether the buy and the sell markers are drawn exactly when there are such trades."""
    return shows_colour(rgb, BUY_COLOUR) == (buys > 0) and shows_colour(rgb, SELL_COLOUR) == (
        sells > 0
    )
