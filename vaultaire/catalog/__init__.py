"""The metadata store: tenants, keys, containers and artifacts. The source of truth."""

from vaultaire.catalog.interface import Catalog

__all__ = ["Catalog"]
