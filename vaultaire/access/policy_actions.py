"""Every S3 action a policy may name (AWS's Service Authorization Reference) and the resource it acts on.

A policy is checked against this list when it is written: an action S3 does
not define is "Policy has invalid action"; in a bucket policy, an action whose
resource is not the bucket or its objects (``s3:ListAllMyBuckets``) is "Action
does not apply to any resource(s) in statement". Actions of features this
server lacks are still valid names: allowing or denying them changes nothing.
"""

from __future__ import annotations

from functools import lru_cache

from vaultaire.access.patterns import wildcard_regex

_OBJECT = """AbortMultipartUpload BypassGovernanceRetention DeleteObject DeleteObjectTagging
    DeleteObjectVersion DeleteObjectVersionTagging GetObject GetObjectAcl GetObjectAttributes
    GetObjectLegalHold GetObjectRetention GetObjectTagging GetObjectTorrent GetObjectVersion
    GetObjectVersionAcl GetObjectVersionAttributes GetObjectVersionForReplication GetObjectVersionTagging
    GetObjectVersionTorrent InitiateReplication ListMultipartUploadParts ObjectOwnerOverrideToBucketOwner
    PutObject PutObjectAcl PutObjectLegalHold PutObjectRetention PutObjectTagging PutObjectVersionAcl
    PutObjectVersionTagging ReplicateDelete ReplicateObject ReplicateTags RestoreObject"""

_BUCKET = """CreateBucket CreateBucketMetadataTableConfiguration CreateSession DeleteBucket
    DeleteBucketMetadataTableConfiguration DeleteBucketOwnershipControls DeleteBucketPolicy
    DeleteBucketWebsite GetAccelerateConfiguration GetAnalyticsConfiguration GetBucketAcl GetBucketCORS
    GetBucketLocation GetBucketLogging GetBucketMetadataTableConfiguration GetBucketNotification
    GetBucketObjectLockConfiguration GetBucketOwnershipControls GetBucketPolicy GetBucketPolicyStatus
    GetBucketPublicAccessBlock GetBucketRequestPayment GetBucketTagging GetBucketVersioning GetBucketWebsite
    GetEncryptionConfiguration GetIntelligentTieringConfiguration GetInventoryConfiguration
    GetLifecycleConfiguration GetMetricsConfiguration GetReplicationConfiguration ListBucket
    ListBucketMultipartUploads ListBucketVersions PutAccelerateConfiguration PutAnalyticsConfiguration
    PutBucketAcl PutBucketCORS PutBucketLogging PutBucketNotification PutBucketObjectLockConfiguration
    PutBucketOwnershipControls PutBucketPolicy PutBucketPublicAccessBlock PutBucketRequestPayment
    PutBucketTagging PutBucketVersioning PutBucketWebsite PutEncryptionConfiguration
    PutIntelligentTieringConfiguration PutInventoryConfiguration PutLifecycleConfiguration
    PutMetricsConfiguration PutReplicationConfiguration"""

# Account-wide actions and those on other resource types (access points, jobs, Storage Lens...).
_OTHER = """ListAllMyBuckets GetAccountPublicAccessBlock PutAccountPublicAccessBlock ListAccessPoints
    CreateAccessPoint DeleteAccessPoint GetAccessPoint GetAccessPointPolicy PutAccessPointPolicy
    DeleteAccessPointPolicy GetAccessPointPolicyStatus CreateJob DescribeJob ListJobs UpdateJobPriority
    UpdateJobStatus GetStorageLensConfiguration PutStorageLensConfiguration DeleteStorageLensConfiguration
    ListStorageLensConfigurations GetStorageLensDashboard CreateMultiRegionAccessPoint
    DeleteMultiRegionAccessPoint GetMultiRegionAccessPoint ListMultiRegionAccessPoints
    ListAccessGrants ListTagsForResource TagResource UntagResource"""

# lower-case "s3:name" -> "object", "bucket" or "other"
LEVELS: dict[str, str] = {
    **{f"s3:{name.lower()}": "other" for name in _OTHER.split()},
    **{f"s3:{name.lower()}": "bucket" for name in _BUCKET.split()},
    **{f"s3:{name.lower()}": "object" for name in _OBJECT.split()},
}


@lru_cache(maxsize=1024)
def expand(pattern: str) -> frozenset[str]:
    """The known actions (lower-case) an action pattern (``s3:Get*``, ``*``) names, case-insensitively."""
    regex = wildcard_regex(pattern, ignore_case=True)
    return frozenset(name for name in LEVELS if regex.fullmatch(name))


def levels(pattern: str) -> frozenset[str]:
    return frozenset(LEVELS[name] for name in expand(pattern))
