"""S3 errors: one exception type, one table of codes, one renderer.

Errors are raised anywhere below a handler and rendered to S3's XML in one
place, so every error a client sees has Code, Message, Resource, RequestId.
"""

from __future__ import annotations

import errno
from email.utils import formatdate

from twisted.logger import Logger

from vaultaire import errors as domain
from vaultaire.access.acl import AclError
from vaultaire.api.xmlout import element, xml_document
from vaultaire.encryption.keys import WrongKey
from vaultaire.encryption.packages import TamperedError
from vaultaire.engine.sealed import Unprotected
from vaultaire.model import Artifact
from vaultaire.objectlock import ObjectLocked

# code -> (HTTP status, default message), messages as S3 words them
CODES: dict[str, tuple[int, str]] = {
    "AccessDenied": (403, "Access Denied"),
    "AccessForbidden": (403, "CORSResponse: This CORS request is not allowed."),
    "BadRequest": (400, "Bad Request"),
    "AuthorizationHeaderMalformed": (400, "The authorization header is malformed."),
    "AuthorizationQueryParametersError": (400, "Error parsing the X-Amz-Credential parameter."),
    "BadDigest": (400, "The Content-MD5 you specified did not match what we received."),
    "BucketAlreadyOwnedByYou": (
        409,
        "Your previous request to create the named bucket succeeded and you already own it.",
    ),
    "BucketNotEmpty": (409, "The bucket you tried to delete is not empty"),
    "BucketAlreadyExists": (
        409,
        "The requested bucket name is not available. The bucket namespace is shared by all users of the "
        "system. Please select a different name and try again.",
    ),
    "EntityTooLarge": (400, "Your proposed upload exceeds the maximum allowed size"),
    "IncompleteBody": (400, "You did not provide the number of bytes specified by the Content-Length HTTP header"),
    "InternalError": (500, "We encountered an internal error. Please try again."),
    "InvalidAccessKeyId": (403, "The AWS Access Key Id you provided does not exist in our records."),
    "InvalidArgument": (400, "Invalid Argument"),
    "InvalidBucketName": (400, "The specified bucket is not valid."),
    "InvalidBucketState": (409, "The request is not valid with the current state of the bucket."),
    # Object Lock (vaultaire/api/object_lock.py)
    "ObjectLockConfigurationNotFoundError": (404, "Object Lock configuration does not exist for this bucket"),
    "NoSuchObjectLockConfiguration": (404, "The specified object does not have a ObjectLock configuration"),
    "ServerSideEncryptionConfigurationNotFoundError": (
        404,
        "The server side encryption configuration was not found",
    ),
    "InvalidEncryptionAlgorithmError": (
        400,
        "The Encryption request you specified is not valid. Supported value: AES256.",
    ),
    "InvalidDigest": (400, "The Content-MD5 you specified is not valid."),
    # SSE-KMS: what S3 answers when the object's (or the request's) KMS key cannot be used.
    "KMS.DisabledException": (400, "The KMS key is disabled."),
    "KMS.NotFoundException": (400, "Invalid keyId"),
    "InvalidRange": (416, "The requested range is not satisfiable"),
    "InvalidRequest": (400, "Invalid Request"),
    "InvalidURI": (400, "Couldn't parse the specified URI."),
    "InvalidLocationConstraint": (400, "The specified location constraint is not valid."),
    "MalformedXML": (
        400,
        "The XML you provided was not well-formed or did not validate against our published schema.",
    ),
    "ConditionalRequestConflict": (409, "A conflicting operation occurred. Please retry."),
    "QuotaExceeded": (403, "The quota of this account is exceeded."),
    # Not an AWS code (S3 never runs out of room); the status is WebDAV's, as MinIO answers a full drive.
    "InsufficientStorage": (507, "The server has not enough free disk space to store this request."),
    "InvalidStorageClass": (400, "The storage class you specified is not valid"),
    # Tagging (vaultaire/api/tagging.py)
    "InvalidTag": (400, "The tag provided was not a valid tag."),
    "NoSuchTagSet": (404, "The TagSet does not exist"),
    "NoSuchVersion": (404, "The specified version does not exist."),
    "NotModified": (304, "Not Modified"),
    "PreconditionFailed": (412, "At least one of the pre-conditions you specified did not hold"),
    "EntityTooSmall": (400, "Your proposed upload is smaller than the minimum allowed object size."),
    "InvalidPart": (
        400,
        "One or more of the specified parts could not be found. The part may not have been uploaded, "
        "or the specified entity tag may not match the part's entity tag.",
    ),
    "InvalidPartNumber": (416, "The requested partnumber is not satisfiable"),
    "InvalidPartOrder": (400, "The list of parts was not in ascending order. Parts must be ordered by part number."),
    "NoSuchUpload": (
        404,
        "The specified multipart upload does not exist. The upload ID might not be valid, "
        "or the multipart upload might have been aborted or completed.",
    ),
    "InvalidPolicyDocument": (
        400,
        "The content of the form does not meet the conditions specified in the policy document.",
    ),
    "MalformedPOSTRequest": (400, "The body of your POST request is not well-formed multipart/form-data."),
    "MaxPostPreDataLengthExceeded": (400, "Your POST request fields preceding the upload file were too large."),
    "KeyTooLongError": (400, "Your key is too long"),
    "MetadataTooLarge": (400, "Your metadata headers exceed the maximum allowed metadata size."),
    "MethodNotAllowed": (405, "The specified method is not allowed against this resource."),
    "MissingContentLength": (411, "You must provide the Content-Length HTTP header."),
    "NoSuchBucket": (404, "The specified bucket does not exist"),
    "NoSuchCORSConfiguration": (404, "The CORS configuration does not exist"),
    "NoSuchKey": (404, "The specified key does not exist."),
    "NoSuchLifecycleConfiguration": (404, "The lifecycle configuration does not exist"),
    "NotImplemented": (501, "A header or query you provided implies functionality that is not implemented."),
    "RequestTimeout": (
        400,
        "Your socket connection to the server was not read from or written to within the timeout period.",
    ),
    "RequestTimeTooSkewed": (403, "The difference between the request time and the current time is too large."),
    "ServiceUnavailable": (503, "Service is unable to handle request."),
    "SlowDown": (503, "Please reduce your request rate."),
    "SignatureDoesNotMatch": (
        403,
        "The request signature we calculated does not match the signature you provided. "
        "Check your key and signing method.",
    ),
    "XAmzContentSHA256Mismatch": (400, "The provided 'x-amz-content-sha256' header does not match what was computed."),
    # ACLs, object ownership, public access block (api/acl_operations.py, ownership.py, public_access_block.py)
    "AccessControlListNotSupported": (400, "The bucket does not allow ACLs"),
    "InvalidBucketAclWithObjectOwnership": (
        400,
        "Bucket cannot have ACLs set with ObjectOwnership's BucketOwnerEnforced setting",
    ),
    "InvalidBucketAclWithBlockPublicAccessError": (
        400,
        "Bucket cannot have public ACLs set with BlockPublicAccess enabled",
    ),
    "MalformedACLError": (
        400,
        "The XML you provided was not well-formed or did not validate against our published schema",
    ),
    "MissingSecurityHeader": (400, "Your request was missing a required header"),
    "UnexpectedContent": (400, "This request does not support content"),
    "UnresolvableGrantByEmailAddress": (400, "The e-mail address you provided does not match any account on record."),
    "OwnershipControlsNotFoundError": (404, "The bucket ownership controls were not found"),
    "NoSuchPublicAccessBlockConfiguration": (404, "The public access block configuration was not found"),
    # Bucket policies (api/bucket_policy.py)
    "MalformedPolicy": (400, "Policies must be valid JSON and the first byte must be '{'"),
    "NoSuchBucketPolicy": (404, "The bucket policy does not exist"),
}


