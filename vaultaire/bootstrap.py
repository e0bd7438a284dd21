"""The first tenant's keys: from the environment, or generated for development."""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import string
from collections.abc import Mapping
from pathlib import Path

from twisted.logger import Logger

from vaultaire.engine import Engine

log = Logger()

ENV_ACCESS = "VAULTAIRE_ACCESS_KEY"
ENV_SECRET = "VAULTAIRE_SECRET_KEY"
FIRST_TENANT = "default"
DEV_CREDENTIALS_FILE = "dev-credentials.json"
CATALOG_FILE = "catalog.sqlite3"
# Where S3 is served when the daemon runs on development keys and no listen address was given.
DEVELOPMENT_LISTEN = "tcp:8080:interface=127.0.0.1"


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
        await _remind_development_keys(engine, data_dir)
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


async def _remind_development_keys(engine: Engine, data_dir: str) -> None:
    """On every start on development keys, say where they are: the first start's lines are long gone."""
    path = os.path.join(data_dir, DEV_CREDENTIALS_FILE)
    try:
        with open(path) as f:
            access = json.load(f)["access_key"]
    except (OSError, ValueError, KeyError, TypeError):
        return
    if isinstance(access, str) and await engine.credential(access) is not None:
        log.info("development keys in use: {path}", path=os.path.abspath(path))


def development_keys_expected(data_dir: str, environ: Mapping[str, str]) -> bool:
    """Whether this start will run on development keys: none in the environment, and either
    development keys made earlier or no keys in the catalog yet (so they will be made).

    Decided before the ports are bound, so from the files alone.
    """
    if environ.get(ENV_ACCESS) or environ.get(ENV_SECRET):
        return False
    if os.path.exists(os.path.join(data_dir, DEV_CREDENTIALS_FILE)):
        return True
    return not _catalog_has_credentials(os.path.join(data_dir, CATALOG_FILE))


def _catalog_has_credentials(path: str) -> bool:
    if not os.path.exists(path):
        return False
    try:
        db = sqlite3.connect(Path(os.path.abspath(path)).as_uri() + "?mode=ro", uri=True)
        try:
            return bool(db.execute("SELECT 1 FROM credentials LIMIT 1").fetchone())
        finally:
            db.close()
    except sqlite3.Error:
        return False  # unreadable or not yet made: treated as development, the safer answer
