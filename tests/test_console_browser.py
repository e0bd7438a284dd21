"""The web console in a real Chromium (issue 19): log in, create a bucket, upload a 20 MiB file
with the upload control (a multipart upload, a part at a time) and see its progress, cancel
another, browse into a prefix, download and compare, a share link fetched by a fresh browser
context, versioning on, overwrite and restore, a bucket setting the server refuses, usage and
bill, log out; a restricted user; a hostile key shown as text; a form without its CSRF token.

Screenshots of the main pages are saved under the test's tmp directory and their paths printed.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from daemon import ADMIN, Daemon, free_port, write_config
from test_browser import JS_DIR, chromium, playwright  # noqa: F401 (fixtures)

pytestmark = pytest.mark.timeout(900)  # a first run may apt-get install Chromium

CONSOLE_JS = Path(__file__).parent / "console_js" / "console.js"
HOSTILE = "<img src=x onerror=alert(1)>"


def admin(d: Daemon, *args: str) -> Any:
    done = subprocess.run([ADMIN, "--data", str(d.data_dir), *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


OPERATOR = ("OPERATOR", "operator-secret-for-the-browser")


def console_daemon(base: Path) -> tuple[Daemon, str]:
    port = free_port()
    base.mkdir(parents=True, exist_ok=True)
    config = write_config(
        base, f'[console]\nadmin_key = "{OPERATOR[0]}"\nadmin_secret = "{OPERATOR[1]}"\nmetrics_seconds = 0.5\n'
    )
    d = Daemon(base, extra_args=["--console", f"tcp:{port}:interface=127.0.0.1", "--config", config])
    return d, f"http://127.0.0.1:{port}"


def test_console_in_chromium(tmp_path: Path, chromium: str, playwright: Path) -> None:  # noqa: F811
    d, console = console_daemon(tmp_path / "vaultaire")
    with d:
        s3 = d.boto3_client(signature_version="s3v4")
        s3.create_bucket(Bucket="other")
        big = tmp_path / "big.bin"
        big.write_bytes(os.urandom(20 * 2**20))
        cancelled = tmp_path / "cancel.bin"
        cancelled.write_bytes(bytes(20 * 2**20))
        policy = tmp_path / "policy.json"
        policy.write_text(
            json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::photos"},
                        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::photos/*"},
                    ],
                }
            )
        )
        viewer = admin(d, "user", "create", "default", "viewer", "--policy", str(policy), "--json")
        screens = tmp_path / "screens"
        screens.mkdir()
        plan = {
            "console": console,
            "chromium": chromium,
            "access": d.access_key,
            "secret": d.secret_key,
            "restrictedAccess": viewer["access_key"],
            "restrictedSecret": viewer["secret_key"],
            "operatorAccess": OPERATOR[0],
            "operatorSecret": OPERATOR[1],
            "bucket": "photos",
            "otherBucket": "other",
            "forgedBucket": "forged",
            "bigFile": str(big),
            "cancelFile": str(cancelled),
            "badPolicy": '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow"}]}',
            "hostile": HOSTILE,
            "screenshots": str(screens),
        }

        # The browser makes "photos"; then it puts these (presigned here, offline) to browse into.
        plan["seed"] = [
            {"url": s3.generate_presigned_url("put_object", Params={"Bucket": "photos", "Key": key}), "body": body}
            for key, body in (("docs/readme.txt", "read me"), (HOSTILE, "hostile"))
        ]
        plan_file = tmp_path / "plan.json"
        plan_file.write_text(json.dumps(plan))
        env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
        env.update({"NODE_PATH": str(playwright), "HOME": str(tmp_path)})
        result = run_scenario(plan_file, env)

        for shot in result["screenshots"]:
            print(f"console screenshot: {shot}")
        assert result["unauthenticated"] == "/login"
        assert result["afterLogin"] == "/"
        assert {c["name"]: (c["httpOnly"], c["sameSite"]) for c in result["cookies"]}["vaultaire_console"] == (
            True,
            "Strict",
        )
        assert result["created"] == "/b/photos"
        # Progress was seen below 100 % before the end, then the page listed the file.
        seen = result["uploadProgress"]
        print(f"console: upload progress seen: {[round(v, 2) for v in seen]}")
        assert any(0 < v < 1 for v in seen) and seen[-1] == 1 and seen == sorted(seen), seen
        assert "big.bin" in result["listedAfterUpload"]
        # The 20 MiB went up as three parts; the cancelled one left no upload and no object.
        assert s3.head_object(Bucket="photos", Key="big.bin")["ETag"].endswith('-3"')
        assert "cancelled" in result["cancelledRow"]
        assert s3.list_multipart_uploads(Bucket="photos").get("Uploads", []) == []
        listed = [o["Key"] for o in s3.list_objects_v2(Bucket="photos").get("Contents", [])]
        assert "cancel.bin" not in listed and "left.bin" not in listed
        digest = hashlib.sha256(big.read_bytes()).hexdigest()
        assert result["downloadSha256"] == digest and result["downloadName"] == "big.bin"
        assert "docs/" in result["rootListing"] and result["hostileShown"] and result["imagesInListing"] == 0
        assert "prefix=docs%2F" in result["prefixUrl"] and result["prefixListing"] == ["readme.txt"]
        assert result["shareStatus"] == 200 and result["shareSha256"] == digest
        assert "X-Amz-Expires=7200" in result["shareLink"] and result["copyLabel"] == "Copied"
        assert result["clipboard"] == result["shareLink"]
        assert result["versioning"] == "Enabled"
        assert result["versionRows"] == 2 and result["versionRowsAfterRestore"] == 3, result["afterRestore"]
        assert s3.get_object(Bucket="photos", Key="v.txt")["Body"].read() == b"first version"
        assert "MalformedPolicy" in result["policyError"] and result["policyKept"] == plan["badPolicy"]
        assert result["hostileKeyText"] == HOSTILE and result["dialogs"] == []
        assert "prefix=docs%2F" in result["plainUploadBack"]
        assert sorted(result["plainListing"]) == ["plain form.txt", "readme.txt"]
        assert s3.get_object(Bucket="photos", Key="docs/plain form.txt")["Body"].read() == b"no script"
        assert result["forgedStatus"] == 403
        assert "forged" not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
        assert result["bill"].startswith("$")
        assert result["charts"] == ["chart-stored", "chart-requests", "chart-in", "chart-out"]
        assert result["csvHead"] == "date,stored_bytes_average,requests,bytes_in,bytes_out\r"  # RFC 4180 lines
        assert result["afterLogout"] == "/login"
        # The restricted user: no bucket list, its one bucket readable, nothing else.
        assert "may not list the buckets" in result["restrictedHome"] and "AccessDenied" in result["restrictedHome"]
        assert "big.bin" in result["restrictedListing"]
        assert "AccessDenied" in result["restrictedOther"]
        assert "AccessDenied" in result["restrictedCreate"]
        assert "restricted-made" not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
        assert "Only the account's root user" in result["restrictedUsage"]
        # The operator: every tenant, and one tenant's users, keys, bill and stored-bytes history.
        assert result["operatorHome"] == "/ops" and result["operatorTenants"] == ["default"]
        assert result["operatorBill"].startswith("$") and "chart-hourly" in result["operatorCharts"]
        assert "viewer" in result["operatorUsers"]
        # The processes serving S3, and the ops site's numbers drawn over the last hour.
        assert [w[2] for w in result["operatorWorkers"]] == ["serving"] * d.workers
        assert {"chart-requests", "chart-bytes", "chart-latency"} <= set(result["operatorMetricCharts"])


def run_scenario(plan_file: Path, env: dict[str, str]) -> dict[str, Any]:
    result = subprocess.run(
        ["node", str(CONSOLE_JS), str(plan_file)], env=env, capture_output=True, text=True, timeout=400
    )
    out: dict[str, Any] = json.loads(result.stdout or "{}")
    assert result.returncode == 0, f"the browser run failed:\n{result.stderr[-3000:]}\nsaw: {json.dumps(out)[-3000:]}"
    return out
