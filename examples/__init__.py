"""Example configs: the enclave's (rule and LLM policy) and a validation policy for TDX.

Installed from a wheel, this directory is the package `tee_agent_examples`; in a checkout it
is read from here (`host.bundled.bundled_example`).
"""
