"""Vaultaire: an S3-compatible object storage daemon on Twisted."""

__version__ = "0.1.0"
