"""A container's access documents ("acl", "ownership", "public-access-block", "policy") for a handler.

The authorization step has already read them with the container (``S3Call.access``, one
point read); a handler of the same container uses that copy instead of asking the
catalog again, so a PUT with an ACL costs no more reads than one without.
"""

from __future__ import annotations

from vaultaire.api.call import S3Call
from vaultaire.engine import Engine
from vaultaire.model import Container


async def document(engine: Engine, call: S3Call, container: Container, name: str) -> str | None:
    """The container's setting ``name`` (None when it has none), as read for this request."""
    access = call.access
    if access is not None and access.container.id == container.id:
        return access.document(name)
    return await engine.container_setting(call.ctx, container, name)
