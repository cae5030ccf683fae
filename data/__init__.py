"""The bundled data (real market candles, with their provenance in market/README.md).

Installed from a wheel, this directory is the package `tee_agent_data`; in a checkout it is
read from here (`host.bundled.bundled_market_file`).
"""
