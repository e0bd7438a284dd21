"""Request ids (api/request_ids.py): 16 upper-case hex digits, a new one for every request,
and a forked child does not mint its parent's."""

from __future__ import annotations

import os
import re

from vaultaire.api.request_ids import next_request_id


def test_every_id_is_new_and_shaped_as_s3s() -> None:
    ids = [next_request_id() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[0-9A-F]{16}", i) for i in ids)


def test_a_forked_child_mints_ids_of_its_own() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, to the parent
        os.write(write, " ".join(next_request_id() for _ in range(100)).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read) as f:
        child = set(f.read().split())
    parent = {next_request_id() for _ in range(100)}
    assert len(child) == 100 and not child & parent
    assert {i[:8] for i in child} != {i[:8] for i in parent}
