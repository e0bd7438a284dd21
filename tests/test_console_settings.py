"""The console's bucket settings page and object page settings against a real daemon: each
form changes what S3 then answers (read back with boto3), and a change the server refuses
comes back with the server's own error beside its form, what was typed kept, and nothing changed.
Also the multipart steps console.js takes for a large file."""

from __future__ import annotations

import html
import json
import os
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from console_http import Browser, section
from daemon import ADMIN, Daemon, free_port, write_config

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Daemon, Browser]]:
    port = free_port()
    base = tmp_path_factory.mktemp("vaultaire")
    config = write_config(base, f'[drivers.cold]\ntype = "local"\nroot = "{base / "cold"}"\n')
    args = ["--console", f"tcp:{port}:interface=127.0.0.1", "--config", config]
    with Daemon(base, extra_args=args) as d:
        b = Browser(f"http://127.0.0.1:{port}")
        assert b.login(d.access_key or "", d.secret_key or "") == 303
        yield d, b


def post(b: Browser, path: str, form: dict[str, str]) -> tuple[int, str]:
    status, headers, page = b.request("POST", path, {**form, "csrf": b.csrf("/")})
    return status, headers.get("location", "") if status == 303 else page


def error_code(call: object) -> str:
    with pytest.raises(ClientError) as caught:
        call()  # type: ignore[operator]
    return str(caught.value.response["Error"]["Code"])


