"""What of a request may be written to a log: URIs without their signatures and credentials."""

from __future__ import annotations

import re

# Query parameters that sign or authorise a request: a logged presigned URL must not be reusable.
SECRET_PARAMETERS = frozenset(
    {"x-amz-signature", "signature", "x-amz-credential", "awsaccesskeyid", "x-amz-security-token"}
)

_PARAMETER = re.compile(rb"([?&])([^=&#]*)=([^&#]*)")


def redact_uri(uri: bytes) -> str:
    """``uri`` as text for a log line, the values of signing parameters replaced."""

    def hide(match: re.Match[bytes]) -> bytes:
        if match.group(2).lower() in {p.encode() for p in SECRET_PARAMETERS}:
            return match.group(1) + match.group(2) + b"=REDACTED"
        return match.group(0)

    return _PARAMETER.sub(hide, uri).decode("utf-8", "backslashreplace")
