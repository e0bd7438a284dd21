"""`vaultaire-admin`: tenants, keys, quotas and usage, on a data directory, beside a running daemon."""
