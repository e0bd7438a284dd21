"""Bucket and object ACLs: Get/PutBucketAcl, Get/PutObjectAcl, and the ACL a write asks for.

An ACL comes from exactly one of: ``x-amz-acl`` (a canned ACL), the ``x-amz-grant-*``
headers, or (Put*Acl only) an AccessControlPolicy document. A bucket's ACL is its
container setting "acl", an object's is ``Artifact.acl`` of its version; "" is the
owner's private default, so a bucket or object nobody gave an ACL costs nothing.

Ownership controls (ownership.py) decide whether ACLs count at all, and who owns a
new object; the public access block (public_access_block.py) whether a public one may
be stored. The decision step (authorize.py) reads the same documents to decide access.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping

from attrs import evolve

from vaultaire.access import acl as acls
from vaultaire.access.acl import BUCKET_OWNER_ENFORCED, Acl, AclError, PublicAccessBlock
from vaultaire.api import xmlparse
from vaultaire.api.access_documents import document as access_document
from vaultaire.api.call import OperationBase, S3Call
from vaultaire.api.errors import S3Error
from vaultaire.api.versioning import echo_version, requested_version
from vaultaire.api.xmlout import Element, element
from vaultaire.model import Artifact, Container

SETTING = "acl"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
_XSI_TYPE = "{" + XSI + "}type"
_GRANTEE_KINDS = {
    "CanonicalUser": ("id", "ID"),
    "Group": ("uri", "URI"),
    "AmazonCustomerByEmail": ("emailaddress", "EmailAddress"),
}


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _malformed() -> S3Error:
    return S3Error("MalformedACLError")


def parse_policy(body: bytes, owner: str) -> Acl:
    """An AccessControlPolicy document for a resource ``owner`` owns.

    Its Owner, when given, must be that owner: an ACL never changes who owns a
    resource (S3 answers AccessDenied).
    """
    try:
        root = xmlparse.parse(body)
    except S3Error as e:
        raise S3Error("MalformedACLError", e.message) from None
    if _local(root.tag) != "AccessControlPolicy":
        raise _malformed()
    stated_owner: str | None = None
    grants: list[acls.Grant] = []
    for child in root:
        name = _local(child.tag)
        if name == "Owner":
            ids = [(f.text or "").strip() for f in child if _local(f.tag) == "ID"]
            if len(ids) != 1:
                raise _malformed()
            stated_owner = ids[0]
        elif name == "AccessControlList":
            for grant in child:
                if _local(grant.tag) != "Grant":
                    raise _malformed()
                grants.append(_parse_grant(grant))
        else:
            raise _malformed()
    if stated_owner is not None and stated_owner != owner:
        raise S3Error("AccessDenied")
    return acls.make(owner, grants)


def _parse_grant(grant: ET.Element) -> acls.Grant:
    grantees = [f for f in grant if _local(f.tag) == "Grantee"]
    permissions = [(f.text or "").strip() for f in grant if _local(f.tag) == "Permission"]
    if len(grantees) != 1 or len(permissions) != 1 or len(grant) != 2:
        raise _malformed()
    grantee = grantees[0]
    kind = _GRANTEE_KINDS.get(grantee.get(_XSI_TYPE, ""))
    if kind is None:
        raise _malformed()
    header_kind, field = kind
    values = [(f.text or "").strip() for f in grantee if _local(f.tag) == field]
    if len(values) != 1:
        raise _malformed()
    return acls.grant_for(header_kind, values[0], permissions[0], "AccessControlPolicy")


def render_policy(acl: Acl, names: Mapping[str, str]) -> Element:
    """An ACL as S3's AccessControlPolicy; ``names`` gives display names of the tenants it knows."""

    def person(tag: str, tenant_id: str, attrs: str = "") -> Element:
        children = [element("ID", tenant_id)]
        if tenant_id in names:
            children.append(element("DisplayName", names[tenant_id]))
        return Element(tag, tuple(children), None, attrs)

    grants = []
    for grant in acl.grants:
        kind = "Group" if grant.is_group else "CanonicalUser"
        attrs = f' xmlns:xsi="{XSI}" xsi:type="{kind}"'
        if grant.is_group:
            grantee = Element("Grantee", (element("URI", grant.grantee),), None, attrs)
        else:
            grantee = person("Grantee", grant.grantee, attrs)
        grants.append(element("Grant", grantee, element("Permission", grant.permission)))
    return element(
        "AccessControlPolicy",
        person("Owner", acl.owner),
        element("AccessControlList", *grants),
        xmlns=True,
    )


