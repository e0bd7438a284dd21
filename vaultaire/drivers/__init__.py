"""Byte stores behind one interface. A driver never sees a tenant, a key or an S3 word."""

from vaultaire.drivers.interface import BlobReader, BlobWriter, Driver

__all__ = ["BlobReader", "BlobWriter", "Driver"]
