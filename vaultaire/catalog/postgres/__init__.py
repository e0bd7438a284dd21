"""The catalog on PostgreSQL, for many gateways sharing one namespace (issue 17)."""

from vaultaire.catalog.postgres.catalog import PostgresCatalog

__all__ = ["PostgresCatalog"]
