"""CreateBucket with its initial settings (CreateBucketConfiguration <Tags>, x-amz-object-ownership,
x-amz-acl / x-amz-grant-*, x-amz-bucket-object-lock-enabled) is one catalog transaction: no crash
can leave the bucket without the settings it was created with."""

from __future__ import annotations

from typing import Any

import pytest_twisted

from tests.s3helpers import Server, xml_values

TAGS = (
    b"<CreateBucketConfiguration><Tags><Tag><Key>team</Key><Value>storage</Value></Tag></Tags>"
    b"</CreateBucketConfiguration>"
)


@pytest_twisted.ensureDeferred
async def test_create_bucket_writes_its_settings_in_the_creating_transaction(server: Server) -> None:
    other = await server.catalog.ensure_tenant("other")
    real = server.catalog.put_setting

    def crash(*args: Any, **kw: Any) -> Any:
        # A setting written after the bucket is a second transaction: a crash could fall between.
        raise RuntimeError("the process died between two transactions")

    server.catalog.put_setting = crash  # type: ignore[method-assign]
    try:
        r = await server.request(
            "PUT",
            "/born",
            TAGS,
            headers={
                "x-amz-object-ownership": "ObjectWriter",
                "x-amz-grant-read": f"id={other.id}",
                "x-amz-bucket-object-lock-enabled": "true",
            },
        )
    finally:
        server.catalog.put_setting = real  # type: ignore[method-assign]
    assert r.code == 200, r.body
    r = await server.request("GET", "/born", query="tagging=")
    assert (xml_values(r.body, "Key"), xml_values(r.body, "Value")) == (["team"], ["storage"])
    r = await server.request("GET", "/born", query="ownershipControls=")
    assert xml_values(r.body, "ObjectOwnership") == ["ObjectWriter"], r.body
    r = await server.request("GET", "/born", query="acl=")
    assert other.id in xml_values(r.body, "ID"), r.body
    r = await server.request("GET", "/born", query="versioning=")
    assert xml_values(r.body, "Status") == ["Enabled"]
    r = await server.request("GET", "/born", query="object-lock=")
    assert r.code == 200 and xml_values(r.body, "ObjectLockEnabled") == ["Enabled"], r.body


@pytest_twisted.ensureDeferred
async def test_a_bucket_created_without_settings_has_none(server: Server) -> None:
    assert (await server.request("PUT", "/plain")).code == 200
    c = await server.catalog.container((await server.catalog.tenant("default")).id, "plain")
    assert c is not None
    for name in ("tagging", "ownership", "acl", "versioning", "object-lock"):
        assert await server.catalog.setting(c, name) is None, name
