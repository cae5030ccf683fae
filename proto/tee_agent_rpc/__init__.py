"""Generated gRPC stubs for tee-agent's protos (regenerate with scripts/gen-proto)."""
