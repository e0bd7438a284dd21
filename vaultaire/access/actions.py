"""Which S3 action each operation is checked as, and on which resource: one table.

The names are the ones AWS documents for each API operation
(https://docs.aws.amazon.com/AmazonS3/latest/userguide/using-with-s3-policy-actions.html),
so a policy written for S3 means the same here. Operations with a ``versionId``
become their ``...Version...`` action, as on S3.
"""

from __future__ import annotations

from collections.abc import Mapping

from attrs import frozen


@frozen
class ActionRow:
    action: str
    level: str  # "service" (no resource), "bucket" (arn:aws:s3:::bucket) or "object" (arn:aws:s3:::bucket/key)
    versioned: str | None = None  # the action when the request names a version (?versionId=)


def _b(action: str) -> ActionRow:
    return ActionRow(action, "bucket")


def _o(action: str, versioned: str | None = None) -> ActionRow:
    return ActionRow(action, "object", versioned)


# Operation name (vaultaire/api/operations.py, and the AWS API name of operations still to come) -> its check.
ACTIONS: Mapping[str, ActionRow] = {
    "ListBuckets": ActionRow("s3:ListAllMyBuckets", "service"),
    # buckets
    "CreateBucket": _b("s3:CreateBucket"),
    "DeleteBucket": _b("s3:DeleteBucket"),
    "HeadBucket": _b("s3:ListBucket"),
    "GetBucketLocation": _b("s3:GetBucketLocation"),
    "ListObjects": _b("s3:ListBucket"),
    "ListObjectsV2": _b("s3:ListBucket"),
    "ListObjectVersions": _b("s3:ListBucketVersions"),
    "ListMultipartUploads": _b("s3:ListBucketMultipartUploads"),
    "GetBucketVersioning": _b("s3:GetBucketVersioning"),
    "PutBucketVersioning": _b("s3:PutBucketVersioning"),
    "GetBucketCors": _b("s3:GetBucketCORS"),
    "PutBucketCors": _b("s3:PutBucketCORS"),
    "DeleteBucketCors": _b("s3:PutBucketCORS"),
    "GetBucketEncryption": _b("s3:GetEncryptionConfiguration"),
    "PutBucketEncryption": _b("s3:PutEncryptionConfiguration"),
    "DeleteBucketEncryption": _b("s3:PutEncryptionConfiguration"),
    "GetBucketPolicy": _b("s3:GetBucketPolicy"),
    "PutBucketPolicy": _b("s3:PutBucketPolicy"),
    "DeleteBucketPolicy": _b("s3:DeleteBucketPolicy"),
    "GetBucketPolicyStatus": _b("s3:GetBucketPolicyStatus"),
    "GetBucketAcl": _b("s3:GetBucketAcl"),
    "PutBucketAcl": _b("s3:PutBucketAcl"),
    "GetBucketOwnershipControls": _b("s3:GetBucketOwnershipControls"),
    "PutBucketOwnershipControls": _b("s3:PutBucketOwnershipControls"),
    "DeleteBucketOwnershipControls": _b("s3:PutBucketOwnershipControls"),
    "GetPublicAccessBlock": _b("s3:GetBucketPublicAccessBlock"),
    "PutPublicAccessBlock": _b("s3:PutBucketPublicAccessBlock"),
    "DeletePublicAccessBlock": _b("s3:PutBucketPublicAccessBlock"),
    "GetBucketTagging": _b("s3:GetBucketTagging"),
    "PutBucketTagging": _b("s3:PutBucketTagging"),
    "DeleteBucketTagging": _b("s3:PutBucketTagging"),
    "GetBucketLifecycleConfiguration": _b("s3:GetLifecycleConfiguration"),
    "GetBucketLifecycle": _b("s3:GetLifecycleConfiguration"),
    "PutBucketLifecycleConfiguration": _b("s3:PutLifecycleConfiguration"),
    "PutBucketLifecycle": _b("s3:PutLifecycleConfiguration"),
    "DeleteBucketLifecycle": _b("s3:PutLifecycleConfiguration"),
    "GetObjectLockConfiguration": _b("s3:GetBucketObjectLockConfiguration"),
    "PutObjectLockConfiguration": _b("s3:PutBucketObjectLockConfiguration"),
    # objects
    "GetObject": _o("s3:GetObject", "s3:GetObjectVersion"),
    "HeadObject": _o("s3:GetObject", "s3:GetObjectVersion"),
    "PutObject": _o("s3:PutObject"),
    "PostObject": _o("s3:PutObject"),  # the key comes from the form: checked by the handler
    "CopyObject": _o("s3:PutObject"),  # and s3:GetObject on the source (see ``source_action``)
    "DeleteObject": _o("s3:DeleteObject", "s3:DeleteObjectVersion"),
    "DeleteObjects": _o("s3:DeleteObject", "s3:DeleteObjectVersion"),  # each key: checked by the handler
    "CreateMultipartUpload": _o("s3:PutObject"),
    "UploadPart": _o("s3:PutObject"),
    "UploadPartCopy": _o("s3:PutObject"),
    "CompleteMultipartUpload": _o("s3:PutObject"),
    "AbortMultipartUpload": _o("s3:AbortMultipartUpload"),
    "ListParts": _o("s3:ListMultipartUploadParts"),
    "GetObjectAcl": _o("s3:GetObjectAcl", "s3:GetObjectVersionAcl"),
    "PutObjectAcl": _o("s3:PutObjectAcl", "s3:PutObjectVersionAcl"),
    "GetObjectTagging": _o("s3:GetObjectTagging", "s3:GetObjectVersionTagging"),
    "PutObjectTagging": _o("s3:PutObjectTagging", "s3:PutObjectVersionTagging"),
    "DeleteObjectTagging": _o("s3:DeleteObjectTagging", "s3:DeleteObjectVersionTagging"),
    "GetObjectAttributes": _o("s3:GetObjectAttributes", "s3:GetObjectVersionAttributes"),
    "GetObjectRetention": _o("s3:GetObjectRetention"),
    "PutObjectRetention": _o("s3:PutObjectRetention"),
    "GetObjectLegalHold": _o("s3:GetObjectLegalHold"),
    "PutObjectLegalHold": _o("s3:PutObjectLegalHold"),
}

