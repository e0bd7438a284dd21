"""ACLs as values (vaultaire.access.acl) and as S3 documents (vaultaire.api.acl_operations): pure tests.

Canned ACLs, x-amz-grant-* headers, S3's permission -> action table, is_public,
AccessControlPolicy XML both ways, and every refusal with S3's error code.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vaultaire.access import acl as acls
from vaultaire.access.acl import (
    ALL_USERS,
    AUTHENTICATED_USERS,
    LOG_DELIVERY,
    Acl,
    AclError,
    Grant,
    PublicAccessBlock,
)
from vaultaire.access.request import ANONYMOUS, Principal
from vaultaire.api.acl_operations import parse_policy, render_policy, requested
from vaultaire.api.errors import S3Error, from_domain
from vaultaire.api.xmlout import xml_document

A, B, C = "a" * 32, "b" * 32, "c" * 32
ROOT_A = Principal(tenant_id=A, user="", user_id=A)
ROOT_B = Principal(tenant_id=B, user="", user_id=B)
USER_C = Principal(tenant_id=C, user="app", user_id="AIDC")


def code_of(exc: BaseException) -> str:
    error = from_domain(exc, "bucket", "key")
    assert error is not None
    return error.code


# -- canned ACLs


@pytest.mark.parametrize(
    ("name", "grants"),
    [
        ("private", [(A, "FULL_CONTROL")]),
        ("public-read", [(A, "FULL_CONTROL"), (ALL_USERS, "READ")]),
        ("public-read-write", [(A, "FULL_CONTROL"), (ALL_USERS, "READ"), (ALL_USERS, "WRITE")]),
        ("authenticated-read", [(A, "FULL_CONTROL"), (AUTHENTICATED_USERS, "READ")]),
        ("bucket-owner-read", [(A, "FULL_CONTROL"), (B, "READ")]),
        ("bucket-owner-full-control", [(A, "FULL_CONTROL"), (B, "FULL_CONTROL")]),
    ],
)
def test_canned_acls_of_an_object_written_into_another_tenants_bucket(name, grants):
    acl = acls.canned(name, A, B)
    assert acl.owner == A
    assert [(g.grantee, g.permission) for g in acl.grants] == grants


def test_bucket_owner_canned_acls_in_ones_own_bucket_are_private():
    assert acls.canned("bucket-owner-full-control", A, A) == acls.private(A)
    assert acls.canned("bucket-owner-read", A, A) == acls.private(A)


def test_log_delivery_write_is_for_buckets_only():
    acl = acls.canned("log-delivery-write", A, A, for_bucket=True)
    assert Grant(LOG_DELIVERY, "WRITE") in acl.grants and Grant(LOG_DELIVERY, "READ_ACP") in acl.grants
    assert not acl.is_public()
    with pytest.raises(AclError) as e:
        acls.canned("log-delivery-write", A, A)
    assert e.value.code == "InvalidArgument"


def test_unknown_canned_acl_is_invalid_argument_and_exec_read_is_not_implemented():
    with pytest.raises(AclError) as e:
        acls.canned("public", A, A)
    assert code_of(e.value) == "InvalidArgument"
    assert from_domain(e.value, None, None).extra == {"ArgumentName": "x-amz-acl", "ArgumentValue": "public"}
    with pytest.raises(AclError) as e:
        acls.canned("aws-exec-read", A, A)
    assert code_of(e.value) == "NotImplemented"


# -- grant headers


def test_grant_headers_make_exactly_the_acl_they_list():
    headers = {
        "x-amz-grant-read": f'uri="{ALL_USERS}", id="{B}"',
        "x-amz-grant-full-control": f"id={A}",
        "x-amz-grant-write-acp": f'  id = "{C}"  ',
    }
    acl = acls.from_grant_headers(headers, A)
    assert acl is not None and acl.owner == A
    assert set(acl.grants) == {
        Grant(ALL_USERS, "READ"),
        Grant(B, "READ"),
        Grant(A, "FULL_CONTROL"),
        Grant(C, "WRITE_ACP"),
    }
    assert acls.from_grant_headers({"x-amz-acl": "private"}, A) is None


def test_grant_headers_drop_repeats():
    acl = acls.from_grant_headers({"x-amz-grant-read": f'id="{B}",id="{B}"'}, A)
    assert acl is not None and acl.grants == (Grant(B, "READ"),)


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({"x-amz-grant-read": 'emailAddress="x@example.com"'}, "UnresolvableGrantByEmailAddress"),
        ({"x-amz-grant-read": 'uri="http://acs.amazonaws.com/groups/global/Nobody"'}, "InvalidArgument"),
        ({"x-amz-grant-read": 'id=""'}, "InvalidArgument"),
        ({"x-amz-grant-read": 'name="someone"'}, "InvalidArgument"),
        ({"x-amz-grant-read": "someone"}, "InvalidArgument"),
        ({"x-amz-grant-read": 'id="a'}, "InvalidArgument"),
        ({"x-amz-grant-read": 'id="a" x'}, "InvalidArgument"),
        ({"x-amz-grant-read": 'id="a",'}, "InvalidArgument"),
        ({"x-amz-grant-read": ""}, "InvalidArgument"),
        ({"x-amz-grant-everything": f'id="{A}"'}, "InvalidArgument"),
        ({"x-amz-grant-read": ",".join(f'id="{i:032x}"' for i in range(101))}, "InvalidArgument"),
    ],
)
def test_bad_grant_headers_are_refused_with_s3s_codes(headers, code):
    with pytest.raises(AclError) as e:
        acls.from_grant_headers(headers, A)
    assert code_of(e.value) == code


def test_a_hundred_grants_are_allowed():
    acl = acls.from_grant_headers({"x-amz-grant-read": ",".join(f'id="{i:032x}"' for i in range(100))}, A)
    assert acl is not None and len(acl.grants) == 100


# -- what each permission allows


def test_public_read_object_is_readable_by_anyone_and_nothing_more():
    acl = acls.canned("public-read", A, A)
    for who in (ANONYMOUS, ROOT_B, USER_C):
        assert acl.allows(who, "s3:GetObject", is_bucket=False)
        assert acl.allows(who, "s3:GetObjectVersion", is_bucket=False)
        assert not acl.allows(who, "s3:GetObjectAcl", is_bucket=False)
        assert not acl.allows(who, "s3:PutObjectAcl", is_bucket=False)
        assert not acl.allows(who, "s3:DeleteObject", is_bucket=False)
    assert acl.allows(ROOT_A, "s3:PutObjectAcl", is_bucket=False)


def test_authenticated_read_excludes_anonymous_callers():
    acl = acls.canned("authenticated-read", A, A, for_bucket=True)
    assert acl.allows(USER_C, "s3:ListBucket", is_bucket=True)
    assert not acl.allows(ANONYMOUS, "s3:ListBucket", is_bucket=True)


def test_bucket_permissions_follow_s3s_table():
    read = Acl(A, (Grant(B, "READ"),))
    for action in ("s3:ListBucket", "s3:ListBucketVersions", "s3:ListBucketMultipartUploads"):
        assert read.allows(ROOT_B, action, is_bucket=True)
    assert not read.allows(ROOT_B, "s3:GetObject", is_bucket=True)  # objects are read by their own ACL
    assert not read.allows(ROOT_B, "s3:PutObject", is_bucket=True)
    write = Acl(A, (Grant(B, "WRITE"),))
    for action in ("s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"):
        assert write.allows(ROOT_B, action, is_bucket=True)
    assert not write.allows(ROOT_B, "s3:ListBucket", is_bucket=True)
    assert not write.allows(ROOT_B, "s3:DeleteObjectVersion", is_bucket=True)  # only the bucket owner's WRITE
    assert not Acl(A, (Grant(B, "READ_ACP"),)).allows(ROOT_B, "s3:PutBucketAcl", is_bucket=True)
    assert Acl(A, (Grant(B, "READ_ACP"),)).allows(ROOT_B, "s3:GetBucketAcl", is_bucket=True)
    assert Acl(A, (Grant(B, "WRITE_ACP"),)).allows(ROOT_B, "s3:PutBucketAcl", is_bucket=True)
    full = Acl(A, (Grant(B, "FULL_CONTROL"),))
    for action in ("s3:ListBucket", "s3:PutObject", "s3:GetBucketAcl", "s3:PutBucketAcl"):
        assert full.allows(ROOT_B, action, is_bucket=True)
    assert not full.allows(ROOT_B, "s3:PutBucketPolicy", is_bucket=True)
    assert not full.allows(ROOT_B, "s3:DeleteBucket", is_bucket=True)


def test_object_write_grants_nothing_and_full_control_is_read_and_acp():
    assert not Acl(A, (Grant(B, "WRITE"),)).allows(ROOT_B, "s3:PutObject", is_bucket=False)
    full = Acl(A, (Grant(B, "FULL_CONTROL"),))
    for action in ("s3:GetObject", "s3:GetObjectAcl", "s3:PutObjectAcl", "s3:PutObjectVersionAcl"):
        assert full.allows(ROOT_B, action, is_bucket=False)
    assert not full.allows(ROOT_B, "s3:DeleteObject", is_bucket=False)


def test_the_owner_may_always_read_and_write_the_acl():
    bare = Acl(B, ())
    assert bare.allows(ROOT_B, "s3:GetObjectAcl", is_bucket=False)
    assert bare.allows(ROOT_B, "s3:PutObjectAcl", is_bucket=False)
    assert not bare.allows(ROOT_B, "s3:GetObject", is_bucket=False)
    assert not bare.allows(ROOT_A, "s3:GetObjectAcl", is_bucket=False)


def test_bucket_owners_write_deletes_versions():
    acl = Acl(A, (Grant(A, "WRITE"),))
    assert acl.allows(ROOT_A, "s3:DeleteObjectVersion", is_bucket=True)


def test_a_canonical_id_grant_names_a_tenant_not_anonymous():
    acl = Acl(A, (Grant(C, "READ"),))
    assert acl.allows(USER_C, "s3:GetObject", is_bucket=False)  # any user of tenant C (its policy decides)
    assert not acl.allows(ROOT_B, "s3:GetObject", is_bucket=False)
    assert not acl.allows(ANONYMOUS, "s3:GetObject", is_bucket=False)
    assert not Acl(A, (Grant("", "READ"),)).allows(ANONYMOUS, "s3:GetObject", is_bucket=False)


def test_ignore_public_acls_drops_group_grants_only():
    acl = Acl(A, (Grant(ALL_USERS, "READ"), Grant(AUTHENTICATED_USERS, "READ"), Grant(B, "READ")))
    assert acl.allows(ANONYMOUS, "s3:GetObject", is_bucket=False)
    assert not acl.allows(ANONYMOUS, "s3:GetObject", is_bucket=False, ignore_public=True)
    assert not acl.allows(USER_C, "s3:GetObject", is_bucket=False, ignore_public=True)
    assert acl.allows(ROOT_B, "s3:GetObject", is_bucket=False, ignore_public=True)


def test_is_public_means_all_users_or_authenticated_users():
    assert acls.canned("public-read", A, A).is_public()
    assert acls.canned("authenticated-read", A, A).is_public()
    assert not acls.canned("bucket-owner-full-control", A, B).is_public()
    assert not acls.private(A).is_public()


def test_is_private_to():
    assert acls.private(A).is_private_to(A)
    assert Acl(A, ()).is_private_to(A)
    assert not acls.private(A).is_private_to(B)
    assert not acls.canned("bucket-owner-read", B, A).is_private_to(A)


# -- storage


def test_stored_form_round_trips_and_the_private_default_is_empty():
    acl = acls.canned("public-read-write", B, A)
    text = acls.stored(acl, A)
    assert text and acls.loads(text, A) == acl
    assert acls.stored(acls.private(A), A) == ""
    assert acls.loads("", A) == acls.private(A)
    assert acls.stored(acls.private(B), A) != ""  # another tenant's object keeps its owner


def test_owner_of_a_new_object():
    enforced, preferred, writer = acls.OWNERSHIPS
    assert acls.owner_of_new_object(enforced, B, A, None) == A
    assert acls.owner_of_new_object(preferred, B, A, "bucket-owner-full-control") == A
    assert acls.owner_of_new_object(preferred, B, A, "private") == B
    assert acls.owner_of_new_object(writer, B, A, "bucket-owner-full-control") == B
    assert acls.owner_of_new_object(writer, "", A, None) == A


def test_public_access_block_values():
    block = PublicAccessBlock(True, False, True, False)
    assert PublicAccessBlock.loads(block.dumps()) == block
    assert block.union(PublicAccessBlock(False, True, False, False)) == PublicAccessBlock(True, True, True, False)
    assert acls.BLOCK_NONE.union(acls.BLOCK_ALL) == acls.BLOCK_ALL


# -- AccessControlPolicy documents

XSI = 'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'


def policy_xml(owner: str, *grants: str) -> bytes:
    return (
        '<AccessControlPolicy xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        f"<Owner><ID>{owner}</ID></Owner><AccessControlList>{''.join(grants)}</AccessControlList>"
        "</AccessControlPolicy>"
    ).encode()


def user_grant(tenant: str, permission: str) -> str:
    return (
        f'<Grant><Grantee {XSI} xsi:type="CanonicalUser"><ID>{tenant}</ID><DisplayName>x</DisplayName></Grantee>'
        f"<Permission>{permission}</Permission></Grant>"
    )


def group_grant(uri: str, permission: str) -> str:
    grantee = f'<Grantee {XSI} xsi:type="Group"><URI>{uri}</URI></Grantee>'
    return f"<Grant>{grantee}<Permission>{permission}</Permission></Grant>"


def test_policy_xml_round_trip():
    acl = parse_policy(policy_xml(A, user_grant(A, "FULL_CONTROL"), group_grant(ALL_USERS, "READ")), A)
    assert acl == Acl(A, (Grant(A, "FULL_CONTROL"), Grant(ALL_USERS, "READ")))
    rendered = xml_document(render_policy(acl, {A: "alice"}))
    root = ET.fromstring(rendered)
    ns = "{http://s3.amazonaws.com/doc/2006-03-01/}"
    assert root.find(f"{ns}Owner/{ns}ID").text == A
    assert root.find(f"{ns}Owner/{ns}DisplayName").text == "alice"
    grantee = root.find(f"{ns}AccessControlList/{ns}Grant/{ns}Grantee")
    assert grantee.get("{http://www.w3.org/2001/XMLSchema-instance}type") == "CanonicalUser"
    assert parse_policy(rendered, A) == acl


def test_policy_without_owner_or_grants_is_accepted():
    body = b'<AccessControlPolicy xmlns="http://s3.amazonaws.com/doc/2006-03-01/"></AccessControlPolicy>'
    assert parse_policy(body, A) == Acl(A, ())


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"<AccessControlPolicy>", "MalformedACLError"),
        (b"<Policy/>", "MalformedACLError"),
        (policy_xml(A, "<Grant><Permission>READ</Permission></Grant>"), "MalformedACLError"),
        (policy_xml(A, user_grant(B, "READ").replace("<Permission>READ</Permission>", "")), "MalformedACLError"),
        (policy_xml(A, user_grant(B, "EVERYTHING")), "MalformedACLError"),
        (policy_xml(A, user_grant(B, "READ").replace("CanonicalUser", "Robot")), "MalformedACLError"),
        (policy_xml(A, user_grant(B, "READ").replace(f' {XSI} xsi:type="CanonicalUser"', "")), "MalformedACLError"),
        (policy_xml(A, "<Other/>"), "MalformedACLError"),
        (policy_xml(A, group_grant("http://example.com/everyone", "READ")), "InvalidArgument"),
        (
            policy_xml(
                A,
                f'<Grant><Grantee {XSI} xsi:type="AmazonCustomerByEmail"><EmailAddress>x@example.com</EmailAddress>'
                "</Grantee><Permission>READ</Permission></Grant>",
            ),
            "UnresolvableGrantByEmailAddress",
        ),
        (policy_xml(B, user_grant(A, "FULL_CONTROL")), "AccessDenied"),  # an ACL never changes the owner
        (policy_xml(A, *[user_grant(f"{i:032x}", "READ") for i in range(101)]), "InvalidArgument"),
        (b'<!DOCTYPE x [<!ENTITY e "x">]><AccessControlPolicy/>', "MalformedACLError"),
    ],
)
def test_bad_policy_documents_are_refused_with_s3s_codes(body, code):
    with pytest.raises((S3Error, AclError)) as e:
        parse_policy(body, A)
    assert code_of(e.value) == code


# -- which source a request's ACL comes from


def test_one_source_only():
    with pytest.raises(S3Error) as e:
        requested({"x-amz-acl": "private", "x-amz-grant-read": f'id="{B}"'}, A, A, for_bucket=False)
    assert e.value.code == "InvalidRequest"
    with pytest.raises(S3Error) as e:
        requested({"x-amz-acl": "private"}, A, A, for_bucket=True, body=policy_xml(A))
    assert e.value.code == "UnexpectedContent"
    with pytest.raises(S3Error) as e:
        requested({}, A, A, for_bucket=True, body=b"")
    assert e.value.code == "MissingSecurityHeader"
    assert requested({}, A, A, for_bucket=False) is None
    assert requested({"x-amz-acl": "public-read"}, A, A, for_bucket=False, body=b"") == acls.canned("public-read", A, A)


# -- nothing a client sends makes these raise anything but S3's refusals

_GRANT_TEXT = st.text(alphabet=st.sampled_from(list("idurEmailAddress=\"=, \t'x\\/:.") + ["ü", "\x00"]), max_size=40)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from([*acls.GRANT_HEADERS, "x-amz-grant-x", "x-amz-acl"]), _GRANT_TEXT, max_size=4))
def test_any_grant_headers_give_an_acl_or_an_s3_error(headers):
    try:
        requested(headers, A, B, for_bucket=True)
    except (AclError, S3Error) as e:
        assert from_domain(e, None, None) is not None


_XML_PIECES = st.sampled_from(
    [
        "<AccessControlPolicy>",
        "</AccessControlPolicy>",
        "<AccessControlList>",
        "</AccessControlList>",
        "<Grant>",
        "</Grant>",
        f'<Grantee {XSI} xsi:type="CanonicalUser">',
        f'<Grantee {XSI} xsi:type="Group">',
        "<Grantee>",
        "</Grantee>",
        f"<ID>{A}</ID>",
        "<ID></ID>",
        f"<URI>{ALL_USERS}</URI>",
        "<Permission>READ</Permission>",
        "<Permission>x</Permission>",
        "<Owner>",
        "</Owner>",
        "&amp;",
        "\xff",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_XML_PIECES, max_size=14).map("".join))
def test_any_policy_document_gives_an_acl_or_an_s3_error(text):
    try:
        parse_policy(text.encode("utf-8", "surrogateescape"), A)
    except (AclError, S3Error) as e:
        assert from_domain(e, None, None) is not None
