"""Evidence formats: bytes to frozen models, nothing else."""