class S3Error(Exception):
    """An S3 error response: code, status, message and extra XML fields."""

    # True when the request's framing cannot be trusted any more (a broken
    # aws-chunked body): the answer then ends the connection.
    close_connection = False
    # What the event log names the error, when the code alone says too little (InternalError).
    event: str | None = None

    def __init__(self, code: str, message: str | None = None, **extra: str) -> None:
        status, default = CODES[code]
        super().__init__(message or default)
        self.code = code
        self.status = status
        self.message = message or default
        self.extra = extra
        # Response headers the error carries (x-amz-delete-marker...), set by whoever raises it.
        self.headers: dict[str, str] = {}

    def to_xml(self, resource: str, request_id: str) -> bytes:
        children = [element("Code", self.code), element("Message", self.message)]
        children += [element(k, v) for k, v in self.extra.items()]
        children += [element("Resource", resource), element("RequestId", request_id)]
        return xml_document(element("Error", *children))


def delete_marker_addressed(marker: Artifact | None, method: str) -> S3Error:
    """S3's 405 for a request that names a delete marker by its version id."""
    error = S3Error("MethodNotAllowed", Method=method, ResourceType="DeleteMarker")
    if marker is not None:
        error.headers = {
            "x-amz-delete-marker": "true",
            "x-amz-version-id": marker.version_id,
            "Last-Modified": formatdate(marker.modified, usegmt=True),
        }
    return error


def framing_error(code: str, message: str) -> S3Error:
    """An error in a body's own framing: answered, then the connection is closed."""
    error = S3Error(code, message)
    error.close_connection = True
    return error


