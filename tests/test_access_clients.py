"""Users, identity policies and grants across tenants through a real `twistd vaultaire` with two
workers: vaultaire-admin's user and key commands, a restricted user's `aws s3 cp`, boto3 across
tenants after a bucket policy grant, anonymous curl of a bucket made public by policy, and the
denial events. Admin changes count on the next request, whichever worker serves it."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from daemon import ADMIN, Daemon

from tests.commands import curl, run


def admin(d: Daemon, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [ADMIN, "--data", str(d.data_dir), *args], capture_output=True, text=True, timeout=60, input=stdin
    )
    if check:
        assert done.returncode == 0, done.stderr
    return done


def code_of(call: Any) -> str:
    with pytest.raises(ClientError) as caught:
        call()
    return str(caught.value.response["Error"]["Code"])


def policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


UPLOADS_ONLY = policy(
    {"Effect": "Allow", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::drop/incoming/*"},
    {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::drop"},
)


@pytest.fixture(scope="module")
def d(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    with Daemon(tmp_path_factory.mktemp("vaultaire"), workers=2) as daemon:
        yield daemon


def test_user_commands(d: Daemon, tmp_path: Path) -> None:
    admin(d, "tenant", "create", "cli")
    file = tmp_path / "policy.json"
    file.write_text(UPLOADS_ONLY)
    made = json.loads(admin(d, "user", "create", "cli", "uploader", "--policy", str(file), "--json").stdout)
    assert set(made) >= {"user", "access_key", "secret_key"} and made["user"] == "uploader"
    listed = json.loads(admin(d, "user", "list", "cli", "--json").stdout)
    assert [(u["user"], u["id"]) for u in listed] == [("uploader", made["id"])]
    more = json.loads(admin(d, "key", "create", "cli", "--user", "uploader", "--json").stdout)
    shown = json.loads(admin(d, "user", "show", "cli", "uploader", "--json").stdout)
    assert shown["access_keys"] == [made["access_key"], more["access_key"]]
    assert json.loads(shown["policy"]) == json.loads(UPLOADS_ONLY)
    admin(
        d,
        "user",
        "policy",
        "cli",
        "uploader",
        "-",
        stdin=policy({"Effect": "Allow", "Action": "s3:*"}).replace('"s3:*"}', '"s3:*", "Resource": "*"}'),
    )
    assert json.loads(admin(d, "user", "show", "cli", "uploader", "--json").stdout)["policy"].count("s3:*") == 1
    root = json.loads(admin(d, "key", "create", "cli", "--json").stdout)
    assert root["user"] is None
    # Refusals: one line each, nothing changed.
    bad = admin(d, "user", "policy", "cli", "uploader", "-", stdin='{"Version": "2012-10-17"}', check=False)
    assert bad.returncode == 1 and bad.stderr.startswith("vaultaire-admin: MalformedPolicy:"), bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    refusals = (
        (("user", "create", "cli", "uploader"), "exists already"),
        (("user", "show", "cli", "ghost"), "no user named 'ghost'"),
        (("key", "create", "cli", "--user", "ghost"), "no user named 'ghost'"),
        (("user", "create", "nosuchtenant", "x"), "no tenant named"),
        (("user", "create", "cli", "bad/name"), "invalid user name"),
    )
    with ThreadPoolExecutor(len(refusals)) as pool:  # independent: run together, the machine is busy
        outcomes = list(pool.map(lambda args: admin(d, *args, check=False), [args for args, _ in refusals]))
    for (args, needle), done in zip(refusals, outcomes, strict=True):
        assert done.returncode == 1 and needle in done.stderr, (args, done.stderr)
    admin(d, "user", "delete", "cli", "uploader")
    assert json.loads(admin(d, "user", "list", "cli", "--json").stdout) == []
    s3 = d.boto3_client(access_key=made["access_key"], secret_key=made["secret_key"])
    assert code_of(lambda: s3.list_buckets()) == "InvalidAccessKeyId"


def test_restricted_users_aws_s3_cp_is_denied_and_allowed_as_its_policy_says(d: Daemon, tmp_path: Path) -> None:
    d.boto3_client().create_bucket(Bucket="drop")
    tenant = "default"
    file = tmp_path / "policy.json"
    file.write_text(UPLOADS_ONLY)
    user = json.loads(admin(d, "user", "create", tenant, "dropper", "--policy", str(file), "--json").stdout)
    source = tmp_path / "report.txt"
    source.write_text("quarterly numbers\n")
    home = tmp_path / "aws"
    env_keys = {"access_key": user["access_key"], "secret_key": user["secret_key"]}
    cli = Daemon.__new__(Daemon)  # the same daemon, seen with the user's key
    cli.__dict__.update(d.__dict__ | env_keys)
    cli.aws(home, "s3", "cp", str(source), "s3://drop/incoming/report.txt")
    denied = cli.aws(home, "s3", "cp", str(source), "s3://drop/elsewhere/report.txt", check=False)
    assert denied.returncode != 0 and "AccessDenied" in denied.stderr, denied.stderr
    back = tmp_path / "back.txt"
    denied = cli.aws(home, "s3", "cp", "s3://drop/incoming/report.txt", str(back), check=False)
    assert denied.returncode != 0 and ("403" in denied.stderr or "AccessDenied" in denied.stderr), denied.stderr
    # The policy changes: the very next requests obey it, whichever of the two workers answers.
    wider = policy({"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"], "Resource": "arn:aws:s3:::drop/*"})
    admin(d, "user", "policy", tenant, "dropper", "-", stdin=wider)
    cli.aws(home, "s3", "cp", "s3://drop/incoming/report.txt", str(back))
    assert back.read_text() == "quarterly numbers\n"
    cli.aws(home, "s3", "cp", str(source), "s3://drop/elsewhere/report.txt")
    s3 = d.boto3_client(**env_keys)
    for _ in range(6):  # new connections: both workers see the change
        assert s3.get_object(Bucket="drop", Key="elsewhere/report.txt")["Body"].read() == b"quarterly numbers\n"
    admin(d, "user", "policy", tenant, "dropper", "-", stdin=UPLOADS_ONLY)
    for _ in range(6):
        assert code_of(lambda: s3.get_object(Bucket="drop", Key="elsewhere/report.txt")) == "AccessDenied"
    deadline = time.monotonic() + 30  # the event log is written behind the answers
    while True:
        denials = [e for e in d.events() if e.get("denied") and e["operation"] == "GetObject"]
        if len(denials) >= 6 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert denials and all(e["denied"] == "no allow" for e in denials)
    assert all(e["principal"].endswith(":user/dropper") for e in denials)


def test_boto3_across_tenants_after_a_grant(d: Daemon) -> None:
    owner = d.boto3_client()
    owner.create_bucket(Bucket="shared-reports")
    owner.put_object(Bucket="shared-reports", Key="q1.csv", Body=b"a,b\n")
    admin(d, "tenant", "create", "partner")
    keys = json.loads(admin(d, "key", "create", "partner", "--json").stdout)
    partner = d.boto3_client(access_key=keys["access_key"], secret_key=keys["secret_key"])
    partner_id = json.loads(admin(d, "tenant", "show", "partner", "--json").stdout)["id"]
    assert code_of(lambda: partner.get_object(Bucket="shared-reports", Key="q1.csv")) == "AccessDenied"
    assert code_of(lambda: partner.head_bucket(Bucket="shared-reports")) == "403"
    grant = policy(
        {
            "Sid": "PartnerReads",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{partner_id}:root"},
            "Action": ["s3:GetObject", "s3:ListBucket"],
            "Resource": ["arn:aws:s3:::shared-reports", "arn:aws:s3:::shared-reports/*"],
        }
    )
    owner.put_bucket_policy(Bucket="shared-reports", Policy=grant)
    assert partner.get_object(Bucket="shared-reports", Key="q1.csv")["Body"].read() == b"a,b\n"
    listed = partner.list_objects_v2(Bucket="shared-reports")
    assert [o["Key"] for o in listed["Contents"]] == ["q1.csv"]
    assert code_of(lambda: partner.put_object(Bucket="shared-reports", Key="x", Body=b"x")) == "AccessDenied"
    assert code_of(lambda: partner.delete_object(Bucket="shared-reports", Key="q1.csv")) == "AccessDenied"
    assert code_of(lambda: partner.get_bucket_policy(Bucket="shared-reports")) == "AccessDenied"
    assert [b["Name"] for b in partner.list_buckets()["Buckets"]] == []
    owner.delete_bucket_policy(Bucket="shared-reports")
    assert code_of(lambda: partner.get_object(Bucket="shared-reports", Key="q1.csv")) == "AccessDenied"


def test_anonymous_curl_of_a_bucket_public_by_policy(d: Daemon) -> None:
    s3 = d.boto3_client()
    s3.create_bucket(Bucket="assets")
    s3.put_object(Bucket="assets", Key="css/site.css", Body=b"body{}", ContentType="text/css")
    url = d.endpoint_url + "/assets/css/site.css"
    got = run([curl(), "-sS", "-o", "/dev/null", "-w", "%{http_code}", url])
    assert got.stdout == "403"
    public = policy(
        {
            "Sid": "PublicRead",
            "Effect": "Allow",
            "Principal": "*",
            "Action": "s3:GetObject",
            "Resource": "arn:aws:s3:::assets/*",
        }
    )
    assert code_of(lambda: s3.put_bucket_policy(Bucket="assets", Policy=public)) == "AccessDenied"  # blocked
    s3.delete_public_access_block(Bucket="assets")
    s3.put_bucket_policy(Bucket="assets", Policy=public)
    got = run([curl(), "-sS", "-w", "\n%{http_code} %{content_type}", url])
    assert got.stdout == "body{}\n200 text/css"
    got = run([curl(), "-sS", "-o", "/dev/null", "-w", "%{http_code}", d.endpoint_url + "/assets"])
    assert got.stdout == "403"  # the policy grants reads of objects, not listing
    got = run([curl(), "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT", "--data", "x", url])
    assert got.stdout == "403"
