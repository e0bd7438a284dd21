"""Object and bucket tags: Put/Get/DeleteObjectTagging (per version) and Put/Get/DeleteBucketTagging.

An object's tags live with its version (``Artifact.tags``) and change in one catalog
transaction (``amend_artifact``), never touching its bytes; a bucket's tag set is the
container setting ``tagging``. The limits and the header form are ``vaultaire/tags.py``;
tags given when an object is written (``x-amz-tagging``, a POST form's ``tagging``,
CreateMultipartUpload, CopyObject's ``x-amz-tagging-directive``) are read where those
operations live, with :func:`request_tags` and :func:`parse_document` from here.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable

from attrs import evolve

from vaultaire import tags as tagrules
from vaultaire.api import checksums, xmlparse
from vaultaire.api.call import OperationBase, S3Call
from vaultaire.api.errors import S3Error, delete_marker_addressed
from vaultaire.api.versioning import echo_version, requested_version
from vaultaire.api.xmlout import Element, element
from vaultaire.errors import DeleteMarkerAddressed
from vaultaire.model import Artifact, Container
from vaultaire.tags import Tags

SETTING = "tagging"
# 50 tags of 128 + 256 characters, each up to 4 UTF-8 bytes, escaped: well under this.
TAGGING_BODY_LIMIT = 256 * 1024


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _only_text(parent: ET.Element, name: str) -> str:
    """The text of the one child ``name`` of ``parent`` (empty if it is empty); MalformedXML otherwise."""
    found = [child for child in parent if _local(child.tag) == name]
    if len(found) != 1 or len(found[0]):
        raise S3Error("MalformedXML")
    return found[0].text or ""


def parse_document(body: bytes | str, *, bucket: bool = False) -> Tags:
    """The tags of a ``<Tagging><TagSet><Tag><Key/><Value/></Tag>...</TagSet></Tagging>`` document.

    Anything else in it is MalformedXML, as S3's schema makes it; the tags are then
    checked against S3's limits (InvalidTag, BadRequest).
    """
    root = xmlparse.parse(body.encode("utf-8") if isinstance(body, str) else body)
    if _local(root.tag) != "Tagging" or len(root) != 1 or _local(root[0].tag) != "TagSet":
        raise S3Error("MalformedXML")
    found = _tag_list(root[0])
    return checked(lambda: tagrules.validate(found, bucket=bucket))


def create_bucket_tags(body: bytes) -> Tags:
    """The tags a CreateBucketConfiguration gives the new bucket (its ``Tags`` element), checked."""
    if not body.strip():
        return ()
    found = tuple(tag for group in xmlparse.parse(body) if _local(group.tag) == "Tags" for tag in _tag_list(group))
    return checked(lambda: tagrules.validate(found, bucket=True))


def _tag_list(parent: ET.Element) -> Tags:
    """(key, value) of each ``<Tag><Key/><Value/></Tag>`` in ``parent``, which holds nothing else."""
    found: list[tuple[str, str]] = []
    for tag in parent:
        if _local(tag.tag) != "Tag" or any(_local(child.tag) not in ("Key", "Value") for child in tag):
            raise S3Error("MalformedXML")
        found.append((_only_text(tag, "Key"), _only_text(tag, "Value")))
    return tuple(found)


def checked(read: Callable[[], Tags]) -> Tags:
    """Run a ``vaultaire.tags`` reader, its refusal rendered as the S3 error it names."""
    try:
        return read()
    except tagrules.InvalidTags as e:
        raise S3Error(e.code, e.message, **e.extra) from None


def request_tags(call: S3Call) -> Tags:
    """The tags an object write asks for with ``x-amz-tagging`` (none without the header)."""
    header = call.headers.get("x-amz-tagging")
    if header is None:
        return ()
    return checked(lambda: tagrules.parse_header(header))


def tagging_document(tags: Tags, *, xmlns: bool = True) -> Element:
    """S3's ``Tagging`` answer; tags in key order, as S3 returns them."""
    entries = [element("Tag", element("Key", k), element("Value", v)) for k, v in sorted(tags)]
    return element("Tagging", element("TagSet", *entries), xmlns=xmlns)