def test_lifecycle_rules_are_added_listed_and_deleted(console: tuple[Daemon, Browser]) -> None:
    d, b = console
    s3 = d.boto3_client()
    s3.create_bucket(Bucket="life")
    status, where = post(
        b, "/b/life/settings/lifecycle", {"action": "add", "rule": "logs", "prefix": "logs/", "expire_days": "30"}
    )
    assert status == 303 and where == "/b/life/settings#lifecycle"
    post(b, "/b/life/settings/lifecycle", {"action": "add", "rule": "uploads", "abort_days": "2"})
    rules = {r["ID"]: r for r in s3.get_bucket_lifecycle_configuration(Bucket="life")["Rules"]}
    assert rules["logs"]["Expiration"] == {"Days": 30} and rules["logs"]["Filter"] == {"Prefix": "logs/"}
    assert rules["uploads"]["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 2}
    page = section(b.request("GET", "/b/life/settings")[2], "lifecycle")
    assert page.count('class="delete-rule"') == 2 and "keys starting 'logs/'" in page
    # A rule with no action: S3's refusal, beside the form; the two rules stay.
    status, page = post(b, "/b/life/settings/lifecycle", {"action": "add", "rule": "nothing"})
    assert status == 400 and "At least one action" in section(page, "lifecycle")
    # Raw XML the server cannot parse: its error, the text given back, nothing saved.
    status, page = post(b, "/b/life/settings/lifecycle", {"action": "raw", "document": "<Lifecycle><oops"})
    assert status == 400 and "MalformedXML" in section(page, "lifecycle")
    assert "&lt;Lifecycle&gt;&lt;oops" in section(page, "lifecycle")
    assert len(s3.get_bucket_lifecycle_configuration(Bucket="life")["Rules"]) == 2
    post(b, "/b/life/settings/lifecycle", {"action": "delete", "rule": "logs"})
    assert [r["ID"] for r in s3.get_bucket_lifecycle_configuration(Bucket="life")["Rules"]] == ["uploads"]
    post(b, "/b/life/settings/lifecycle", {"action": "delete", "rule": "uploads"})
    assert error_code(lambda: s3.get_bucket_lifecycle_configuration(Bucket="life")) == "NoSuchLifecycleConfiguration"
    assert "No rules." in section(b.request("GET", "/b/life/settings")[2], "lifecycle")


def test_the_policy_editor_shows_s3s_validation_error(console: tuple[Daemon, Browser]) -> None:
    d, b = console
    s3 = d.boto3_client()
    s3.create_bucket(Bucket="policed")
    typed = '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject"}]}'
    status, page = post(b, "/b/policed/settings/policy", {"action": "save", "document": typed})
    shown = section(page, "policy")
    assert status == 400 and "MalformedPolicy" in shown and 'role="alert"' in shown
    assert html.escape(typed, quote=False) in shown  # what was typed is still in the editor
    assert error_code(lambda: s3.get_bucket_policy(Bucket="policed")) == "NoSuchBucketPolicy"
    good = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Deny", "Principal": "*", "Action": "s3:DeleteObject", "Resource": "arn:aws:s3:::policed/*"}
        ],
    }
    status, _ = post(b, "/b/policed/settings/policy", {"action": "save", "document": json.dumps(good)})
    assert status == 303
    assert json.loads(s3.get_bucket_policy(Bucket="policed")["Policy"])["Statement"][0]["Action"] == "s3:DeleteObject"
    assert "arn:aws:s3:::policed/*" in section(b.request("GET", "/b/policed/settings")[2], "policy")
    assert post(b, "/b/policed/settings/policy", {"action": "remove"})[0] == 303
    assert error_code(lambda: s3.get_bucket_policy(Bucket="policed")) == "NoSuchBucketPolicy"


def test_cors_public_access_block_and_tags(console: tuple[Daemon, Browser]) -> None:
    d, b = console
    s3 = d.boto3_client()
    s3.create_bucket(Bucket="shaped")
    cors = (
        "<CORSConfiguration><CORSRule><AllowedOrigin>https://app.example</AllowedOrigin>"
        "<AllowedMethod>PUT</AllowedMethod></CORSRule></CORSConfiguration>"
    )
    assert post(b, "/b/shaped/settings/cors", {"action": "save", "document": cors})[0] == 303
    rule = s3.get_bucket_cors(Bucket="shaped")["CORSRules"][0]
    assert rule["AllowedOrigins"] == ["https://app.example"] and rule["AllowedMethods"] == ["PUT"]
    assert "https://app.example" in section(b.request("GET", "/b/shaped/settings")[2], "cors")
    status, page = post(b, "/b/shaped/settings/cors", {"action": "save", "document": cors.replace("PUT", "FETCH")})
    assert status == 400 and "FETCH" in section(page, "cors")
    assert s3.get_bucket_cors(Bucket="shaped")["CORSRules"][0]["AllowedMethods"] == ["PUT"]
    assert post(b, "/b/shaped/settings/cors", {"action": "remove"})[0] == 303
    assert error_code(lambda: s3.get_bucket_cors(Bucket="shaped")) == "NoSuchCORSConfiguration"

    switches = {"action": "save", "BlockPublicAcls": "true", "RestrictPublicBuckets": "true"}
    assert post(b, "/b/shaped/settings/public-access-block", switches)[0] == 303
    assert s3.get_public_access_block(Bucket="shaped")["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "IgnorePublicAcls": False,
        "BlockPublicPolicy": False,
        "RestrictPublicBuckets": True,
    }
    shown = section(b.request("GET", "/b/shaped/settings")[2], "public-access-block")
    assert shown.count('checked="checked"') == 2

    status, page = post(b, "/b/shaped/settings/tags", {"action": "add", "tag": "team", "value": "<ops>"})
    assert status == 400 and "InvalidTag" in section(page, "tags")
    assert post(b, "/b/shaped/settings/tags", {"action": "add", "tag": "team", "value": "ops@example"})[0] == 303
    assert post(b, "/b/shaped/settings/tags", {"action": "add", "tag": "cost", "value": "42"})[0] == 303
    tag_set = {t["Key"]: t["Value"] for t in s3.get_bucket_tagging(Bucket="shaped")["TagSet"]}
    assert tag_set == {"team": "ops@example", "cost": "42"}
    assert "ops@example" in section(b.request("GET", "/b/shaped/settings")[2], "tags")
    post(b, "/b/shaped/settings/tags", {"action": "delete", "tag": "team"})
    post(b, "/b/shaped/settings/tags", {"action": "delete", "tag": "cost"})
    assert error_code(lambda: s3.get_bucket_tagging(Bucket="shaped")) == "NoSuchTagSet"


def test_default_encryption_and_what_the_server_does_not_do(console: tuple[Daemon, Browser]) -> None:
    d, b = console
    s3 = d.boto3_client()
    s3.create_bucket(Bucket="sealed")
    assert post(b, "/b/sealed/settings/encryption", {"action": "save", "algorithm": "AES256"})[0] == 303
    rule = s3.get_bucket_encryption(Bucket="sealed")["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert ">AES256<" in section(b.request("GET", "/b/sealed/settings")[2], "encryption")
    # Dual-layer SSE-KMS is not given: the server's 501 is what the user sees, nothing is saved.
    status, page = post(b, "/b/sealed/settings/encryption", {"action": "save", "algorithm": "aws:kms:dsse"})
    assert status == 501 and "NotImplemented" in section(page, "encryption")
    rule = s3.get_bucket_encryption(Bucket="sealed")["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert post(b, "/b/sealed/settings/encryption", {"action": "remove"})[0] == 303
    assert "none" in section(b.request("GET", "/b/sealed/settings")[2], "encryption")


def test_object_lock_default_retention(console: tuple[Daemon, Browser]) -> None:
    d, b = console
    s3 = d.boto3_client()
    s3.create_bucket(Bucket="locked", ObjectLockEnabledForBucket=True)
    form = {"action": "save", "mode": "GOVERNANCE", "period": "3", "unit": "Days"}
    assert post(b, "/b/locked/settings/object-lock", form)[0] == 303
    rule = s3.get_object_lock_configuration(Bucket="locked")["ObjectLockConfiguration"]["Rule"]
    assert rule["DefaultRetention"] == {"Mode": "GOVERNANCE", "Days": 3}
    shown = section(b.request("GET", "/b/locked/settings")[2], "object-lock")
    assert "GOVERNANCE for 3 days" in shown
    # A mode without a period is the console's own refusal; the rule stays.
    status, page = post(b, "/b/locked/settings/object-lock", {**form, "period": ""})
    assert status == 400 and "needs a period" in section(page, "object-lock")
    # A bucket without Object Lock says so, and turning it on without versioning is S3's refusal.
    s3.create_bucket(Bucket="unlocked")
    assert ">Off<" in section(b.request("GET", "/b/unlocked/settings")[2], "object-lock")
    status, page = post(b, "/b/unlocked/settings/object-lock", {"action": "enable"})
    assert status in (400, 409) and "The server refused this" in section(page, "object-lock")


def test_a_user_without_rights_sees_the_refusal(console: tuple[Daemon, Browser], tmp_path: Path) -> None:
    d, b = console
    s3 = d.boto3_client()
    s3.create_bucket(Bucket="not-yours")
    policy = tmp_path / "policy.json"
    statement = {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::not-yours"}
    policy.write_text(json.dumps({"Version": "2012-10-17", "Statement": [statement]}))
    made = subprocess.run(
        [ADMIN, "--data", str(d.data_dir), "user", "create", "default", "lister", "--policy", str(policy), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr
    keys = json.loads(made.stdout)
    lister = Browser(b.base)
    assert lister.login(keys["access_key"], keys["secret_key"]) == 303
    status, _, page = lister.request("GET", "/b/not-yours/settings")
    assert status == 200 and "Not shown: AccessDenied" in section(page, "policy")
    status, page = post(lister, "/b/not-yours/settings/tags", {"action": "add", "tag": "k", "value": "v"})
    assert status == 400 and "cannot be read: AccessDenied" in section(page, "tags")
    status, page = post(lister, "/b/not-yours/settings/policy", {"action": "remove"})
    assert status == 403 and "AccessDenied" in section(page, "policy")
    status, _ = post(b, "/b/not-yours/settings/unknown", {})
    assert status == 404
    status, _, page = b.request("GET", "/b/no-such-bucket/settings")
    assert status == 404 and "NoSuchBucket" in page


def test_object_tags_are_edited_on_the_object_page(console: tuple[Daemon, Browser]) -> None:
    d, b = console
    s3 = d.boto3_client()
    s3.create_bucket(Bucket="tagged")
    s3.put_object(Bucket="tagged", Key="a b.txt", Body=b"x")
    form = {"key": "a b.txt", "action": "add", "tag": "colour", "value": "blue"}
    status, where = post(b, "/b/tagged/object/tags", form)
    assert status == 303 and where.startswith("/b/tagged/object?key=a+b.txt")
    assert s3.get_object_tagging(Bucket="tagged", Key="a b.txt")["TagSet"] == [{"Key": "colour", "Value": "blue"}]
    status, _, page = b.request("GET", "/b/tagged/object?key=a+b.txt")
    assert status == 200 and "colour" in section(page, "object-tags") and "blue" in section(page, "object-tags")
    status, page = post(b, "/b/tagged/object/tags", {**form, "tag": "bad", "value": "<no>"})
    assert status == 400 and "InvalidTag" in section(page, "object-tags")
    assert post(b, "/b/tagged/object/tags", {"key": "a b.txt", "action": "delete", "tag": "colour"})[0] == 303
    assert s3.get_object_tagging(Bucket="tagged", Key="a b.txt")["TagSet"] == []
    # No Object Lock on this bucket: no lock section.
    assert 'id="object-lock"' not in b.request("GET", "/b/tagged/object?key=a+b.txt")[2]


def test_object_lock_is_chosen_at_creation_and_retention_and_hold_are_changed(
    console: tuple[Daemon, Browser],
) -> None:
    d, b = console
    s3 = d.boto3_client()
    assert post(b, "/buckets", {"bucket": "vault", "object_lock": "on"})[0] == 303
    assert s3.get_object_lock_configuration(Bucket="vault")["ObjectLockConfiguration"]["ObjectLockEnabled"] == "Enabled"
    assert s3.get_bucket_versioning(Bucket="vault")["Status"] == "Enabled"
    version = s3.put_object(Bucket="vault", Key="deed", Body=b"mine")["VersionId"]
    page = b.request("GET", "/b/vault/object?key=deed")[2]
    assert ">none<" in section(page, "object-lock") and ">OFF<" in section(page, "object-lock")
    until = (datetime.now(UTC) + timedelta(days=3)).strftime("%Y-%m-%d")
    form = {"key": "deed", "version": version, "mode": "GOVERNANCE", "until": until}
    assert post(b, "/b/vault/object/retention", form)[0] == 303
    kept = s3.get_object_retention(Bucket="vault", Key="deed", VersionId=version)["Retention"]
    assert kept["Mode"] == "GOVERNANCE" and kept["RetainUntilDate"].strftime("%Y-%m-%d") == until
    assert f"GOVERNANCE until {until}" in section(b.request("GET", "/b/vault/object?key=deed")[2], "object-lock")
    # Shortening GOVERNANCE without the bypass: S3's AccessDenied, shown beside the form.
    sooner = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%d")
    status, page = post(b, "/b/vault/object/retention", {**form, "until": sooner})
    assert status == 403 and "AccessDenied" in section(page, "object-lock")
    # With the bypass (the root user holds every permission), it is shortened.
    assert post(b, "/b/vault/object/retention", {**form, "until": sooner, "bypass": "true"})[0] == 303
    kept = s3.get_object_retention(Bucket="vault", Key="deed", VersionId=version)["Retention"]
    assert kept["RetainUntilDate"].strftime("%Y-%m-%d") == sooner
    status, page = post(b, "/b/vault/object/retention", {**form, "until": "next tuesday"})
    assert status == 400 and "must be a date" in section(page, "object-lock")
    assert post(b, "/b/vault/object/legal-hold", {"key": "deed", "version": version, "state": "ON"})[0] == 303
    assert s3.get_object_legal_hold(Bucket="vault", Key="deed", VersionId=version)["LegalHold"]["Status"] == "ON"
    assert ">ON<" in section(b.request("GET", "/b/vault/object?key=deed")[2], "object-lock")
    assert post(b, "/b/vault/object/legal-hold", {"key": "deed", "version": version, "state": "OFF"})[0] == 303
    assert s3.get_object_legal_hold(Bucket="vault", Key="deed", VersionId=version)["LegalHold"]["Status"] == "OFF"


def test_the_object_page_shows_its_encryption(console: tuple[Daemon, Browser]) -> None:
    d, b = console
    s3 = d.boto3_client()
    s3.create_bucket(Bucket="ciphers")
    s3.put_object(Bucket="ciphers", Key="sealed", Body=b"x", ServerSideEncryption="AES256")
    s3.put_object(Bucket="ciphers", Key="open", Body=b"x")
    assert 'id="encryption">SSE-S3 (AES256)<' in b.request("GET", "/b/ciphers/object?key=sealed")[2]
    assert 'id="encryption">none<' in b.request("GET", "/b/ciphers/object?key=open")[2]


def test_a_bucket_is_created_on_a_chosen_placement(console: tuple[Daemon, Browser]) -> None:
    d, b = console
    s3 = d.boto3_client()
    home = b.request("GET", "/")[2]
    assert '<select name="placement">' in home and '<option value="cold">cold</option>' in home
    assert post(b, "/buckets", {"bucket": "chilly", "placement": "cold"})[0] == 303
    assert s3.get_bucket_location(Bucket="chilly")["LocationConstraint"] == "cold"
    status, page = post(b, "/buckets", {"bucket": "nowhere", "placement": "mars"})
    assert status == 400 and "InvalidLocationConstraint" in page
    assert "nowhere" not in [x["Name"] for x in s3.list_buckets()["Buckets"]]


def test_a_multipart_upload_through_the_console(console: tuple[Daemon, Browser]) -> None:
    d, b = console
    s3 = d.boto3_client()
    s3.create_bucket(Bucket="parts")
    token = b.csrf("/")
    csrf = {"X-CSRF-Token": token}
    first, second = os.urandom(5 * 2**20 + 3), os.urandom(1000)

    def step(method: str, name: str, query: str, body: bytes | None = None, **headers: str) -> tuple[int, Any]:
        status, _, text = b.request(
            method, f"/b/parts/multipart/{name}?{query}", body=body, headers={**csrf, **headers}
        )
        return status, json.loads(text)

    status, made = step("POST", "create", "key=big+file.bin", b"", **{"Content-Type": "application/x-test"})
    assert status == 200 and made["upload"]
    upload = made["upload"]
    etags = []
    for number, part in ((1, first), (2, second)):
        status, sent = step("PUT", "part", f"key=big+file.bin&upload={upload}&part={number}", part)
        assert status == 200 and sent["part"] == number
        etags.append({"part": number, "etag": sent["etag"]})
    # A bad part list is the console's own 400; a wrong ETag is S3's InvalidPart, and the upload stays.
    status, refused = step("POST", "complete", f"key=big+file.bin&upload={upload}", b"not json")
    assert status == 400 and "JSON" in refused["error"]
    wrong = json.dumps([etags[0], {"part": 2, "etag": '"0000"'}]).encode()
    status, refused = step("POST", "complete", f"key=big+file.bin&upload={upload}", wrong)
    assert status == 400 and "InvalidPart" in refused["error"]
    status, done = step("POST", "complete", f"key=big+file.bin&upload={upload}", json.dumps(etags).encode())
    assert status == 200 and done["etag"].endswith('-2"')
    got = s3.get_object(Bucket="parts", Key="big file.bin")
    assert got["Body"].read() == first + second and got["ContentType"] == "application/x-test"

    # Abort frees the parts; S3 forgets the upload.
    upload = step("POST", "create", "key=dropped", b"")[1]["upload"]
    assert step("PUT", "part", f"key=dropped&upload={upload}&part=1", first)[0] == 200
    assert step("POST", "abort", f"key=dropped&upload={upload}", b"")[0] == 200
    assert s3.list_multipart_uploads(Bucket="parts").get("Uploads", []) == []
    # Without the session's token, no step is taken and a big part is not even kept.
    status, _, _ = b.request("POST", "/b/parts/multipart/create?key=sneaky", body=b"")
    assert status == 403
    status, _, _ = b.request("PUT", f"/b/parts/multipart/part?key=dropped&upload={upload}&part=1", body=first)
    assert status == 403
    assert step("PUT", "part", f"key=x&upload={upload}&part=0", b"x")[0] == 400
    assert s3.list_multipart_uploads(Bucket="parts").get("Uploads", []) == []


def test_settings_forms_without_the_csrf_token_change_nothing(console: tuple[Daemon, Browser]) -> None:
    d, b = console
    s3 = d.boto3_client()
    s3.create_bucket(Bucket="guarded")
    s3.put_object(Bucket="guarded", Key="k", Body=b"x")
    for path, form in (
        ("/b/guarded/settings/tags", {"action": "add", "tag": "a", "value": "b"}),
        ("/b/guarded/settings/policy", {"action": "save", "document": "{}"}),
        ("/b/guarded/settings/encryption", {"action": "save", "algorithm": "AES256"}),
        ("/b/guarded/object/tags", {"key": "k", "action": "add", "tag": "a", "value": "b"}),
        ("/b/guarded/object/legal-hold", {"key": "k", "state": "ON"}),
    ):
        status, _, page = b.request("POST", path, form)
        assert status == 403 and "CSRF" in page, path
    assert error_code(lambda: s3.get_bucket_tagging(Bucket="guarded")) == "NoSuchTagSet"
    assert error_code(lambda: s3.get_bucket_encryption(Bucket="guarded")) == (
        "ServerSideEncryptionConfigurationNotFoundError"
    )
    assert s3.get_object_tagging(Bucket="guarded", Key="k")["TagSet"] == []
