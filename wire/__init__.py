"""The values that cross between the enclave, the host and the clients, and the one
conversion of each to and from its message in proto/tee_agent_rpc/messages.proto."""
