"""TEE platform backends: measurement, quote(report_data), seal and unseal."""
