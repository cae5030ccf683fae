"""Parse and verify remote-attestation evidence (Intel TDX/SGX DCAP, AWS Nitro, AMD SEV-SNP)."""
