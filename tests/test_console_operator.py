"""The console's operator pages against a real daemon: the configured operator credential (not a
tenant key) signs in to them alone; tenants are made, suspended and resumed, given quotas, users
and keys, and keys revoked, each change seen by S3 clients at once; usage, bill and the stored
bytes history are shown; a tenant's user never opens these pages."""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator

import pytest
from botocore.exceptions import ClientError
from console_http import Browser, poll, table_rows
from daemon import Daemon, free_port, write_config

pytestmark = pytest.mark.timeout(300)

ADMIN_KEY = "OPERATOR-KEY"
ADMIN_SECRET = "operator-secret-0123456789"


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Daemon, Browser]]:
    port = free_port()
    base = tmp_path_factory.mktemp("vaultaire")
    config = write_config(
        base, f'[console]\nadmin_key = "{ADMIN_KEY}"\nadmin_secret = "{ADMIN_SECRET}"\nmetrics_seconds = 0.2\n'
    )
    with Daemon(base, extra_args=["--console", f"tcp:{port}:interface=127.0.0.1", "--config", config]) as d:
        b = Browser(f"http://127.0.0.1:{port}")
        yield d, b


def post(b: Browser, path: str, form: dict[str, str]) -> tuple[int, str]:
    status, headers, page = b.request("POST", path, {**form, "csrf": b.csrf("/ops")})
    return status, headers.get("location", "") if status == 303 else page


def new_key(page: str) -> tuple[str, str]:
    access = re.search(r'id="new-access-key">([^<]+)<', page)
    secret = re.search(r'value="([^"]+)" id="new-secret"', page)
    assert access and secret, page
    return access.group(1), secret.group(1)


def code_of(call: object) -> str:
    with pytest.raises(ClientError) as caught:
        call()  # type: ignore[operator]
    return str(caught.value.response["Error"]["Code"])


def test_the_operator_signs_in_to_the_operator_pages_only(console: tuple[Daemon, Browser]) -> None:
    d, b = console
    wrong = Browser(b.base)
    assert wrong.login(ADMIN_KEY, ADMIN_SECRET + "x") == 403
    status, headers, _ = b.request(
        "POST", "/login", {"csrf": b.csrf("/login"), "access_key": ADMIN_KEY, "secret_key": ADMIN_SECRET}
    )
    assert status == 303 and headers["location"] == "/ops"
    status, _, page = b.request("GET", "/ops")
    assert status == 200 and 'class="tenant">default</a>' in page and "operator" in page
    # The operator has no buckets: a tenant's page sends it back to its own.
    assert b.request("GET", "/")[1].get("location") == "/ops"
    assert b.request("GET", "/b/any")[1].get("location") == "/ops"
    # A tenant's root user does not open the operator's pages.
    tenant = Browser(b.base)
    assert tenant.login(d.access_key or "", d.secret_key or "") == 303
    status, _, page = tenant.request("GET", "/ops")
    assert status == 403 and "Only the deployment's operator" in page
    status, _, _ = tenant.request("POST", "/ops/tenants", {"csrf": tenant.csrf("/"), "tenant": "sneaky"})
    assert status == 403
    # Forms need the operator session's token.
    assert b.request("POST", "/ops/tenants", {"tenant": "forged"})[0] == 403
    assert "forged" not in b.request("GET", "/ops")[2]
    status, _, page = b.request("GET", "/ops/health")
    assert status == 200 and 'id="health">ok<' in page and ">local<" in page
    assert ADMIN_SECRET not in d.log_text()


def test_tenants_users_keys_quotas_and_suspension(console: tuple[Daemon, Browser]) -> None:
    d, b = console
    assert b.login(ADMIN_KEY, ADMIN_SECRET) == 303
    status, where = post(b, "/ops/tenants", {"tenant": "acme"})
    assert status == 303 and where == "/ops/t/acme"
    assert post(b, "/ops/tenants", {"tenant": "acme"})[0] == 409
    # A key for the root user: S3 takes it at once.
    status, page = post(b, "/ops/t/acme/keys", {"user": ""})
    assert status == 200 and "not shown again" in page
    access, secret = new_key(page)
    s3 = d.boto3_client(access_key=access, secret_key=secret)
    s3.create_bucket(Bucket="acme-data")
    s3.put_object(Bucket="acme-data", Key="k", Body=b"x" * 1000)
    page = b.request("GET", "/ops/t/acme")[2]
    assert "1000 bytes) in 1 objects" in page and access in page and secret not in page
    assert 'id="chart-hourly"' in page and 'id="tenant-bill">$' in page
    # A user: a policy S3 would refuse is refused here too; then one that lists buckets.
    status, page = post(b, "/ops/t/acme/users", {"user": "alice", "policy": '{"Statement": "nope"}'})
    assert status == 400 and "MalformedPolicy" in page
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"}],
    }
    status, page = post(b, "/ops/t/acme/users", {"user": "alice", "policy": json.dumps(policy)})
    assert status == 200
    alice = d.boto3_client(access_key=new_key(page)[0], secret_key=new_key(page)[1])
    assert [x["Name"] for x in alice.list_buckets()["Buckets"]] == ["acme-data"]
    assert code_of(lambda: alice.get_object(Bucket="acme-data", Key="k")) == "AccessDenied"
    assert post(b, "/ops/t/acme/users", {"user": "alice"})[0] == 409
    assert post(b, "/ops/t/acme/users", {"user": "bad name!"})[0] == 400
    # Quota: enforced from the next request; a size that is not one is refused.
    assert post(b, "/ops/t/acme/quota", {"max_bytes": "1500", "max_objects": ""})[0] == 303
    assert code_of(lambda: s3.put_object(Bucket="acme-data", Key="big", Body=b"x" * 1000)) == "QuotaExceeded"
    status, page = post(b, "/ops/t/acme/quota", {"max_bytes": "lots"})
    assert status == 400 and "is not a size" in page
    assert "1.5 KiB" in b.request("GET", "/ops/t/acme")[2]
    assert post(b, "/ops/t/acme/quota", {"max_bytes": "none", "max_objects": "none"})[0] == 303
    s3.put_object(Bucket="acme-data", Key="big", Body=b"x" * 1000)
    # Suspended: every request refused, the data kept; resumed: served again.
    assert post(b, "/ops/t/acme/status", {"state": "suspended"})[0] == 303
    assert code_of(lambda: s3.get_object(Bucket="acme-data", Key="k")) == "AccessDenied"
    assert 'id="tenant-status">suspended<' in b.request("GET", "/ops/t/acme")[2]
    assert post(b, "/ops/t/acme/status", {"state": "active"})[0] == 303
    assert s3.get_object(Bucket="acme-data", Key="k")["Body"].read() == b"x" * 1000
    # Revoked: the key is refused from now on; another tenant's key is not this tenant's to revoke.
    assert post(b, "/ops/t/acme/revoke", {"access_key": d.access_key or ""})[0] == 404
    assert post(b, "/ops/t/acme/revoke", {"access_key": access})[0] == 303
    assert code_of(lambda: s3.list_buckets()) == "InvalidAccessKeyId"
    assert post(b, "/ops/t/nobody/status", {"state": "active"})[0] == 404