def requested(
    headers: Mapping[str, str], owner: str, bucket_owner: str, *, for_bucket: bool, body: bytes | None = None
) -> Acl | None:
    """The ACL a request asks for (None: it asks for none), from exactly one source.

    ``body`` is a Put*Acl request's body: there an ACL must be given one way or another.
    """
    canned_name = headers.get("x-amz-acl")
    granted = acls.from_grant_headers(headers, owner)
    if canned_name is not None and granted is not None:
        raise S3Error("InvalidRequest", "Specifying both Canned ACLs and Header Grants is not allowed")
    if body is not None and body.strip():
        if canned_name is not None or granted is not None:
            raise S3Error("UnexpectedContent")
        return parse_policy(body, owner)
    if canned_name is not None:
        return acls.canned(canned_name, owner, bucket_owner, for_bucket=for_bucket)
    if granted is None and body is not None:
        raise S3Error("MissingSecurityHeader", MissingHeaderName="x-amz-acl")
    return granted


def _has_acl_headers(headers: Mapping[str, str]) -> bool:
    return "x-amz-acl" in headers or any(name.startswith("x-amz-grant-") for name in headers)


class AclOperations(OperationBase):
    """Get/PutBucketAcl, Get/PutObjectAcl, and the ACL of what other operations create."""

    def _caller(self, call: S3Call) -> str:
        """The caller's tenant id; "" for an anonymous caller.

        Not ``call.ctx.tenant``: once a request across tenants is allowed, that is the bucket
        owner's (whose container, quota and bill it is), not the writer's."""
        return call.identity.tenant.id if call.identity is not None else ""

    def _names(self, call: S3Call) -> dict[str, str]:
        """Display names of the tenants this request already knows: the caller's and the bucket owner's."""
        names = {}
        if call.access is not None:
            names[call.access.owner.id] = call.access.owner.name
        if call.identity is not None:
            names[call.identity.tenant.id] = call.identity.tenant.name
        return names

    async def _bucket_acl(self, call: S3Call, container: Container) -> Acl:
        stored = await access_document(self.engine, call, container, SETTING)
        return acls.loads(stored or "", container.tenant_id)

    async def _admit(self, call: S3Call, container: Container, acl: Acl, ownership: str) -> None:
        """Refuse an ACL the bucket's ownership or public access block forbids, or naming nobody."""
        if ownership == BUCKET_OWNER_ENFORCED and not acl.is_private_to(container.tenant_id):
            raise S3Error("AccessControlListNotSupported")
        if acl.is_public() and (await self._public_access_block(call, container)).block_public_acls:
            raise S3Error("AccessDenied")
        await self._check_grantees(acl, {container.tenant_id, self._caller(call)})

    async def _check_grantees(self, acl: Acl, known: set[str]) -> None:
        for tenant_id in sorted(acl.canonical_ids() - known):
            if not await self.engine.tenant_exists(tenant_id):
                raise S3Error("InvalidArgument", "Invalid id", ArgumentName="CanonicalUser/ID", ArgumentValue=tenant_id)

    # -- buckets

    async def get_bucket_acl(self, call: S3Call) -> bytes:
        container = await self._container(call)
        acl = await self._bucket_acl(call, container)
        return self._xml(call, render_policy(acl, self._names(call)))

    async def put_bucket_acl(self, call: S3Call) -> bytes:
        container = await self._container(call)
        owner = container.tenant_id
        body = await self._small_body(call)
        acl = requested(call.headers, owner, owner, for_bucket=True, body=body)
        assert acl is not None  # a Put*Acl request without one is refused
        await self._admit(call, container, acl, await self._ownership(call, container))
        text = acls.stored(acl, owner)
        if text:
            await self.engine.put_container_setting(call.ctx, container, SETTING, text)
        else:
            await self.engine.delete_container_setting(call.ctx, container, SETTING)
        call.set_header("Content-Length", "0")
        return b""

    def _bucket_creation_acl(self, call: S3Call, ownership: str, block: PublicAccessBlock) -> str:
        """CreateBucket's ACL, checked before the bucket exists; "" for the private default."""
        caller = self._caller(call)
        acl = requested(call.headers, caller, caller, for_bucket=True)
        if acl is None:
            return ""
        if ownership == BUCKET_OWNER_ENFORCED and not acl.is_private_to(caller):
            raise S3Error("InvalidBucketAclWithObjectOwnership")
        if acl.is_public() and block.block_public_acls:
            raise S3Error("InvalidBucketAclWithBlockPublicAccessError")
        return acls.stored(acl, caller)

    # -- objects

    async def _new_object_acl(self, call: S3Call, container: Container, headers: Mapping[str, str]) -> str:
        """The ACL to store with an object this request writes (PUT, copy, multipart, POST).

        Checked before the body is read. Without ACL headers, from the bucket's own tenant,
        it is "" (the bucket owner's private default) without reading any setting.
        """
        writer = self._caller(call)
        bucket_owner = container.tenant_id
        if not _has_acl_headers(headers) and writer in ("", bucket_owner):
            return ""
        ownership = await self._ownership(call, container)
        owner = acls.owner_of_new_object(ownership, writer, bucket_owner, headers.get("x-amz-acl"))
        acl = requested(headers, owner, bucket_owner, for_bucket=False) or acls.private(owner)
        await self._admit(call, container, acl, ownership)
        return acls.stored(acl, bucket_owner)

    async def _acl_target(self, call: S3Call, container: Container) -> Artifact:
        """The version ``?versionId=`` names (the current one without it)."""
        assert call.target.key is not None
        version = requested_version(call)
        artifact = await self.engine.artifact(call.ctx, container, call.target.key, version)
        echo_version(call, artifact, asked=version is not None)
        return artifact

    async def get_object_acl(self, call: S3Call) -> bytes:
        container = await self._container(call)
        artifact = await self._acl_target(call, container)
        if await self._ownership(call, container) == BUCKET_OWNER_ENFORCED:
            acl = acls.private(container.tenant_id)  # the bucket owner owns everything, whatever was stored
        else:
            acl = acls.loads(artifact.acl, container.tenant_id)
        return self._xml(call, render_policy(acl, self._names(call)))

    async def put_object_acl(self, call: S3Call) -> bytes:
        assert call.target.key is not None
        container = await self._container(call)
        bucket_owner = container.tenant_id
        body = await self._small_body(call)
        artifact = await self._acl_target(call, container)
        ownership = await self._ownership(call, container)
        owner = bucket_owner if ownership == BUCKET_OWNER_ENFORCED else acls.loads(artifact.acl, bucket_owner).owner
        acl = requested(call.headers, owner, bucket_owner, for_bucket=False, body=body)
        assert acl is not None  # a Put*Acl request without one is refused
        await self._admit(call, container, acl, ownership)
        text = acls.stored(acl, bucket_owner)

        def change(old: Artifact) -> Artifact:
            if old.version_id != artifact.version_id or old.locator != artifact.locator or old.md5 != artifact.md5:
                # Overwritten since we read it: its owner may differ, so the ACL was checked for another object.
                raise S3Error("ConditionalRequestConflict")
            return evolve(old, acl=text)

        await self.engine.amend_artifact(call.ctx, container, call.target.key, artifact.version_id, change)
        call.set_header("Content-Length", "0")
        return b""


__all__ = ["AclError", "AclOperations", "parse_policy", "render_policy", "requested"]
