"""The untrusted host: public API, enclave supervisor, storage, broadcaster and the CLI."""