def test_the_operator_secret_stays_off_the_workers_command_line() -> None:
    from vaultaire.config import Settings
    from vaultaire.worker import settings_argument, settings_from_argument

    settings = Settings(console_admin_key=ADMIN_KEY, console_admin_secret=ADMIN_SECRET)
    argument = settings_argument(settings)
    assert ADMIN_SECRET not in argument and ADMIN_KEY not in argument
    assert settings_from_argument(argument).console_admin_secret == ""


def test_the_workers_and_the_metrics_charts(console: tuple[Daemon, Browser]) -> None:
    d, b = console
    assert b.login(ADMIN_KEY, ADMIN_SECRET) == 303
    status, headers, page = b.request("GET", "/ops/workers")
    assert status == 200 and headers["x-frame-options"] == "DENY"
    assert "script-src 'self'" in headers["content-security-policy"]
    rows = table_rows(page, "workers")
    if d.workers == 1:  # VAULTAIRE_TEST_WORKERS=2 runs this against a supervisor
        ((who, pid, state, *_),) = rows
        assert who == "the daemon" and pid == str(d.pid) and state == "serving"
    else:
        assert [r[2] for r in rows] == ["serving"] * d.workers
    # Traffic, then the charts draw it: the same counters /metrics shows, sampled every 0.2 s.
    s3 = d.boto3_client()
    s3.create_bucket(Bucket="charted")
    for i in range(20):
        s3.put_object(Bucket="charted", Key=f"k{i}", Body=b"x" * 1000)
    assert code_of(lambda: s3.get_object(Bucket="charted", Key="missing")) == "NoSuchKey"

    def charted() -> str | None:
        page = b.request("GET", "/ops/metrics")[2]
        return page if re.search(r'id="chart-bytes".*?<polyline', page, re.S) else None

    page = poll(charted, "the bytes chart draws the uploads")
    for chart in ("chart-requests", "chart-errors", "chart-bytes", "chart-latency", "chart-in-flight"):
        assert f'id="{chart}"' in page
    assert "the numbers the ops site's /metrics shows" in page
    assert f"pid {d.pid}" in page and "no-samples" not in page
    # Requests served, as the workers page counts them, are those /metrics counts.
    scraped = sum(
        float(line.rsplit(" ", 1)[1])
        for line in urllib.request.urlopen(d.ops_url + "/metrics", timeout=30).read().decode().splitlines()
        if line.startswith("vaultaire_requests_total{")
    )
    served = sum(int(r[6]) for r in table_rows(b.request("GET", "/ops/workers")[2], "workers") if r[6] != "—")
    assert served == scraped >= 22
    # A window it does not offer: refused, and what was typed is shown as text.
    status, _, page = b.request("GET", "/ops/metrics?window=%3Cscript%3Ealert(1)%3C/script%3E")
    assert status == 400 and "&lt;script&gt;alert(1)" in page and "<script>alert" not in page
    assert 'id="chart-requests"' in page  # the default window drawn all the same
    assert b.request("GET", "/ops/metrics?window=6h")[0] == 200
    # Pages to look at, nothing to change: no form, and a POST is not taken.
    assert b.request("POST", "/ops/workers", {"csrf": b.csrf("/ops")})[0] == 405
    # Nobody else sees them: a tenant's root user is refused, no session is sent to log in.
    tenant = Browser(b.base)
    assert tenant.request("GET", "/ops/metrics")[1]["location"] == "/login"
    assert tenant.login(d.access_key or "", d.secret_key or "") == 303
    for path in ("/ops/metrics", "/ops/workers"):
        status, _, page = tenant.request("GET", path)
        assert status == 403 and "Only the deployment's operator" in page
