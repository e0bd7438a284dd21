"""Which S3 operation a request is: a table lookup on (level, method, subresource).

Anything S3 defines that Vaultaire does not implement is named here too, so it
answers 501 NotImplemented instead of being mistaken for a plainer operation.
"""

from __future__ import annotations

from vaultaire.api.addressing import Target
from vaultaire.api.errors import S3Error

# Query parameters that select a subresource (an operation other than the plain one).
SUBRESOURCES = frozenset(
    """accelerate acl analytics attributes cors delete encryption intelligent-tiering inventory
    legal-hold lifecycle location logging metadataConfiguration metrics notification object-lock
    ownershipControls partNumber policy policyStatus publicAccessBlock replication requestPayment
    restore retention select session tagging torrent uploadId uploads versioning versions website""".split()
)

# (level, method, subresource) -> operation name; level is service, bucket or object
OPERATIONS: dict[tuple[str, str, str | None], str] = {
    ("service", "GET", None): "ListBuckets",
    ("bucket", "PUT", None): "CreateBucket",
    ("bucket", "HEAD", None): "HeadBucket",
    ("bucket", "DELETE", None): "DeleteBucket",
    ("bucket", "GET", None): "ListObjects",
    ("bucket", "GET", "location"): "GetBucketLocation",
    # versioning (api/versioning.py)
    ("bucket", "GET", "versioning"): "GetBucketVersioning",
    ("bucket", "PUT", "versioning"): "PutBucketVersioning",
    ("bucket", "GET", "versions"): "ListObjectVersions",
    ("bucket", "POST", "delete"): "DeleteObjects",
    ("bucket", "POST", None): "PostObject",
    ("object", "PUT", None): "PutObject",
    ("object", "GET", None): "GetObject",
    ("object", "HEAD", None): "HeadObject",
    ("object", "DELETE", None): "DeleteObject",
    ("object", "GET", "partNumber"): "GetObject",
    ("object", "HEAD", "partNumber"): "HeadObject",
    ("object", "POST", "uploads"): "CreateMultipartUpload",
    ("object", "PUT", "uploadId"): "UploadPart",
    ("object", "POST", "uploadId"): "CompleteMultipartUpload",
    ("object", "DELETE", "uploadId"): "AbortMultipartUpload",
    ("object", "GET", "uploadId"): "ListParts",
    ("bucket", "GET", "uploads"): "ListMultipartUploads",
    ("bucket", "GET", "cors"): "GetBucketCors",
    ("bucket", "PUT", "cors"): "PutBucketCors",
    ("bucket", "DELETE", "cors"): "DeleteBucketCors",
    ("bucket", "GET", "encryption"): "GetBucketEncryption",
    ("bucket", "PUT", "encryption"): "PutBucketEncryption",
    ("bucket", "DELETE", "encryption"): "DeleteBucketEncryption",
    # lifecycle (vaultaire/api/lifecycle_operations.py)
    ("bucket", "GET", "lifecycle"): "GetBucketLifecycleConfiguration",
    ("bucket", "PUT", "lifecycle"): "PutBucketLifecycleConfiguration",
    ("bucket", "DELETE", "lifecycle"): "DeleteBucketLifecycle",
    # ACLs, ownership controls, public access block (issue 14)
    ("bucket", "GET", "acl"): "GetBucketAcl",
    ("bucket", "PUT", "acl"): "PutBucketAcl",
    ("object", "GET", "acl"): "GetObjectAcl",
    ("object", "PUT", "acl"): "PutObjectAcl",
    ("bucket", "GET", "ownershipControls"): "GetBucketOwnershipControls",
    ("bucket", "PUT", "ownershipControls"): "PutBucketOwnershipControls",
    ("bucket", "DELETE", "ownershipControls"): "DeleteBucketOwnershipControls",
    ("bucket", "GET", "publicAccessBlock"): "GetPublicAccessBlock",
    ("bucket", "PUT", "publicAccessBlock"): "PutPublicAccessBlock",
    ("bucket", "DELETE", "publicAccessBlock"): "DeletePublicAccessBlock",
    # Bucket policies (issue 14, api/bucket_policy.py)
    ("bucket", "GET", "policy"): "GetBucketPolicy",
    ("bucket", "PUT", "policy"): "PutBucketPolicy",
    ("bucket", "DELETE", "policy"): "DeleteBucketPolicy",
    ("bucket", "GET", "policyStatus"): "GetBucketPolicyStatus",
    # Tagging (api/tagging.py) and GetObjectAttributes (api/attributes.py)
    ("object", "GET", "tagging"): "GetObjectTagging",
    ("object", "PUT", "tagging"): "PutObjectTagging",
    ("object", "DELETE", "tagging"): "DeleteObjectTagging",
    ("bucket", "GET", "tagging"): "GetBucketTagging",
    ("bucket", "PUT", "tagging"): "PutBucketTagging",
    ("bucket", "DELETE", "tagging"): "DeleteBucketTagging",
    ("object", "GET", "attributes"): "GetObjectAttributes",
    # Object Lock (api/object_lock.py)
    ("bucket", "GET", "object-lock"): "GetObjectLockConfiguration",
    ("bucket", "PUT", "object-lock"): "PutObjectLockConfiguration",
    ("object", "GET", "retention"): "GetObjectRetention",
    ("object", "PUT", "retention"): "PutObjectRetention",
    ("object", "GET", "legal-hold"): "GetObjectLegalHold",
    ("object", "PUT", "legal-hold"): "PutObjectLegalHold",
}

_ALLOWED_METHODS = {
    "service": {"GET"},
    "bucket": {"GET", "PUT", "HEAD", "DELETE", "POST"},
    "object": {"GET", "PUT", "HEAD", "DELETE", "POST"},
}


def detect(method: str, target: Target, headers: dict[str, str]) -> str:
    """The operation's name, or an S3Error (MethodNotAllowed, NotImplemented)."""
    if method == "OPTIONS":
        # A CORS preflight, at any level and whatever the query (it is the
        # query of the request the browser is about to send).
        return "CorsPreflight"
    level = "service" if target.bucket is None else "bucket" if target.key is None else "object"
    if method not in _ALLOWED_METHODS[level]:
        raise S3Error("MethodNotAllowed", Method=method, ResourceType=level.upper())
    subresources = [name for name in target.query if name in SUBRESOURCES]
    if "uploadId" in subresources and "partNumber" in subresources:
        subresources.remove("partNumber")  # UploadPart names both
    subresource = subresources[0] if len(subresources) == 1 else None
    if len(subresources) > 1:
        raise S3Error("NotImplemented", f"The combination of {', '.join(sorted(subresources))} is not implemented.")
    operation = OPERATIONS.get((level, method, subresource))
    if operation is None:
        what = f"?{subresource}" if subresource else "this request"
        raise S3Error("NotImplemented", f"{method} {what} on a {level} is not implemented by Vaultaire.")
    if operation == "ListObjects" and target.query.get("list-type") == "2":
        return "ListObjectsV2"
    if operation == "PutObject" and "x-amz-copy-source" in headers:
        return "CopyObject"
    if operation == "UploadPart" and "x-amz-copy-source" in headers:
        return "UploadPartCopy"
    return operation
