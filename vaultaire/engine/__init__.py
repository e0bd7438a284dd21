"""The storage engine: the domain's behaviour over a catalog and drivers."""

from vaultaire.engine.engine import CopyPlan, Engine
from vaultaire.engine.hashing import Hasher, Verifier
from vaultaire.engine.pipe import ChunkSource

__all__ = ["ChunkSource", "CopyPlan", "Engine", "Hasher", "Verifier"]
