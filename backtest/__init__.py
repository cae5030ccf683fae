"""Backtesting: a policy over historical candles through the enclave's own decision path.

`tee-agent backtest` (`backtest.cli`) reads candles (`backtest.candles`), drives the real
`enclave.decisions.DecisionEngine` one candle at a time with a fresh state and a throwaway
key, fills what it signs at the candle's close (`backtest.fills`, `backtest.simulation`),
and reports the figures (`backtest.summary`) and a chart (`backtest.chart`). No chain: see
docs/backtest.md for what is simulated and what is not.
"""