# Operations that reach no one's resources: a CORS preflight is answered from the bucket's
# public CORS configuration alone, as S3 answers it, whoever asks.
UNCHECKED = frozenset({"CorsPreflight"})

# Operations the front door cannot check alone, because the resource is known only in the body:
# their handlers ask for each key (POST Object's key is a form field; DeleteObjects names many).
CHECKED_BY_HANDLER = frozenset({"PostObject", "DeleteObjects"})

# Copies read a source too: S3 checks this action on it, besides s3:PutObject on the destination.
SOURCE_ACTION = ActionRow("s3:GetObject", "object", "s3:GetObjectVersion")


# Operations AWS checks as two actions: GetObjectAttributes is also a read of the object
# (API_GetObjectAttributes: "s3:GetObject and s3:GetObjectAttributes", the Version pair for a
# version).
_ALSO: Mapping[str, ActionRow] = {
    "GetObjectAttributes": _o("s3:GetObject", "s3:GetObjectVersion"),
}
# Writes that store the tags of x-amz-tagging also need s3:PutObjectTagging (API_PutObject's
# permissions); a copy stores the request's tags only with x-amz-tagging-directive REPLACE.
_TAGGING_WRITES = frozenset({"PutObject", "CreateMultipartUpload"})
PUT_TAGS = _o("s3:PutObjectTagging")


def also_required(operation: str, query: Mapping[str, str], headers: Mapping[str, str]) -> tuple[ActionRow, ...]:
    """The checks S3 makes on the same resource besides the operation's own (``action_of``)."""
    extra: list[ActionRow] = []
    row = _ALSO.get(operation)
    if row is not None:
        extra.append(ActionRow(row.versioned, row.level) if row.versioned and query.get("versionId") else row)
    tags = headers.get("x-amz-tagging", "").strip() != ""
    if tags and (
        operation in _TAGGING_WRITES
        or (operation == "CopyObject" and headers.get("x-amz-tagging-directive", "").strip().upper() == "REPLACE")
    ):
        extra.append(PUT_TAGS)
    return tuple(extra)


def action_of(operation: str, query: Mapping[str, str]) -> ActionRow:
    """The check of an operation: its action (the version's when ``versionId`` is given) and level.

    An operation missing from the table is a bug; it raises KeyError rather than pass unchecked.
    """
    row = ACTIONS[operation]
    if row.versioned is not None and query.get("versionId"):
        return ActionRow(row.versioned, row.level)
    return row


def action_name(operation: str, query: Mapping[str, str]) -> str:
    return action_of(operation, query).action
