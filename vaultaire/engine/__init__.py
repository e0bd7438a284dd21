"""The storage engine: the domain's behaviour over a catalog and drivers."""

from vaultaire.engine.engine import ChunkSource, CopyPlan, Engine, Verifier
from vaultaire.engine.hashing import Hasher

__all__ = ["ChunkSource", "CopyPlan", "Engine", "Hasher", "Verifier"]
