"""Each worker keeps who a key is and what a bucket holds (catalog/cached.py); a change made in
one process counts on the very next request in every other, under `--workers 2`.

Each test pins one kept-alive connection to each worker (the S3 port's health answer names
the worker), makes both workers read what the change will touch (so both keep it), makes
the change through the admin tool or through S3 on one worker, and asks both again at once.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import re
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from daemon import ACCESS_KEY, ADMIN, REGION, SECRET_KEY, Daemon

pytestmark = pytest.mark.timeout(180)

HEALTH = "/_vaultaire/health"


def admin(d: Daemon, *args: str, stdin: str | None = None) -> Any:
    done = subprocess.run(
        [ADMIN, "--data", str(d.data_dir), "--json", *args], capture_output=True, text=True, timeout=60, input=stdin
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout) if done.stdout.strip() else None


class Worker:
    """A kept-alive connection to one worker process, sending signed requests."""

    def __init__(self, d: Daemon, conn: http.client.HTTPConnection, pid: int) -> None:
        self.d, self.conn, self.pid = d, conn, pid

    def send(
        self,
        method: str,
        path: str,
        key: str = ACCESS_KEY,
        secret: str = SECRET_KEY,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
    ) -> tuple[int, str]:
        """(status, S3 error code or "")."""
        status, code, _ = self.exchange(method, path, key, secret, body, headers)
        return status, code

    def exchange(
        self,
        method: str,
        path: str,
        key: str = ACCESS_KEY,
        secret: str = SECRET_KEY,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
    ) -> tuple[int, str, http.client.HTTPResponse]:
        """(status, S3 error code or "", the response, read)."""
        request = AWSRequest(
            method=method,
            url=f"http://127.0.0.1:{self.d.port}{path}",
            data=body,
            headers={"X-Amz-Content-SHA256": hashlib.sha256(body).hexdigest(), **(headers or {})},
        )
        S3SigV4Auth(Credentials(key, secret), "s3", REGION).add_auth(request)
        self.conn.request(method, path, body=body, headers=dict(request.headers))
        response = self.conn.getresponse()
        text = response.read().decode("utf-8", "replace")
        found = re.search(r"<Code>([^<]*)</Code>", text)
        return response.status, found.group(1) if found else "", response


def pin_both_workers(d: Daemon) -> list[Worker]:
    """One connection to each of the two workers (new connections until the kernel gave both)."""
    found: dict[int, Worker] = {}
    for _ in range(200):
        assert d.port is not None
        conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=30)
        conn.request("GET", HEALTH)
        response = conn.getresponse()
        pid = int(json.loads(response.read())["worker_pid"])
        if pid in found:
            conn.close()
        else:
            found[pid] = Worker(d, conn, pid)
        if len(found) == 2:
            return list(found.values())
    raise AssertionError(f"200 connections all reached the same worker {list(found)}")


@pytest.fixture(scope="module")
def d(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    with Daemon(tmp_path_factory.mktemp("vaultaire"), workers=2, startup_timeout=90) as daemon:
        yield daemon


@pytest.fixture
def workers(d: Daemon) -> Iterator[list[Worker]]:
    pinned = pin_both_workers(d)
    yield pinned
    for worker in pinned:
        worker.conn.close()


def everywhere(workers: list[Worker], method: str, path: str, **kw: Any) -> list[tuple[int, str]]:
    return [worker.send(method, path, **kw) for worker in workers]


def policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def test_a_revoked_key_is_refused_by_every_worker_at_once(d: Daemon, workers: list[Worker]) -> None:
    a, b = workers
    assert a.send("PUT", "/revoked") == (200, "")
    made = admin(d, "key", "create", "default")
    key, secret = made["access_key"], made["secret_key"]
    assert everywhere(workers, "GET", "/revoked?list-type=2", key=key, secret=secret) == [(200, "")] * 2
    admin(d, "key", "revoke", key)
    assert (
        everywhere(workers, "GET", "/revoked?list-type=2", key=key, secret=secret) == [(403, "InvalidAccessKeyId")] * 2
    )
    # The other keys of the tenant still work.
    assert everywhere(workers, "GET", "/revoked?list-type=2") == [(200, "")] * 2


def test_a_changed_user_policy_counts_on_the_next_request_in_every_worker(d: Daemon, workers: list[Worker]) -> None:
    a, _ = workers
    assert a.send("PUT", "/userpolicy") == (200, "")
    everything = policy({"Effect": "Allow", "Action": "s3:*", "Resource": "*"})
    made = admin(d, "user", "create", "default", "reader", "--policy", "-", stdin=everything)
    key, secret = made["access_key"], made["secret_key"]
    assert everywhere(workers, "GET", "/userpolicy?list-type=2", key=key, secret=secret) == [(200, "")] * 2
    puts_only = policy({"Effect": "Allow", "Action": "s3:PutObject", "Resource": "*"})
    admin(d, "user", "policy", "default", "reader", "-", stdin=puts_only)
    assert everywhere(workers, "GET", "/userpolicy?list-type=2", key=key, secret=secret) == [(403, "AccessDenied")] * 2
    admin(d, "user", "policy", "default", "reader", "-", stdin=everything)
    assert everywhere(workers, "GET", "/userpolicy?list-type=2", key=key, secret=secret) == [(200, "")] * 2
    admin(d, "user", "delete", "default", "reader")
    assert (
        everywhere(workers, "GET", "/userpolicy?list-type=2", key=key, secret=secret)
        == [(403, "InvalidAccessKeyId")] * 2
    )


def test_a_bucket_policy_put_through_one_worker_counts_in_the_other(d: Daemon, workers: list[Worker]) -> None:
    a, b = workers
    assert a.send("PUT", "/bucketpolicy") == (200, "")
    assert a.send("PUT", "/bucketpolicy/k", body=b"data") == (200, "")
    for worker in workers:  # each keeps the bucket and its (absent) policy
        assert worker.send("GET", "/bucketpolicy/k") == (200, "")
    public = policy(
        {"Effect": "Deny", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::bucketpolicy/k"}
    )
    assert a.send("PUT", "/bucketpolicy?policy", body=public.encode()) == (204, "")
    assert b.send("GET", "/bucketpolicy/k") == (403, "AccessDenied")
    assert a.send("GET", "/bucketpolicy/k") == (403, "AccessDenied")
    assert b.send("DELETE", "/bucketpolicy?policy") == (204, "")
    assert everywhere(workers, "GET", "/bucketpolicy/k") == [(200, "")] * 2


def test_a_kms_key_disabled_by_the_admin_tool_refuses_reads_in_every_worker_at_once(
    d: Daemon, workers: list[Worker]
) -> None:
    a, _ = workers
    admin(d, "kms", "create", "workers-key")
    assert a.send("PUT", "/kmsbucket") == (200, "")
    sealed = {"x-amz-server-side-encryption": "aws:kms", "x-amz-server-side-encryption-aws-kms-key-id": "workers-key"}
    assert a.send("PUT", "/kmsbucket/k", body=b"secret", headers=sealed) == (200, "")
    assert everywhere(workers, "GET", "/kmsbucket/k") == [(200, "")] * 2  # each keeps the key, enabled
    admin(d, "kms", "disable", "workers-key")
    assert everywhere(workers, "GET", "/kmsbucket/k") == [(400, "KMS.DisabledException")] * 2
    admin(d, "kms", "enable", "workers-key")
    assert everywhere(workers, "GET", "/kmsbucket/k") == [(200, "")] * 2


def test_a_suspended_tenant_is_refused_by_every_worker_at_once(d: Daemon, workers: list[Worker]) -> None:
    admin(d, "tenant", "create", "suspendme")
    made = admin(d, "key", "create", "suspendme")
    key, secret = made["access_key"], made["secret_key"]
    a, _ = workers
    assert a.send("PUT", "/suspended", key=key, secret=secret) == (200, "")
    assert everywhere(workers, "GET", "/suspended?list-type=2", key=key, secret=secret) == [(200, "")] * 2
    admin(d, "tenant", "suspend", "suspendme")
    assert everywhere(workers, "GET", "/suspended?list-type=2", key=key, secret=secret) == [(403, "AccessDenied")] * 2
    admin(d, "tenant", "resume", "suspendme")
    assert everywhere(workers, "GET", "/suspended?list-type=2", key=key, secret=secret) == [(200, "")] * 2


def test_a_bucket_deleted_through_one_worker_is_gone_in_the_other(d: Daemon, workers: list[Worker]) -> None:
    a, b = workers
    assert a.send("PUT", "/deleted") == (200, "")
    assert everywhere(workers, "GET", "/deleted?list-type=2") == [(200, "")] * 2
    assert a.send("DELETE", "/deleted") == (204, "")
    assert b.send("GET", "/deleted?list-type=2") == (404, "NoSuchBucket")
    assert b.send("PUT", "/deleted/k", body=b"x") == (404, "NoSuchBucket")
    # Made again (a new container, perhaps with the old id): both serve the new one.
    assert b.send("PUT", "/deleted") == (200, "")
    assert a.send("PUT", "/deleted/k", body=b"x") == (200, "")
    assert everywhere(workers, "GET", "/deleted/k") == [(200, "")] * 2


EXPIRE_IN_A_DAY = (
    b"<LifecycleConfiguration><Rule><ID>soon</ID><Filter><Prefix></Prefix></Filter><Status>Enabled</Status>"
    b"<Expiration><Days>1</Days></Expiration></Rule></LifecycleConfiguration>"
)


def test_a_lifecycle_configuration_put_through_one_worker_is_echoed_by_the_other_at_once(
    workers: list[Worker],
) -> None:
    a, b = workers
    assert a.send("PUT", "/lifecycle") == (200, "")
    assert a.send("PUT", "/lifecycle/k", body=b"data") == (200, "")
    for worker in workers:  # each has read the bucket's (absent) configuration
        status, _, response = worker.exchange("HEAD", "/lifecycle/k")
        assert status == 200 and response.getheader("x-amz-expiration") is None
    md5 = base64.b64encode(hashlib.md5(EXPIRE_IN_A_DAY).digest()).decode()
    status, code, _ = a.exchange("PUT", "/lifecycle?lifecycle", body=EXPIRE_IN_A_DAY, headers={"Content-MD5": md5})
    assert (status, code) == (200, "")
    for worker in (b, a):
        status, _, response = worker.exchange("HEAD", "/lifecycle/k")
        assert status == 200 and 'rule-id="soon"' in (response.getheader("x-amz-expiration") or ""), worker.pid
    assert b.send("DELETE", "/lifecycle?lifecycle") == (204, "")
    for worker in (a, b):
        status, _, response = worker.exchange("HEAD", "/lifecycle/k")
        assert status == 200 and response.getheader("x-amz-expiration") is None, worker.pid
