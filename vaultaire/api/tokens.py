"""Continuation tokens: opaque to clients, as S3's are, each carrying the last name listed."""

from __future__ import annotations

import base64
import binascii

from vaultaire.api.errors import S3Error


def encode_token(marker: str) -> str:
    return base64.urlsafe_b64encode(marker.encode("utf-8")).decode("ascii")


def decode_token(token: str) -> str:
    """The name a token carries; a token we did not make is InvalidArgument, as on S3."""
    try:
        return base64.b64decode(token.encode("ascii"), altchars=b"-_", validate=True).decode("utf-8")
    except (binascii.Error, ValueError, UnicodeError):
        raise S3Error(
            "InvalidArgument",
            "The continuation token provided is incorrect",
            ArgumentName="continuation-token",
            ArgumentValue=token,
        ) from None
