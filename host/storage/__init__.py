"""Durable storage for the host: sealed states, receipts, transactions (SQLite or PostgreSQL)."""
