"""The storage engine: the domain's behaviour over a catalog and drivers."""

from vaultaire.engine.engine import ChunkSource, Engine

__all__ = ["ChunkSource", "Engine"]
