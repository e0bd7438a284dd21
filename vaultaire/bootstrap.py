"""The first tenant's keys: from the environment, or generated for development."""

from __future__ import annotations

import json
import os
import secrets
import string
from collections.abc import Mapping

from twisted.logger import Logger

from vaultaire.engine import Engine

log = Logger()

ENV_ACCESS = "VAULTAIRE_ACCESS_KEY"
ENV_SECRET = "VAULTAIRE_SECRET_KEY"
FIRST_TENANT = "default"
DEV_CREDENTIALS_FILE = "dev-credentials.json"


class BootstrapError(Exception):
    pass


def generate_keys() -> tuple[str, str]:
    alphabet = string.ascii_uppercase + string.digits
    access = "VT" + "".join(secrets.choice(alphabet) for _ in range(18))
    secret = secrets.token_urlsafe(30)[:40]
    return access, secret


async def ensure_first_credentials(engine: Engine, data_dir: str, environ: Mapping[str, str]) -> None:
    access, secret = environ.get(ENV_ACCESS), environ.get(ENV_SECRET)
    if bool(access) != bool(secret):
        raise BootstrapError(f"set both {ENV_ACCESS} and {ENV_SECRET}, or neither")
    if access and secret:
        if len(secret) < 8:
            raise BootstrapError(f"{ENV_SECRET} must be at least 8 characters")
        await engine.ensure_credential(FIRST_TENANT, access, secret)
        log.info(
            "access key {access} from the environment belongs to tenant {tenant!r}", access=access, tenant=FIRST_TENANT
        )
        return
    if await engine.has_credentials():
        return
    access, secret = generate_keys()
    await engine.ensure_credential(FIRST_TENANT, access, secret)
    path = os.path.join(data_dir, DEV_CREDENTIALS_FILE)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"access_key": access, "secret_key": secret}, f)
    log.warn(
        "\n  No keys were configured, so development keys were created (also in {path}):\n"
        "    export AWS_ACCESS_KEY_ID={access}\n"
        "    export AWS_SECRET_ACCESS_KEY={secret}\n",
        path=path,
        access=access,
        secret=secret,
    )
