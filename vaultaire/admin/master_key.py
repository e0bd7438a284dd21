"""`master-key rotate|reseal`: a new master key without rewriting a byte of any object.

``rotate`` puts a new key first in the key file (older ones stay: what they
sealed still opens). ``reseal`` re-wraps every SSE-S3 data key, every SSE-KMS
key's material and every secret key under the newest master key, in the
catalog only.

A running daemon reads the key file again the first time it meets something
sealed by a key it does not know; it seals new data keys under the new master
key from its next start. Run ``reseal`` again after that restart to catch what
it wrapped in between.

Older keys stay in the key file after a re-seal: nothing the catalog keeps is
sealed by them any more, but SSE-C objects made before the rotation are checked
with an HMAC of the customer's key under the master key of their time (their
data keys are wrapped by the customer's key, which is never stored, so they
cannot be re-proved). A leaked older key therefore opens nothing a re-seal moved.
"""

from __future__ import annotations

import argparse

from vaultaire.admin.context import AdminContext
from vaultaire.encryption.keys import SSE_S3, master_key_id
from vaultaire.encryption.kms import LocalKeySource
from vaultaire.sealing import rotate_master_key


async def rotate(args: argparse.Namespace, ctx: AdminContext) -> int:
    key, keys = rotate_master_key(ctx.settings, ctx.data_dir())
    ids = [master_key_id(k) for k in keys]
    ctx.emit(
        {"newest": ids[0], "keys": ids},
        text=f"new master key {ids[0]} (older: {', '.join(ids[1:])}); now run: vaultaire-admin master-key reseal",
    )
    return 0


async def reseal(args: argparse.Namespace, ctx: AdminContext) -> int:
    catalog = await ctx.catalog()
    keyring = ctx.keyring()
    source = LocalKeySource(catalog, keyring, ctx.settings.region)
    box = ctx.box
    assert box is not None  # the catalog is open

    def data_key(mode: str, token: str) -> str | None:
        # SSE-C data keys are wrapped by the customer's key, SSE-KMS ones by their KMS key.
        return keyring.rewrap_data_key(token) if mode == SSE_S3 else None

    counts = await catalog.reseal(data_key, source.rewrap_material, lambda access, sealed: box.reseal(sealed, access))
    ctx.emit(
        {**counts, "newest": keyring.newest_id},
        text=f"re-sealed under master key {keyring.newest_id}: {counts['artifacts']} objects,"
        f" {counts['parts']} upload parts, {counts['kms_keys']} KMS keys, {counts['secrets']} secret keys",
    )
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    master = sub.add_parser("master-key", help="rotate the master key and re-seal what it seals")
    actions = master.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = actions.add_parser("rotate", help="make a new master key; older ones still open", parents=[common])
    p.set_defaults(run=rotate)
    p = actions.add_parser(
        "reseal",
        help="re-wrap every data key and secret under the newest master key (no object rewritten)",
        parents=[common],
    )
    p.set_defaults(run=reseal)
