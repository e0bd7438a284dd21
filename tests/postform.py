"""POST Object forms (browser uploads): policies signed with the in-process server's test key."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime
from typing import Any

import treq

from tests.s3helpers import ACCESS, REGION, SECRET, Server
from vaultaire import sigv4

BOUNDARY = "----vaultaireformboundary7MA4YWxk"


def policy(conditions: list[Any], expires_in: float = 600) -> str:
    """A base64 policy document with ``conditions``, expiring ``expires_in`` seconds from now."""
    expiration = datetime.fromtimestamp(time.time() + expires_in, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return base64.b64encode(json.dumps({"expiration": expiration, "conditions": conditions}).encode()).decode()


def v4_fields(
    conditions: list[Any], *, secret: str = SECRET, expires_in: float = 600, access: str = ACCESS
) -> dict[str, str]:
    """The SigV4 form fields (policy and signature included) for a policy over ``conditions``."""
    now = datetime.now(UTC)
    date, amz_date = now.strftime("%Y%m%d"), now.strftime("%Y%m%dT%H%M%SZ")
    credential = f"{access}/{date}/{REGION}/s3/aws4_request"
    conditions = conditions + [
        {"x-amz-algorithm": "AWS4-HMAC-SHA256"},
        {"x-amz-credential": credential},
        {"x-amz-date": amz_date},
    ]
    doc = policy(conditions, expires_in)
    signature = sigv4.signature(sigv4.signing_key(secret, date, REGION, "s3"), doc)
    return {
        "x-amz-algorithm": "AWS4-HMAC-SHA256",
        "x-amz-credential": credential,
        "x-amz-date": amz_date,
        "policy": doc,
        "x-amz-signature": signature,
    }


def form(fields: dict[str, str], content: bytes, filename: str = "photo.jpg") -> bytes:
    """A multipart/form-data body (boundary ``BOUNDARY``): the fields, then the file last, as S3 wants."""
    out = b""
    for name, value in fields.items():
        out += f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
    out += (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()
    return out + content + f"\r\n--{BOUNDARY}--\r\n".encode()


async def post(server: Server, body: bytes, bucket: str = "forms") -> Any:
    """POST a form built by ``form`` to ``bucket``; the response, with its body read as ``.body``."""
    r = await treq.post(
        f"{server.url}/{bucket}",
        data=body,
        headers={"Content-Type": [f"multipart/form-data; boundary={BOUNDARY}"]},
        persistent=False,
        allow_redirects=False,
    )
    r.body = await r.content()
    return r
