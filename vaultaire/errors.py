"""Domain errors, raised deep (catalog, engine, drivers) and translated at the edge.

They sit on the ground floor beside ``model`` so the catalog can raise them
without importing the engine; the S3 layer maps each to one S3 error code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vaultaire.model import Artifact


class VaultaireError(Exception):
    """Base of every domain error."""


class NoSuchContainer(VaultaireError):
    pass


class ContainerExists(VaultaireError):
    pass


class ContainerNotEmpty(VaultaireError):
    pass


class ContainerNameTaken(VaultaireError):
    """Another tenant holds the name: container names are unique across the deployment."""


class NoSuchArtifact(VaultaireError):
    """No such key; ``marker`` is the delete marker that is its current version, if one is."""

    def __init__(self, message: str = "", marker: Artifact | None = None) -> None:
        super().__init__(message)
        self.marker = marker


class NoSuchVersion(NoSuchArtifact):
    """The key has no version of that id (the message is the id)."""


class DeleteMarkerAddressed(VaultaireError):
    """A read or change addressed a delete marker by its version id (S3's 405)."""

    def __init__(self, message: str = "", marker: Artifact | None = None) -> None:
        super().__init__(message)
        self.marker = marker


class PreconditionFailed(VaultaireError):
    """A write condition did not hold when the request arrived."""


class ConditionalConflict(VaultaireError):
    """A write condition held when the request arrived but not at its commit:
    a concurrent writer won in between (S3's 409 ConditionalRequestConflict)."""


class NoSuchUpload(VaultaireError):
    pass


class InvalidPart(VaultaireError):
    """A listed part was never uploaded or its ETag does not match."""


class InvalidPartOrder(VaultaireError):
    pass


class EntityTooSmall(VaultaireError):
    """A part other than the last is under the minimum part size."""


class IncompleteBody(VaultaireError):
    """The client sent fewer bytes than it announced, or went away."""


class Cancelled(VaultaireError):
    """The request this work was for is gone."""


class QuotaExceeded(VaultaireError):
    """The write would take the tenant past its quota; the message says which and by how much."""


class InsufficientStorage(VaultaireError):
    """A disk is below its free-space reserve, or full: the write is refused, reads and deletes go on."""


class NoSuchTenant(VaultaireError):
    pass


class TenantExists(VaultaireError):
    pass


class TenantNotEmpty(VaultaireError):
    """A tenant still owning containers cannot be deleted (its data would be orphaned)."""


class DriverError(VaultaireError):
    """The byte store failed; the message says how, without secrets or paths of keys."""


class CatalogUnavailable(VaultaireError):
    """The catalog's database cannot be reached or answer in time (a PostgreSQL restart, a
    network cut, a statement timeout). Worth retrying shortly; a write cut off at its commit
    may have committed, as with any database."""


class BlobWithdrawn(VaultaireError):
    """A write's commit found its new blob's intent gone: the blob was given up meanwhile (the
    write had already failed for its caller and was withdrawn, or its writer was taken for
    dead), so it may be deleted already. The commit is refused; the write must be sent again."""


class DriverUnavailable(DriverError):
    """The byte store cannot be reached right now (connection refused, timed out, 5xx):
    worth retrying later, unlike a store that answered and refused."""


class NoSuchPlacement(VaultaireError):
    """A container was asked for a placement the configuration does not name."""


class MigrationInProgress(DriverUnavailable):
    """What was asked needs blobs that a migration is moving between placements: retry shortly."""


class NoSuchUser(VaultaireError):
    pass


class UserExists(VaultaireError):
    pass


# -- SSE-KMS keys (encryption/kms.py)


class NoSuchKmsKey(VaultaireError):
    """No KMS key has this id, alias or ARN (or the tenant may not use it)."""


class KmsKeyDisabled(VaultaireError):
    """The KMS key exists but is disabled: nothing is wrapped or unwrapped with it."""


class KmsKeyExists(VaultaireError):
    pass