def setting_of(tags: Tags) -> str:
    """How a bucket's tag set is kept in its container setting."""
    return json.dumps([list(t) for t in tags])


def note_tags(call: S3Call, tags: Tags) -> None:
    """Put the tags an object write stored in its event (only when it stored some: events stay
    small; a bucket's up to 50 tags are not logged)."""
    if tags:
        call.event["tags"] = tagrules.as_dict(tags)


class TaggingOperations(OperationBase):
    """The ?tagging subresource of objects and buckets."""

    # -- objects

    async def _version(self, call: S3Call, container: Container, version_id: str | None) -> Artifact:
        """The version a request names (the current one without ``versionId``), with S3's errors:
        404 NoSuchKey (saying so when the current version is a delete marker), NoSuchVersion, and
        405 for a delete marker named by its id."""
        assert call.target.key is not None
        try:
            return await self.engine.artifact(call.ctx, container, call.target.key, version_id)
        except DeleteMarkerAddressed as e:
            raise delete_marker_addressed(e.marker, call.request.method.decode("latin-1")) from None

    async def get_object_tagging(self, call: S3Call) -> bytes:
        version_id = requested_version(call)
        container = await self._container(call)
        artifact = await self._version(call, container, version_id)
        echo_version(call, artifact, asked=version_id is not None)
        return self._xml(call, tagging_document(artifact.tags))

    async def put_object_tagging(self, call: S3Call) -> bytes:
        version_id = requested_version(call)
        container = await self._container(call)
        body = await self._small_body(call, TAGGING_BODY_LIMIT)
        checksums.check_stated(call.headers, body)
        tags = parse_document(body)
        artifact = await self._amend(call, container, version_id, tags)
        echo_version(call, artifact, asked=version_id is not None)
        note_tags(call, tags)
        call.set_header("Content-Length", "0")
        return b""

    async def delete_object_tagging(self, call: S3Call) -> bytes:
        version_id = requested_version(call)
        container = await self._container(call)
        artifact = await self._amend(call, container, version_id, ())
        echo_version(call, artifact, asked=version_id is not None)
        call.request.setResponseCode(204)
        return b""

    async def _amend(self, call: S3Call, container: Container, version_id: str | None, tags: Tags) -> Artifact:
        assert call.target.key is not None
        # Read first for S3's errors on a delete marker; the amendment checks again in its transaction.
        await self._version(call, container, version_id)

        def retag(old: Artifact) -> Artifact:
            return evolve(old, tags=tags)

        return await self.engine.amend(call.ctx, container, call.target.key, version_id, retag)

    # -- buckets

    async def get_bucket_tagging(self, call: S3Call) -> bytes:
        container = await self._container(call)
        document = await self.engine.container_setting(call.ctx, container, SETTING)
        if document is None:
            raise S3Error("NoSuchTagSet", BucketName=container.name)
        stored = tuple((k, v) for k, v in json.loads(document))
        return self._xml(call, tagging_document(stored))

    async def put_bucket_tagging(self, call: S3Call) -> bytes:
        container = await self._container(call)
        body = await self._small_body(call, TAGGING_BODY_LIMIT)
        self._check_body_integrity(call, body)
        tags = parse_document(body, bucket=True)
        await self.engine.put_container_setting(call.ctx, container, SETTING, setting_of(tags))
        # S3 documents 200 with an empty body for PutBucketTagging (its sample shows 204).
        call.set_header("Content-Length", "0")
        return b""

    async def delete_bucket_tagging(self, call: S3Call) -> bytes:
        container = await self._container(call)
        await self.engine.delete_container_setting(call.ctx, container, SETTING)
        call.request.setResponseCode(204)
        return b""
