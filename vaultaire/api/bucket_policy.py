"""Bucket policies: Put/Get/DeleteBucketPolicy and GetBucketPolicyStatus (container setting "policy").

A policy is validated whole before it is stored (access/policy.py, S3's MalformedPolicy
messages); one that asks for what this server cannot evaluate (a condition key nothing
here gives a value to) is refused with 501, never stored and half-enforced. The stored
text is what GetBucketPolicy returns and what the authorization step compiles (once per
distinct text, so a new policy takes effect on the next request in every worker).
"""

from __future__ import annotations

import json

from vaultaire.access.policy import MalformedPolicy, Policy, UnsupportedPolicy, parse_policy
from vaultaire.api.call import SMALL_BODY_LIMIT, OperationBase, S3Call
from vaultaire.api.errors import S3Error
from vaultaire.api.xmlout import element
from vaultaire.errors import NoSuchUser
from vaultaire.model import Container

SETTING = "policy"
# S3's limit, counted as S3 does: on the document without the whitespace between its tokens.
MAX_POLICY_BYTES = 20 * 1024
TOO_LARGE = "Policy exceeds the maximum allowed document size."


def validate(body: bytes, bucket: str) -> tuple[str, Policy]:
    """The policy's text and compiled form, or S3's error (400 MalformedPolicy, 501 NotImplemented)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise S3Error("MalformedPolicy", "This policy contains invalid Json") from None
    try:
        policy = parse_policy(text, resource_policy=True, bucket=bucket)
    except UnsupportedPolicy as e:
        raise S3Error("NotImplemented", e.message) from None
    except MalformedPolicy as e:
        raise S3Error("MalformedPolicy", e.message) from None
    compact = json.dumps(json.loads(text), separators=(",", ":"), ensure_ascii=False)
    if len(compact.encode("utf-8")) > MAX_POLICY_BYTES:
        raise S3Error("MalformedPolicy", TOO_LARGE)
    return text, policy


class BucketPolicyOperations(OperationBase):
    """Put/Get/DeleteBucketPolicy and GetBucketPolicyStatus."""

    def _owner_only(self, call: S3Call, container: Container) -> None:
        """S3: only identities of the bucket owner's account use the bucket policy operations; another
        account allowed by the policy itself gets 405, so that no grant hands over the policy."""
        identity = call.identity
        if identity is None or identity.tenant.id != container.tenant_id:
            raise S3Error("MethodNotAllowed", Method=call.request.method.decode("latin-1"), ResourceType="BUCKET")

    async def put_bucket_policy(self, call: S3Call) -> bytes:
        container = await self._container(call)
        self._owner_only(call, container)
        try:
            body = await self._small_body(call, SMALL_BODY_LIMIT)
        except S3Error as e:
            if e.code != "InvalidRequest":
                raise
            raise S3Error("MalformedPolicy", TOO_LARGE) from None
        text, policy = validate(body, container.name)
        await self._check_principals(policy)
        if policy.is_public():
            block = await self._public_access_block(call, container)
            if block.block_public_policy:
                raise S3Error(
                    "AccessDenied",
                    "Access Denied: public policies are blocked by the BlockPublicPolicy block public access setting.",
                )
        # x-amz-confirm-remove-self-bucket-access asks us not to refuse a policy that locks its
        # writer out; nothing here refuses one (the owner's root user can always replace it).
        await self.engine.put_container_setting(call.ctx, container, SETTING, text)
        call.request.setResponseCode(204)
        return b""

    async def _check_principals(self, policy: Policy) -> None:
        """S3 refuses a policy naming an account or user that does not exist: a Deny to a
        misspelt name would protect nothing."""
        for tenant_id in sorted(policy.accounts | {tenant for tenant, _ in policy.users}):
            if not await self.engine.tenant_exists(tenant_id):
                raise S3Error("MalformedPolicy", f"Invalid principal in policy: no account {tenant_id}")
        for tenant_id, name in sorted(policy.users):
            try:
                await self.engine.user(tenant_id, name)
            except NoSuchUser:
                raise S3Error("MalformedPolicy", f"Invalid principal in policy: no user {name}") from None

    async def get_bucket_policy(self, call: S3Call) -> bytes:
        container = await self._container(call)
        self._owner_only(call, container)
        text = await self.engine.container_setting(call.ctx, container, SETTING)
        if text is None:
            raise S3Error("NoSuchBucketPolicy", BucketName=container.name)
        body = text.encode("utf-8")
        call.set_header("Content-Type", "application/json")
        call.set_header("Content-Length", str(len(body)))
        return body

    async def delete_bucket_policy(self, call: S3Call) -> bytes:
        container = await self._container(call)
        self._owner_only(call, container)
        await self.engine.delete_container_setting(call.ctx, container, SETTING)
        call.request.setResponseCode(204)
        return b""

    async def get_bucket_policy_status(self, call: S3Call) -> bytes:
        container = await self._container(call)
        text = await self.engine.container_setting(call.ctx, container, SETTING)
        if text is None:
            raise S3Error("NoSuchBucketPolicy", BucketName=container.name)
        try:
            public = parse_policy(text, resource_policy=True, bucket=container.name).is_public()
        except MalformedPolicy:
            # Stored before a rule it breaks existed: the decision step denies by it; say public
            # only of what it actually grants, which is nothing.
            public = False
        document = element("PolicyStatus", element("IsPublic", "true" if public else "false"), xmlns=True)
        return self._xml(call, document)
