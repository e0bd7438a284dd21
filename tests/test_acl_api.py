"""ACLs, ownership controls and the public access block through the whole stack, in process.

Every S3 error the operations answer, the defaults of a new bucket (BucketOwnerEnforced,
every public access switch on), ACLs on every write that takes one, and the
deployment-wide ``[access] public_buckets = false``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import pytest
import pytest_twisted
import treq

from tests.postform import BOUNDARY, form, v4_fields
from tests.s3helpers import Server, complete_body, error_code, upload_part, xml_values
from vaultaire.access.acl import ALL_USERS, AUTHENTICATED_USERS
from vaultaire.config import ConfigError, build, load_file

XSI = 'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'
OWNERSHIP = (
    '<OwnershipControls xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
    "<Rule><ObjectOwnership>{}</ObjectOwnership></Rule></OwnershipControls>"
)
NO_BLOCK = (
    "<PublicAccessBlockConfiguration><BlockPublicAcls>false</BlockPublicAcls>"
    "<IgnorePublicAcls>false</IgnorePublicAcls></PublicAccessBlockConfiguration>"
)


def assert_error(r: Any, status: int, code: str) -> None:
    assert (r.code, error_code(r)) == (status, code), r.body


async def owner_id(server: Server) -> str:
    return xml_values((await server.request("GET", "/")).body, "ID")[0]


async def open_bucket(server: Server, name: str, ownership: str = "ObjectWriter") -> None:
    """A bucket that takes ACLs and public ones: ownership ObjectWriter, no public access block."""
    r = await server.request("PUT", f"/{name}", headers={"x-amz-object-ownership": ownership})
    assert r.code == 200, r.body
    r = await server.request("DELETE", f"/{name}", query="publicAccessBlock=")
    assert r.code == 204, r.body


def grants(body: bytes) -> list[tuple[str, str]]:
    """(grantee ID or URI, permission) of an AccessControlPolicy, in order."""
    ns = "{http://s3.amazonaws.com/doc/2006-03-01/}"
    out = []
    for grant in ET.fromstring(body).iter(f"{ns}Grant"):
        grantee = grant.find(f"{ns}Grantee")
        assert grantee is not None
        who = grantee.find(f"{ns}ID")
        if who is None:
            who = grantee.find(f"{ns}URI")
        permission = grant.find(f"{ns}Permission")
        assert who is not None and permission is not None
        out.append((who.text or "", permission.text or ""))
    return out


# -- a new bucket's defaults


@pytest_twisted.ensureDeferred
async def test_new_bucket_is_private_owner_enforced_and_blocks_public_access(server):
    me = await owner_id(server)
    r = await server.request("GET", "/bucket", query="acl=")
    assert r.code == 200, r.body
    assert xml_values(r.body, "ID")[0] == me  # the Owner: the tenant's canonical id, as ListBuckets shows it
    assert xml_values(r.body, "DisplayName")[0] == "default"
    assert grants(r.body) == [(me, "FULL_CONTROL")]
    r = await server.request("GET", "/bucket", query="ownershipControls=")
    assert xml_values(r.body, "ObjectOwnership") == ["BucketOwnerEnforced"]
    r = await server.request("GET", "/bucket", query="publicAccessBlock=")
    for name in ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"):
        assert xml_values(r.body, name) == ["true"], r.body


@pytest_twisted.ensureDeferred
async def test_owner_enforced_refuses_acls_that_grant_others(server):
    r = await server.request("PUT", "/bucket/k", b"secret", headers={"x-amz-acl": "public-read"})
    assert_error(r, 400, "AccessControlListNotSupported")
    assert (await server.request("HEAD", "/bucket/k")).code == 404
    assert server.blob_files() == []
    for acl in ("private", "bucket-owner-full-control"):
        assert (await server.request("PUT", "/bucket/k", b"x", headers={"x-amz-acl": acl})).code == 200
    r = await server.request("PUT", "/bucket", query="acl=", headers={"x-amz-acl": "authenticated-read"})
    assert_error(r, 400, "AccessControlListNotSupported")
    r = await server.request("PUT", "/bucket/k", query="acl=", headers={"x-amz-acl": "public-read"})
    assert_error(r, 400, "AccessControlListNotSupported")
    assert (await server.request("PUT", "/bucket/k", query="acl=", headers={"x-amz-acl": "private"})).code == 200
    r = await server.request("POST", "/bucket/mp", query="uploads=", headers={"x-amz-acl": "public-read"})
    assert_error(r, 400, "AccessControlListNotSupported")


@pytest_twisted.ensureDeferred
async def test_create_bucket_with_acl_and_ownership(server):
    r = await server.request("PUT", "/public", headers={"x-amz-acl": "public-read"})
    assert_error(r, 400, "InvalidBucketAclWithObjectOwnership")
    assert (await server.request("HEAD", "/public")).code == 404
    headers = {"x-amz-acl": "public-read", "x-amz-object-ownership": "ObjectWriter"}
    r = await server.request("PUT", "/public", headers=headers)
    assert_error(r, 400, "InvalidBucketAclWithBlockPublicAccessError")  # a new bucket blocks public ACLs
    assert (await server.request("HEAD", "/public")).code == 404
    r = await server.request("PUT", "/odd", headers={"x-amz-object-ownership": "Nobody"})
    assert_error(r, 400, "InvalidArgument")
    me = await owner_id(server)
    headers = {"x-amz-grant-read-acp": f'id="{me}"', "x-amz-object-ownership": "BucketOwnerPreferred"}
    assert (await server.request("PUT", "/shared", headers=headers)).code == 200
    r = await server.request("GET", "/shared", query="ownershipControls=")
    assert xml_values(r.body, "ObjectOwnership") == ["BucketOwnerPreferred"]
    assert grants((await server.request("GET", "/shared", query="acl=")).body) == [(me, "READ_ACP")]
    r = await server.request("PUT", "/enforced", headers={"x-amz-acl": "private"})
    assert r.code == 200, r.body


# -- ACLs where ACLs are enabled


@pytest_twisted.ensureDeferred
async def test_public_acls_on_every_write(server):
    await open_bucket(server, "open")
    me = await owner_id(server)
    r = await server.request("PUT", "/open/put", b"x", headers={"x-amz-acl": "public-read"})
    assert r.code == 200, r.body
    assert grants((await server.request("GET", "/open/put", query="acl=")).body) == [
        (me, "FULL_CONTROL"),
        (ALL_USERS, "READ"),
    ]
    # A copy takes the ACL its request gives, never the source's.
    r = await server.request("PUT", "/open/copy", headers={"x-amz-copy-source": "/open/put"})
    assert r.code == 200, r.body
    assert grants((await server.request("GET", "/open/copy", query="acl=")).body) == [(me, "FULL_CONTROL")]
    headers = {"x-amz-copy-source": "/open/put", "x-amz-grant-read": f'uri="{AUTHENTICATED_USERS}"'}
    assert (await server.request("PUT", "/open/copy2", headers=headers)).code == 200
    assert grants((await server.request("GET", "/open/copy2", query="acl=")).body) == [(AUTHENTICATED_USERS, "READ")]
    # Multipart: given at creation, carried to the object Complete makes.
    r = await server.request("POST", "/open/mp", query="uploads=", headers={"x-amz-acl": "public-read-write"})
    assert r.code == 200, r.body
    upload = xml_values(r.body, "UploadId")[0]
    etag = await upload_part(server, "/open/mp", upload, 1, b"part")
    r = await server.request("POST", "/open/mp", complete_body([(1, etag)]), query=f"uploadId={upload}")
    assert r.code == 200, r.body
    assert grants((await server.request("GET", "/open/mp", query="acl=")).body) == [
        (me, "FULL_CONTROL"),
        (ALL_USERS, "READ"),
        (ALL_USERS, "WRITE"),
    ]


@pytest_twisted.ensureDeferred
async def test_post_object_acl_field(server):
    await open_bucket(server, "forms")
    fields = v4_fields([{"bucket": "forms"}, ["starts-with", "$key", ""], {"acl": "public-read"}])
    fields.update({"key": "posted", "acl": "public-read"})
    r = await treq.post(
        server.url + "/forms",
        data=form(fields, b"content"),
        headers={"Content-Type": [f"multipart/form-data; boundary={BOUNDARY}"]},
        persistent=False,
    )
    r.body = await r.content()
    assert r.code == 204, r.body
    assert (ALL_USERS, "READ") in grants((await server.request("GET", "/forms/posted", query="acl=")).body)
    # The default bucket enforces ownership: the same form is refused there, and stores nothing.
    fields = v4_fields([{"bucket": "bucket"}, ["starts-with", "$key", ""], {"acl": "public-read"}])
    fields.update({"key": "posted", "acl": "public-read"})
    r = await treq.post(
        server.url + "/bucket",
        data=form(fields, b"content"),
        headers={"Content-Type": [f"multipart/form-data; boundary={BOUNDARY}"]},
        persistent=False,
    )
    r.body = await r.content()
    assert_error(r, 400, "AccessControlListNotSupported")
    assert (await server.request("HEAD", "/bucket/posted")).code == 404


@pytest_twisted.ensureDeferred
async def test_put_acls_by_document_and_by_version(server):
    await open_bucket(server, "docs")
    me = await owner_id(server)
    assert (await server.request("PUT", "/docs/k", b"x")).code == 200
    document = (
        '<AccessControlPolicy xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        f"<Owner><ID>{me}</ID></Owner><AccessControlList>"
        f'<Grant><Grantee {XSI} xsi:type="CanonicalUser"><ID>{me}</ID></Grantee>'
        "<Permission>FULL_CONTROL</Permission></Grant>"
        f'<Grant><Grantee {XSI} xsi:type="Group"><URI>{ALL_USERS}</URI></Grantee><Permission>READ</Permission></Grant>'
        "</AccessControlList></AccessControlPolicy>"
    ).encode()
    r = await server.request("PUT", "/docs/k", document, query="acl=&versionId=null")
    assert r.code == 200, r.body
    r = await server.request("GET", "/docs/k", query="acl=&versionId=null")
    assert grants(r.body) == [(me, "FULL_CONTROL"), (ALL_USERS, "READ")]
    assert r.headers.getRawHeaders("x-amz-version-id") == ["null"]
    unknown = "0" * 32
    assert_error(await server.request("GET", "/docs/k", query=f"acl=&versionId={unknown}"), 404, "NoSuchVersion")
    r = await server.request("PUT", "/docs/k", document, query=f"acl=&versionId={unknown}")
    assert_error(r, 404, "NoSuchVersion")
    r = await server.request("GET", "/docs/k", query="acl=&versionId=3HL4kqtJlcpXroDTDmJ")
    assert_error(r, 400, "InvalidArgument")
    assert_error(await server.request("GET", "/docs/none", query="acl="), 404, "NoSuchKey")
    assert_error(await server.request("PUT", "/docs/none", document, query="acl="), 404, "NoSuchKey")
    # Overwriting an object gives the new one its own (default) ACL.
    assert (await server.request("PUT", "/docs/k", b"y")).code == 200
    assert grants((await server.request("GET", "/docs/k", query="acl=")).body) == [(me, "FULL_CONTROL")]
    # The bucket's own ACL, by document.
    assert (await server.request("PUT", "/docs", document, query="acl=")).code == 200
    assert grants((await server.request("GET", "/docs", query="acl=")).body) == [
        (me, "FULL_CONTROL"),
        (ALL_USERS, "READ"),
    ]
    # Back to private: the setting is gone, not stored as a copy of the default.
    assert (await server.request("PUT", "/docs", query="acl=", headers={"x-amz-acl": "private"})).code == 200
    assert grants((await server.request("GET", "/docs", query="acl=")).body) == [(me, "FULL_CONTROL")]


@pytest_twisted.ensureDeferred
async def test_each_version_has_its_own_acl(server):
    await open_bucket(server, "versioned")
    me = await owner_id(server)
    enable = b"<VersioningConfiguration><Status>Enabled</Status></VersioningConfiguration>"
    assert (await server.request("PUT", "/versioned", enable, query="versioning=")).code == 200
    r = await server.request("PUT", "/versioned/k", b"old", headers={"x-amz-acl": "public-read"})
    old = r.headers.getRawHeaders("x-amz-version-id")[0]
    r = await server.request("PUT", "/versioned/k", b"new")
    new = r.headers.getRawHeaders("x-amz-version-id")[0]
    assert grants((await server.request("GET", "/versioned/k", query="acl=")).body) == [(me, "FULL_CONTROL")]
    r = await server.request("GET", "/versioned/k", query=f"acl=&versionId={old}")
    assert (ALL_USERS, "READ") in grants(r.body)
    assert r.headers.getRawHeaders("x-amz-version-id") == [old]
    # Changing the old version's ACL leaves the current one alone, and the reverse.
    r = await server.request("PUT", "/versioned/k", query=f"acl=&versionId={old}", headers={"x-amz-acl": "private"})
    assert r.code == 200, r.body
    headers = {"x-amz-acl": "authenticated-read"}
    assert (await server.request("PUT", "/versioned/k", query=f"acl=&versionId={new}", headers=headers)).code == 200
    assert grants((await server.request("GET", "/versioned/k", query=f"acl=&versionId={old}")).body) == [
        (me, "FULL_CONTROL")
    ]
    assert (AUTHENTICATED_USERS, "READ") in grants((await server.request("GET", "/versioned/k", query="acl=")).body)


@pytest_twisted.ensureDeferred
async def test_put_acl_errors(server):
    await open_bucket(server, "errs")
    me = await owner_id(server)
    assert (await server.request("PUT", "/errs/k", b"x")).code == 200
    for path in ("/errs", "/errs/k"):
        assert_error(await server.request("PUT", path, query="acl="), 400, "MissingSecurityHeader")
        r = await server.request("PUT", path, b"<AccessControlPolicy/>", query="acl=", headers={"x-amz-acl": "private"})
        assert_error(r, 400, "UnexpectedContent")
        both = {"x-amz-acl": "private", "x-amz-grant-read": f'id="{me}"'}
        assert_error(await server.request("PUT", path, query="acl=", headers=both), 400, "InvalidRequest")
        email = {"x-amz-grant-read": 'emailAddress="someone@example.com"'}
        assert_error(
            await server.request("PUT", path, query="acl=", headers=email), 400, "UnresolvableGrantByEmailAddress"
        )
        nobody = {"x-amz-grant-read": 'id="0123456789abcdef0123456789abcdef"'}
        assert_error(await server.request("PUT", path, query="acl=", headers=nobody), 400, "InvalidArgument")
        bad = {"x-amz-acl": "public"}
        assert_error(await server.request("PUT", path, query="acl=", headers=bad), 400, "InvalidArgument")
        assert_error(await server.request("PUT", path, b"<Acl>", query="acl="), 400, "MalformedACLError")
        other_owner = b"<AccessControlPolicy><Owner><ID>someone-else</ID></Owner></AccessControlPolicy>"
        assert_error(await server.request("PUT", path, other_owner, query="acl="), 403, "AccessDenied")
    assert_error(await server.request("GET", "/missing", query="acl="), 404, "NoSuchBucket")
    assert grants((await server.request("GET", "/errs/k", query="acl=")).body) == [(me, "FULL_CONTROL")]


@pytest_twisted.ensureDeferred
async def test_grants_to_another_tenant_that_exists(server):
    await open_bucket(server, "share")
    other = await server.engine.ensure_credential("other", "OTHERACCESSKEY0000", "other-secret-key-0123456789")
    headers = {"x-amz-grant-read": f'id="{other.id}"'}
    assert (await server.request("PUT", "/share/k", b"x", headers=headers)).code == 200
    assert grants((await server.request("GET", "/share/k", query="acl=")).body) == [(other.id, "READ")]


# -- the public access block


@pytest_twisted.ensureDeferred
async def test_block_public_acls_refuses_public_acls_with_access_denied(server):
    r = await server.request("PUT", "/blocked", headers={"x-amz-object-ownership": "ObjectWriter"})
    assert r.code == 200, r.body
    r = await server.request("PUT", "/blocked/k", b"x", headers={"x-amz-acl": "public-read"})
    assert_error(r, 403, "AccessDenied")
    assert (await server.request("HEAD", "/blocked/k")).code == 404
    r = await server.request("PUT", "/blocked", query="acl=", headers={"x-amz-acl": "public-read"})
    assert_error(r, 403, "AccessDenied")
    assert (await server.request("PUT", "/blocked/k", b"x", headers={"x-amz-acl": "private"})).code == 200
    # Only BlockPublicAcls refuses them.
    only_ignore = (
        "<PublicAccessBlockConfiguration><IgnorePublicAcls>true</IgnorePublicAcls></PublicAccessBlockConfiguration>"
    )
    assert (await server.request("PUT", "/blocked", only_ignore.encode(), query="publicAccessBlock=")).code == 200
    r = await server.request("GET", "/blocked", query="publicAccessBlock=")
    assert [xml_values(r.body, n)[0] for n in ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy")] == [
        "false",
        "true",
        "false",
    ]
    assert (await server.request("PUT", "/blocked/k", b"x", headers={"x-amz-acl": "public-read"})).code == 200


@pytest_twisted.ensureDeferred
async def test_public_access_block_configuration_errors_and_delete(server):
    for body in (
        b"<PublicAccessBlockConfiguration><BlockPublicAcls>yes</BlockPublicAcls></PublicAccessBlockConfiguration>",
        b"<PublicAccessBlockConfiguration><BlockEverything>true</BlockEverything></PublicAccessBlockConfiguration>",
        b"<PublicAccessBlock/>",
        b"<PublicAccessBlockConfiguration>",
        b"<PublicAccessBlockConfiguration><BlockPublicAcls>true</BlockPublicAcls>"
        b"<BlockPublicAcls>false</BlockPublicAcls></PublicAccessBlockConfiguration>",
    ):
        r = await server.request("PUT", "/bucket", body, query="publicAccessBlock=")
        assert_error(r, 400, "MalformedXML")
    assert (await server.request("DELETE", "/bucket", query="publicAccessBlock=")).code == 204
    r = await server.request("GET", "/bucket", query="publicAccessBlock=")
    assert_error(r, 404, "NoSuchPublicAccessBlockConfiguration")
    assert (await server.request("PUT", "/bucket", NO_BLOCK.encode(), query="publicAccessBlock=")).code == 200
    r = await server.request("GET", "/bucket", query="publicAccessBlock=")
    assert xml_values(r.body, "BlockPublicAcls") == ["false"] and xml_values(r.body, "BlockPublicPolicy") == ["false"]
    assert_error(await server.request("GET", "/missing", query="publicAccessBlock="), 404, "NoSuchBucket")


# -- ownership controls


@pytest_twisted.ensureDeferred
async def test_ownership_controls_put_get_delete(server):
    await open_bucket(server, "own")
    me = await owner_id(server)
    assert (await server.request("PUT", "/own", query="acl=", headers={"x-amz-acl": "public-read"})).code == 200
    assert (await server.request("PUT", "/own/k", b"x", headers={"x-amz-acl": "public-read"})).code == 200
    # S3: a bucket ACL granting others must go before ACLs are disabled.
    enforced = OWNERSHIP.format("BucketOwnerEnforced").encode()
    r = await server.request("PUT", "/own", enforced, query="ownershipControls=")
    assert_error(r, 400, "InvalidBucketAclWithObjectOwnership")
    assert (await server.request("PUT", "/own", query="acl=", headers={"x-amz-acl": "private"})).code == 200
    assert (await server.request("PUT", "/own", enforced, query="ownershipControls=")).code == 200
    # Object ACLs stop counting: the bucket owner owns everything.
    assert grants((await server.request("GET", "/own/k", query="acl=")).body) == [(me, "FULL_CONTROL")]
    assert (await server.request("DELETE", "/own", query="ownershipControls=")).code == 204
    r = await server.request("GET", "/own", query="ownershipControls=")
    assert_error(r, 404, "OwnershipControlsNotFoundError")
    # Without controls the bucket acts as ObjectWriter: ACLs count again, the stored one too.
    assert (ALL_USERS, "READ") in grants((await server.request("GET", "/own/k", query="acl=")).body)
    for bad in (OWNERSHIP.format("Anyone"), "<OwnershipControls/>", "<OwnershipControls><Rule/></OwnershipControls>"):
        r = await server.request("PUT", "/own", bad.encode(), query="ownershipControls=")
        assert_error(r, 400, "MalformedXML")
    preferred = OWNERSHIP.format("BucketOwnerPreferred").encode()
    assert (await server.request("PUT", "/own", preferred, query="ownershipControls=")).code == 200
    r = await server.request("GET", "/own", query="ownershipControls=")
    assert xml_values(r.body, "ObjectOwnership") == ["BucketOwnerPreferred"]


# -- the deployment forbids public buckets


@pytest_twisted.ensureDeferred
async def test_deployment_without_public_buckets_refuses_public_acls_whatever_the_bucket_says(tmp_path):
    server = Server(str(tmp_path))
    server.api.public_buckets = False
    await server.start()
    try:
        await open_bucket(server, "open")
        r = await server.request("PUT", "/open/k", b"x", headers={"x-amz-acl": "public-read"})
        assert_error(r, 403, "AccessDenied")
        r = await server.request("PUT", "/open", query="acl=", headers={"x-amz-acl": "authenticated-read"})
        assert_error(r, 403, "AccessDenied")
        me = await owner_id(server)
        assert (await server.request("PUT", "/open/k", b"x", headers={"x-amz-grant-read": f'id="{me}"'})).code == 200
    finally:
        await server.stop()


def test_public_buckets_setting(tmp_path):
    assert build({}, {}).public_buckets is True
    path = tmp_path / "vaultaire.toml"
    path.write_text("[access]\npublic_buckets = false\n")
    assert build(load_file(str(path)), {}).public_buckets is False
    path.write_text('[access]\npublic_buckets = "no"\n')
    with pytest.raises(ConfigError, match="public_buckets"):
        build(load_file(str(path)), {})
    path.write_text("[access]\npublic = false\n")
    with pytest.raises(ConfigError, match="access.public"):
        load_file(str(path))


# -- ACLs decide access (the authorization step, api/authorize.py, asks Acl.allows)

OTHER_ACCESS, OTHER_SECRET = "OTHERACCESSKEY0001", "other-secret-key-0123456789"


@pytest_twisted.ensureDeferred
async def test_anonymous_reads_what_a_public_acl_grants_and_nothing_else(server):
    await open_bucket(server, "site")
    assert (await server.request("PUT", "/site/logo.png", b"PNG", headers={"x-amz-acl": "public-read"})).code == 200
    assert (await server.request("PUT", "/site/secret.txt", b"secret")).code == 200
    r = await server.request("GET", "/site/logo.png", sign=False)
    assert (r.code, r.body) == (200, b"PNG")
    assert (await server.request("HEAD", "/site/logo.png", sign=False)).code == 200
    assert_error(await server.request("GET", "/site/secret.txt", sign=False), 403, "AccessDenied")
    assert_error(await server.request("GET", "/site/logo.png", query="acl=", sign=False), 403, "AccessDenied")
    r = await server.request("PUT", "/site/logo.png", b"defaced", sign=False)
    assert_error(r, 403, "AccessDenied")
    assert_error(await server.request("GET", "/site", sign=False), 403, "AccessDenied")
    # A public-read bucket lists for anyone; its objects still answer by their own ACLs.
    assert (await server.request("PUT", "/site", query="acl=", headers={"x-amz-acl": "public-read"})).code == 200
    r = await server.request("GET", "/site", query="list-type=2", sign=False)
    assert r.code == 200, r.body
    assert xml_values(r.body, "Key") == ["logo.png", "secret.txt"]
    assert_error(await server.request("GET", "/site/secret.txt", sign=False), 403, "AccessDenied")
    # IgnorePublicAcls: the grants stay, and count for nothing.
    ignore = (
        b"<PublicAccessBlockConfiguration><IgnorePublicAcls>true</IgnorePublicAcls></PublicAccessBlockConfiguration>"
    )
    assert (await server.request("PUT", "/site", ignore, query="publicAccessBlock=")).code == 200
    assert_error(await server.request("GET", "/site/logo.png", sign=False), 403, "AccessDenied")
    assert_error(await server.request("GET", "/site", sign=False), 403, "AccessDenied")
    assert (await server.request("DELETE", "/site", query="publicAccessBlock=")).code == 204
    assert (await server.request("GET", "/site/logo.png", sign=False)).code == 200
    # The deployment forbids public buckets: what was public stops being so at once.
    server.api.public_buckets = False
    assert_error(await server.request("GET", "/site/logo.png", sign=False), 403, "AccessDenied")
    server.api.public_buckets = True
    # Ownership back to BucketOwnerEnforced: ACLs stop counting (the bucket's was made private first).
    assert (await server.request("PUT", "/site", query="acl=", headers={"x-amz-acl": "private"})).code == 200
    enforced = OWNERSHIP.format("BucketOwnerEnforced").encode()
    assert (await server.request("PUT", "/site", enforced, query="ownershipControls=")).code == 200
    assert_error(await server.request("GET", "/site/logo.png", sign=False), 403, "AccessDenied")


@pytest_twisted.ensureDeferred
async def test_another_tenant_reads_only_what_an_acl_grants_it(server):
    other = await server.engine.ensure_credential("other", OTHER_ACCESS, OTHER_SECRET)
    as_other = {"access": OTHER_ACCESS, "secret": OTHER_SECRET}
    await open_bucket(server, "shared")
    assert (await server.request("PUT", "/shared/k", b"mine")).code == 200
    assert_error(await server.request("GET", "/shared/k", **as_other), 403, "AccessDenied")
    r = await server.request("PUT", "/shared/k", query="acl=", headers={"x-amz-grant-read": f'id="{other.id}"'})
    assert r.code == 200, r.body
    r = await server.request("GET", "/shared/k", **as_other)
    assert (r.code, r.body) == (200, b"mine")
    assert_error(await server.request("GET", "/shared/k", query="acl=", **as_other), 403, "AccessDenied")
    # READ_ACP lets it see the ACL, with the owner's and its own display names.
    headers = {"x-amz-grant-read": f'id="{other.id}"', "x-amz-grant-read-acp": f'id="{other.id}"'}
    assert (await server.request("PUT", "/shared/k", query="acl=", headers=headers)).code == 200
    r = await server.request("GET", "/shared/k", query="acl=", **as_other)
    assert r.code == 200, r.body
    assert xml_values(r.body, "DisplayName") == ["default", "other", "other"]
    assert_error(await server.request("DELETE", "/shared/k", **as_other), 403, "AccessDenied")
    assert_error(await server.request("GET", "/shared", **as_other), 403, "AccessDenied")
    # WRITE on the bucket: the other tenant writes an object it owns (ObjectWriter) and may read back.
    r = await server.request("PUT", "/shared", query="acl=", headers={"x-amz-grant-write": f'id="{other.id}"'})
    assert r.code == 200, r.body
    assert (await server.request("PUT", "/shared/theirs", b"theirs", **as_other)).code == 200
    r = await server.request("GET", "/shared/theirs", query="acl=", **as_other)
    assert r.code == 200, r.body
    assert xml_values(r.body, "ID")[0] == other.id  # the writer owns it
    assert (await server.request("GET", "/shared/theirs", **as_other)).body == b"theirs"


@pytest_twisted.ensureDeferred
async def test_a_write_with_an_acl_reads_no_setting_the_authorization_step_already_read(server, monkeypatch):
    await open_bucket(server, "cheap")
    asked: list[str] = []
    original = server.engine.container_setting

    async def counting(ctx: Any, container: Any, name: str) -> str | None:
        asked.append(name)
        return await original(ctx, container, name)

    monkeypatch.setattr(server.engine, "container_setting", counting)
    assert (await server.request("PUT", "/cheap/k", b"x", headers={"x-amz-acl": "public-read"})).code == 200
    assert (await server.request("PUT", "/cheap/k", query="acl=", headers={"x-amz-acl": "private"})).code == 200
    assert [name for name in asked if name in ("acl", "ownership", "public-access-block")] == []


@pytest_twisted.ensureDeferred
async def test_bucket_owner_preferred_takes_objects_given_full_control(server):
    other = await server.engine.ensure_credential("other", OTHER_ACCESS, OTHER_SECRET)
    as_other = {"access": OTHER_ACCESS, "secret": OTHER_SECRET}
    me = await owner_id(server)
    await open_bucket(server, "drop", ownership="BucketOwnerPreferred")
    r = await server.request("PUT", "/drop", query="acl=", headers={"x-amz-grant-write": f'id="{other.id}"'})
    assert r.code == 200, r.body
    given = {"x-amz-acl": "bucket-owner-full-control"}
    assert (await server.request("PUT", "/drop/given", b"x", headers=given, **as_other)).code == 200
    assert (await server.request("PUT", "/drop/kept", b"y", **as_other)).code == 200
    r = await server.request("GET", "/drop/given", query="acl=")
    assert xml_values(r.body, "ID")[0] == me and grants(r.body) == [(me, "FULL_CONTROL")]
    assert (await server.request("GET", "/drop/given")).body == b"x"
    # Without bucket-owner-full-control the writer keeps it.
    r = await server.request("GET", "/drop/kept", query="acl=", **as_other)
    assert xml_values(r.body, "ID")[0] == other.id
    # ... and the bucket owner may not read it (S3: no grant from its owner), only delete it.
    assert_error(await server.request("GET", "/drop/kept"), 403, "AccessDenied")
    assert_error(await server.request("GET", "/drop/kept", query="acl="), 403, "AccessDenied")
    assert (await server.request("DELETE", "/drop/kept")).code == 204
