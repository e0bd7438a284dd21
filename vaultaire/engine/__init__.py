"""The storage engine: the domain's behaviour over a catalog and drivers."""

from vaultaire.engine.engine import Engine
from vaultaire.engine.hashing import Hasher, Verifier
from vaultaire.engine.pipe import ChunkSource
from vaultaire.engine.writes import CopyPlan

__all__ = ["ChunkSource", "CopyPlan", "Engine", "Hasher", "Verifier"]