def from_domain(exc: BaseException, container: str | None, key: str | None) -> S3Error | None:
    """The S3 error a domain error means, or None if it is not one of ours."""
    if isinstance(exc, S3Error):
        return exc
    if isinstance(exc, AclError):
        return S3Error(exc.code, exc.message or None, **exc.extra)
    if isinstance(exc, domain.NoSuchContainer):
        return S3Error("NoSuchBucket", BucketName=container or "")
    if isinstance(exc, ObjectLocked):
        return S3Error("AccessDenied", str(exc))
    if isinstance(exc, domain.NoSuchVersion):
        return S3Error("NoSuchVersion", Key=key or "", VersionId=str(exc))
    if isinstance(exc, domain.NoSuchArtifact):
        error = S3Error("NoSuchKey", Key=key or "")
        if exc.marker is not None:
            # S3: the key's current version is a delete marker, and it says so.
            error.headers = {"x-amz-delete-marker": "true", "x-amz-version-id": exc.marker.version_id}
        return error
    if isinstance(exc, domain.DeleteMarkerAddressed):
        return delete_marker_addressed(exc.marker, "GET")
    if isinstance(exc, domain.ContainerExists):
        return S3Error("BucketAlreadyOwnedByYou", BucketName=container or "")
    if isinstance(exc, domain.ContainerNameTaken):
        return S3Error("BucketAlreadyExists", BucketName=container or "")
    if isinstance(exc, domain.ContainerNotEmpty):
        return S3Error("BucketNotEmpty", BucketName=container or "")
    if isinstance(exc, domain.ConditionalConflict):
        return S3Error("ConditionalRequestConflict")
    if isinstance(exc, domain.PreconditionFailed):
        return S3Error("PreconditionFailed", Condition="If-Match" if "ETag" in str(exc) else "If-None-Match")
    if isinstance(exc, WrongKey):
        if exc.missing:
            return S3Error(
                "InvalidRequest",
                "The object was stored using a form of Server Side Encryption. "
                "The correct parameters must be provided to retrieve the object.",
            )
        return S3Error("AccessDenied")
    if isinstance(exc, domain.KmsKeyDisabled):
        return S3Error("KMS.DisabledException", f"{exc} is disabled.")
    if isinstance(exc, domain.NoSuchKmsKey):
        return S3Error("KMS.NotFoundException", f"Invalid keyId '{exc}'")
    if isinstance(exc, TamperedError):
        # Not a bug to trace back, not the client's doing: the stored bytes changed under us.
        log.error(
            "stored blob of {container}/{key} failed its integrity check: {why}", container=container, key=key, why=exc
        )
        error = S3Error("InternalError", "The stored object failed its integrity check and was not returned.")
        error.event = "StoredBlobTampered"
        return error
    if isinstance(exc, Unprotected):
        return S3Error("NotImplemented", "This server has no key for encryption at rest.")
    if isinstance(exc, domain.NoSuchUpload):
        return S3Error("NoSuchUpload", UploadId=str(exc))
    if isinstance(exc, domain.InvalidPart):
        return S3Error("InvalidPart", PartNumber=str(exc))
    if isinstance(exc, domain.InvalidPartOrder):
        return S3Error("InvalidPartOrder")
    if isinstance(exc, domain.EntityTooSmall):
        return S3Error("EntityTooSmall", PartNumber=str(exc))
    if isinstance(exc, domain.IncompleteBody):
        return S3Error("IncompleteBody")
    if isinstance(exc, domain.InsufficientStorage):
        return S3Error("InsufficientStorage", str(exc) or None)
    if out_of_descriptors(exc):
        # Clients back off on SlowDown, which is what a process out of descriptors needs.
        return S3Error("SlowDown", "The server is out of file descriptors; please retry.")
    if isinstance(exc, domain.DriverUnavailable):
        # SDKs back off and retry on SlowDown: the upstream is down or overloaded.
        return S3Error("SlowDown", "The storage upstream is unavailable; please retry.")
    # -- PostgreSQL catalog: an outage or a statement timeout is the client's cue to back off.
    if isinstance(exc, domain.CatalogUnavailable):
        return S3Error("SlowDown", "The catalog is unavailable; please retry.")
    if isinstance(exc, domain.BlobWithdrawn):
        return S3Error("SlowDown", "The write was interrupted; please retry.")
    if isinstance(exc, domain.QuotaExceeded):
        return S3Error("QuotaExceeded", str(exc))
    if isinstance(exc, domain.DriverError):
        return S3Error("ServiceUnavailable", "The storage driver failed; please retry.")
    if isinstance(exc, domain.NoSuchPlacement):
        return S3Error(
            "InvalidLocationConstraint",
            f"The location constraint {exc} names no placement of this server.",
            LocationConstraint=str(exc),
        )
    return None


log = Logger()

_NO_DESCRIPTOR = (errno.EMFILE, errno.ENFILE)
# What the layers below say when they could not get a descriptor: strerror(EMFILE/ENFILE),
# and SQLite's word for any failed open (it does not pass the errno on).
_NO_DESCRIPTOR_TEXT = ("Too many open files", "unable to open database file")


def out_of_descriptors(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) is the process running out of file descriptors."""
    seen: BaseException | None = exc
    for _ in range(8):  # a cause chain is short; never loop on a cycle
        if seen is None:
            return False
        if isinstance(seen, OSError) and seen.errno in _NO_DESCRIPTOR:
            return True
        if any(text in str(seen) for text in _NO_DESCRIPTOR_TEXT):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
