"""The trusted side: platform backends, keys, sealing, policy, guardrails, signer, receipts."""
