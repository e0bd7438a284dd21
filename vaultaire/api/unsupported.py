"""Headers that ask for a protection Vaultaire does not give yet: refused, never ignored.

A storage server that answers 200 to "encrypt this with my key" or "lock this
object until 2030" and then does neither has lied about the one thing its
client cared about. So each such header is a row below, checked on the one
request path after authentication and before the body is read, and answered
501 NotImplemented naming the header, as S3 answers a header it does not
support. The feature that honours a header removes its row.

``x-amz-expected-bucket-owner`` is different: it asks nothing new, it is an
assertion, and a wrong one is 403 AccessDenied, as S3 answers it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping

from attrs import frozen

from vaultaire.api.errors import S3Error

MESSAGE = "A header you provided implies functionality that is not implemented"


def _always(value: str) -> bool:
    return True


def _not_empty(value: str) -> bool:
    return value.strip() != ""


@frozen
class Row:
    """A header (or every header with this prefix) and the values of it that ask for more than we give."""

    name: str
    asks: Callable[[str], bool]
    what: str  # what the client asks for, for the reader of this table
    prefix: bool = False
    operations: frozenset[str] | None = None  # None: wherever it is sent
    honoured: frozenset[str] = frozenset()  # operations that give what it asks: never refused there


# Where encryption at rest is built (vaultaire/api/encryption.py): every write that makes an object.
_SSE_WRITES = frozenset({"PutObject", "CopyObject", "CreateMultipartUpload", "PostObject"})
_SSE_C_KEY = _SSE_WRITES | frozenset(
    {"GetObject", "HeadObject", "UploadPart", "UploadPartCopy", "CompleteMultipartUpload", "GetObjectAttributes"}
)
_SSE_C_SOURCE = frozenset({"CopyObject", "UploadPartCopy"})


# Where x-amz-acl and x-amz-grant-* are honoured (POST Object takes its form field acl only).
_ACL_WRITES = frozenset(
    {"CreateBucket", "PutObject", "CopyObject", "CreateMultipartUpload", "PutBucketAcl", "PutObjectAcl"}
)
_TAGGED_WRITES = frozenset({"PutObject", "CopyObject", "CreateMultipartUpload"})
# Where a new version is written with its own Object Lock (api/object_lock.py).
_LOCK_WRITES = frozenset({"PutObject", "CopyObject", "CreateMultipartUpload", "PostObject"})


def _dsse(value: str) -> bool:
    # Dual-layer SSE-KMS. Other values that are not AES256 or aws:kms name no method at all:
    # 400 (vaultaire/api/encryption.py).
    return value.strip().startswith("aws:kms:dsse")


UNSUPPORTED: tuple[Row, ...] = (
    Row(
        "x-amz-server-side-encryption-customer-",
        _always,
        "SSE-C: encryption with the client's key",
        prefix=True,
        honoured=_SSE_C_KEY,
    ),
    Row(
        "x-amz-copy-source-server-side-encryption-customer-",
        _always,
        "SSE-C: decrypting the copy source with the client's key",
        prefix=True,
        honoured=_SSE_C_SOURCE,
    ),
    # DSSE-KMS everywhere; SSE-S3 and SSE-KMS where no write honours them.
    Row("x-amz-server-side-encryption", _dsse, "dual-layer SSE-KMS encryption at rest"),
    Row("x-amz-server-side-encryption", _always, "encryption at rest on this operation", honoured=_SSE_WRITES),
    Row("x-amz-server-side-encryption-aws-kms-key-id", _always, "SSE-KMS with a given key", honoured=_SSE_WRITES),
    Row("x-amz-server-side-encryption-context", _always, "SSE-KMS encryption context", honoured=_SSE_WRITES),
    Row("x-amz-server-side-encryption-bucket-key-enabled", _always, "SSE-KMS bucket keys", honoured=_SSE_WRITES),
    # versioning (api/versioning.py): MFA delete is the one part of it not given.
    Row("x-amz-mfa", _always, "MFA delete: a device's code required to delete versions"),
    # Object Lock (api/object_lock.py): honoured where a new version is written.
    Row("x-amz-object-lock-mode", _always, "object lock retention (GOVERNANCE, COMPLIANCE)", honoured=_LOCK_WRITES),
    Row("x-amz-object-lock-retain-until-date", _always, "object lock retention", honoured=_LOCK_WRITES),
    Row("x-amz-object-lock-legal-hold", _always, "object lock legal hold", honoured=_LOCK_WRITES),
    # ACLs are honoured where S3 takes them (api/acl_operations.py); elsewhere only what every
    # object already is (private, bucket-owner-full-control) is accepted.
    Row(
        "x-amz-acl",
        lambda v: v.strip().lower() not in ("private", "bucket-owner-full-control"),
        "a canned ACL granting access to others",
        honoured=_ACL_WRITES | frozenset({"PostObject"}),
    ),
    Row("x-amz-grant-", _always, "an ACL grant", prefix=True, honoured=_ACL_WRITES),
    # Object tags are stored by the writes that take them (api/tagging.py); a POST form names them
    # "tagging" (a Tagging document), so a form field "x-amz-tagging" is still refused.
    Row("x-amz-tagging", _not_empty, "object tags", honoured=_TAGGED_WRITES),
    Row("x-amz-website-redirect-location", _not_empty, "a website redirect"),
)

# POST Object form fields that mean the header of the same effect.
FORM_FIELDS = {"acl": "x-amz-acl"}


# The table indexed: most of a request's headers are in no row, and are passed over at once.
_EXACT = {row.name: tuple(r for r in UNSUPPORTED if r.name == row.name and not r.prefix) for row in UNSUPPORTED}
_PREFIXED = tuple(row for row in UNSUPPORTED if row.prefix)
_FAMILY = "x-amz-"
assert all(row.name.startswith(_FAMILY) for row in UNSUPPORTED)


# Each x-amz-* name's rows, found once: a request's headers are mostly the same few names
# (SSE-C's three, the SDKs' date and content hash), asked about on every request. Bounded, as
# the names are the client's to choose.
@functools.lru_cache(maxsize=4096)
def _rows_for(name: str) -> tuple[Row, ...]:
    return _matching(name)


def _matching(name: str) -> tuple[Row, ...]:
    return _EXACT.get(name, ()) + tuple(row for row in _PREFIXED if name.startswith(row.name))


def refuse(operation: str, headers: Mapping[str, str]) -> None:
    """NotImplemented (501) if a header asks for what this server does not do. Names are lower case."""
    for name in sorted([name for name in headers if name.startswith(_FAMILY)]):
        for row in _rows_for(name):
            if row.operations is not None and operation not in row.operations:
                continue
            if operation in row.honoured:
                continue
            if row.asks(headers[name]):
                raise S3Error("NotImplemented", MESSAGE, Header=name)


def refuse_form(fields: Mapping[str, str]) -> None:
    """The same for a POST Object form's fields (lower-case names)."""
    refuse("PostObject", {FORM_FIELDS.get(name, name): value for name, value in fields.items()})


def check_owner(headers: Mapping[str, str], owner_id: str, name: str = "x-amz-expected-bucket-owner") -> None:
    """403 if the request says its bucket (``name``: or its copy source's) belongs to someone else.

    ``owner_id`` is the owner of the container the request names, whoever asks (the
    authorization step calls this once it has found the container, and the source's).
    """
    expected = headers.get(name)
    if expected is not None and expected.strip() != owner_id:
        raise S3Error("AccessDenied")
