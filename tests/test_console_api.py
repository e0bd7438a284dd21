"""The web console over plain HTTP against a real daemon: headers, cookies, CSRF refusals, the
login brake, secrets kept out of pages and logs, the supervisor serving it, turning it off, the
S3 restore it relies on, and how long a page of 1,000 keys takes to render."""

from __future__ import annotations

import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from console_http import Browser, NoRedirect
from daemon import Daemon, free_port

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Daemon, str]]:
    port = free_port()
    with Daemon(tmp_path_factory.mktemp("vaultaire"), extra_args=["--console", f"tcp:{port}:interface=127.0.0.1"]) as d:
        yield d, f"http://127.0.0.1:{port}"


def test_every_page_is_framed_by_no_one_and_runs_only_its_own_script(console: tuple[Daemon, str]) -> None:
    d, base = console
    b = Browser(base)
    status, headers, page = b.request("GET", "/login")
    assert status == 200
    csp = headers["content-security-policy"]
    for directive in ("default-src 'none'", "script-src 'self'", "frame-ancestors 'none'", "base-uri 'none'"):
        assert directive in csp
    assert "unsafe-inline" not in csp
    assert headers["x-frame-options"] == "DENY" and headers["x-content-type-options"] == "nosniff"
    assert "<script>" not in page and " style=" not in page and " on" not in re.sub(r"<[^>]*>[^<]*", "", page)
    cookie = headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert b.login(d.access_key or "", d.secret_key or "") == 303
    status, headers, _ = b.request("GET", "/")
    assert status == 200 and "frame-ancestors 'none'" in headers["content-security-policy"]


def test_forms_without_the_csrf_token_are_refused_and_change_nothing(console: tuple[Daemon, str]) -> None:
    d, base = console
    s3 = d.boto3_client()
    s3.create_bucket(Bucket="csrf-kept")
    s3.put_object(Bucket="csrf-kept", Key="a.txt", Body=b"kept")
    b = Browser(base)
    assert b.login(d.access_key or "", d.secret_key or "") == 303
    token = b.csrf()
    for wrong in ({}, {"csrf": "forged"}, {"csrf": token[:-2]}):
        for path, form in (
            ("/buckets", {"bucket": "csrf-made"}),
            ("/buckets/delete", {"bucket": "csrf-kept"}),
            ("/b/csrf-kept/delete", {"key": "a.txt"}),
            ("/b/csrf-kept/versioning", {"state": "Enabled"}),
            ("/logout", {}),
        ):
            status, _, page = b.request("POST", path, {**form, **wrong})
            assert status == 403 and "CSRF" in page, (path, wrong, status)
    status, _, _ = b.request("PUT", "/b/csrf-kept/upload?key=b.txt", body=b"x")
    assert status == 403
    # A login form posted from elsewhere (no token of its own) is refused too.
    stranger = Browser(base)
    status, _, _ = stranger.request(
        "POST", "/login", {"access_key": d.access_key or "", "secret_key": d.secret_key or ""}
    )
    assert status == 403
    names = [o["Key"] for o in s3.list_objects_v2(Bucket="csrf-kept")["Contents"]]
    assert names == ["a.txt"]
    assert "csrf-made" not in [x["Name"] for x in s3.list_buckets()["Buckets"]]
    assert "Status" not in s3.get_bucket_versioning(Bucket="csrf-kept")
    assert b.request("GET", "/")[0] == 200  # still signed in: /logout was refused
    # With the token, the same form works.
    assert b.request("POST", "/buckets", {"bucket": "csrf-made", "csrf": token})[0] == 303
    assert "csrf-made" in [x["Name"] for x in s3.list_buckets()["Buckets"]]


def test_secrets_stay_out_of_pages_urls_and_logs(console: tuple[Daemon, str]) -> None:
    d, base = console
    b = Browser(base)
    assert b.login(d.access_key or "", d.secret_key or "") == 303
    for path in ("/", "/usage", "/b/csrf-kept", "/b/csrf-kept/object?key=a.txt"):
        status, headers, page = b.request("GET", path)
        assert status == 200 and (d.secret_key or "") not in page + str(headers)
    status, headers, _ = b.request("GET", "/b/csrf-kept/download?key=a.txt")
    assert (
        status == 303 and "X-Amz-Signature=" in headers["location"] and (d.secret_key or "") not in headers["location"]
    )
    assert (d.secret_key or "") not in d.log_text()


def test_restoring_an_older_version_by_copying_it_over_its_key(console: tuple[Daemon, str]) -> None:
    d, _ = console
    s3 = d.boto3_client()
    s3.create_bucket(Bucket="restore")
    s3.put_bucket_versioning(Bucket="restore", VersioningConfiguration={"Status": "Enabled"})
    first = s3.put_object(Bucket="restore", Key="k", Body=b"one")["VersionId"]
    latest = s3.put_object(Bucket="restore", Key="k", Body=b"two")["VersionId"]
    s3.copy_object(Bucket="restore", Key="k", CopySource={"Bucket": "restore", "Key": "k", "VersionId": first})
    assert s3.get_object(Bucket="restore", Key="k")["Body"].read() == b"one"
    assert len(s3.list_object_versions(Bucket="restore")["Versions"]) == 3
    # The current version onto itself, unchanged, is still refused, by id or not.
    current = s3.head_object(Bucket="restore", Key="k")["VersionId"]
    assert current != latest
    for source in ({"Bucket": "restore", "Key": "k"}, {"Bucket": "restore", "Key": "k", "VersionId": current}):
        with pytest.raises(ClientError) as caught:
            s3.copy_object(Bucket="restore", Key="k", CopySource=source)
        assert caught.value.response["Error"]["Code"] == "InvalidRequest"


def test_a_page_of_1000_keys(console: tuple[Daemon, str]) -> None:
    d, base = console
    s3 = d.boto3_client()
    s3.create_bucket(Bucket="many")
    hostile = '"><img src=x onerror=alert(1)>'

    def put(i: int) -> None:
        s3.put_object(Bucket="many", Key=f"{hostile}{i:04d}", Body=b"x")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, range(1001)))
    b = Browser(base)
    assert b.login(d.access_key or "", d.secret_key or "") == 303
    timings = []
    for _ in range(5):
        started = time.perf_counter()
        status, _, page = b.request("GET", "/b/many")
        timings.append(time.perf_counter() - started)
        assert status == 200
    assert page.count('class="object"') == 1000 and 'id="next"' in page
    assert "<img" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    token = re.search(r'<a href="/b/many\?([^"]+)" id="next"', page)
    assert token and "token=" in token.group(1)
    status, _, second = b.request("GET", "/b/many?" + token.group(1).replace("&amp;", "&"))
    assert status == 200 and second.count('class="object"') == 1
    timings.sort()
    listed = []
    for _ in range(5):  # the S3 listing alone, for comparison
        started = time.perf_counter()
        assert len(s3.list_objects_v2(Bucket="many", MaxKeys=1000, Delimiter="/")["Contents"]) == 1000
        listed.append(time.perf_counter() - started)
    listed.sort()
    print(f"console: the S3 ListObjectsV2 of those 1,000 keys alone (boto3): {listed[2] * 1000:.0f} ms (median of 5)")
    print(
        f"console: a page of 1,000 keys rendered in {timings[len(timings) // 2] * 1000:.0f} ms (median of 5; "
        f"min {timings[0] * 1000:.0f} ms, max {timings[-1] * 1000:.0f} ms)"
    )


def test_the_supervisor_serves_the_console_of_its_workers(tmp_path: Path) -> None:
    port = free_port()
    with Daemon(tmp_path / "v", workers=2, extra_args=["--console", f"tcp:{port}:interface=127.0.0.1"]) as d:
        s3 = d.boto3_client()
        s3.create_bucket(Bucket="workers")
        b = Browser(f"http://127.0.0.1:{port}")
        assert b.login(d.access_key or "", d.secret_key or "") == 303
        status, _, page = b.request("GET", "/")
        assert status == 200 and ">workers</a>" in page
        deadline = time.monotonic() + 30
        while f"web console on http://127.0.0.1:{port}" not in d.log_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert f"web console on http://127.0.0.1:{port}" in d.log_text()


class ConfiguredConsole(Daemon):
    """No --console on the command line (tests/daemon.py adds one): the config file's counts."""

    def command(self) -> list[str]:
        command = super().command()
        at = command.index("--console")
        return command[:at] + command[at + 2 :]


def test_an_empty_console_endpoint_turns_it_off(tmp_path: Path) -> None:
    config = tmp_path / "v.toml"
    config.write_text('[console]\nlisten = ""\n')
    with ConfiguredConsole(tmp_path / "v", extra_args=["--config", str(config)]) as d:
        deadline = time.monotonic() + 30
        while "serving S3 on" not in d.log_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "serving S3 on" in d.log_text() and "web console" not in d.log_text()
        assert "ConsoleSite" not in d.log_text()


def test_failed_logins_are_braked(tmp_path: Path) -> None:
    """Five failures from one address: even the right secret waits (its own daemon: the brake
    would hold the other tests' logins from this address too)."""
    port = free_port()
    with Daemon(tmp_path / "v", extra_args=["--console", f"tcp:{port}:interface=127.0.0.1"]) as d:
        b = Browser(f"http://127.0.0.1:{port}")
        for _ in range(5):
            assert b.login(d.access_key or "", "wrong-secret") == 403
        token = b.csrf("/login")
        status, headers, page = b.request(
            "POST", "/login", {"csrf": token, "access_key": d.access_key or "", "secret_key": d.secret_key or ""}
        )
        assert status == 429 and "Too many failed logins" in page and int(headers["retry-after"]) > 0
        assert b.request("GET", "/")[0] == 303  # not signed in


def test_delete_an_object_and_a_bucket(console: tuple[Daemon, str]) -> None:
    d, base = console
    s3 = d.boto3_client()
    s3.create_bucket(Bucket="to-go")
    s3.put_object(Bucket="to-go", Key="dir/a b.txt", Body=b"x")
    b = Browser(base)
    assert b.login(d.access_key or "", d.secret_key or "") == 303
    token = b.csrf()
    # Not empty yet: S3 says so, and the page shows it.
    status, _, page = b.request("POST", "/buckets/delete", {"bucket": "to-go", "csrf": token})
    assert status == 409 and "BucketNotEmpty" in page
    status, headers, _ = b.request("POST", "/b/to-go/delete", {"key": "dir/a b.txt", "csrf": token})
    assert status == 303 and headers["location"] == "/b/to-go?prefix=dir%2F"
    assert b.request("POST", "/buckets/delete", {"bucket": "to-go", "csrf": token})[0] == 303
    assert "to-go" not in [x["Name"] for x in s3.list_buckets()["Buckets"]]


def test_the_session_cookie_is_secure_on_tls(tmp_path: Path) -> None:
    import ssl

    from daemon import self_signed_certificate

    key, cert = self_signed_certificate(tmp_path)
    port = free_port()
    endpoint = f"ssl:{port}:privateKey={key}:certKey={cert}:interface=127.0.0.1"
    with Daemon(tmp_path / "v", extra_args=["--console", endpoint]) as d:
        b = Browser(f"https://127.0.0.1:{port}")
        context = ssl.create_default_context(cafile=str(cert))
        context.check_hostname = False
        b.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(b.jar), urllib.request.HTTPSHandler(context=context), NoRedirect()
        )
        status, headers, _ = b.request("GET", "/login")
        assert status == 200 and "Secure" in headers["set-cookie"]
        token = re.search(r'name="csrf" value="([^"]+)"', b.request("GET", "/login")[2])
        assert token
        form = {"csrf": token.group(1), "access_key": d.access_key or "", "secret_key": d.secret_key or ""}
        status, headers, _ = b.request("POST", "/login", form)
        assert status == 303
        session = [c for c in b.jar if c.name == "vaultaire_console"]
        assert len(session) == 1 and session[0].secure and session[0].has_nonstandard_attr("HttpOnly")
        assert b.request("GET", "/")[0] == 200


def test_an_object_that_is_not_there_is_a_clear_404(console: tuple[Daemon, str]) -> None:
    d, base = console
    d.boto3_client().create_bucket(Bucket="empty-one")
    b = Browser(base)
    assert b.login(d.access_key or "", d.secret_key or "") == 303
    status, _, page = b.request("GET", "/b/empty-one/object?key=nothing")
    assert status == 404 and "NotFound (404)" in page


def test_the_start_line_names_the_console() -> None:
    from vaultaire.announce import serving_line
    from vaultaire.config import Settings

    assert "web console on http://127.0.0.1:9001," in serving_line(Settings(), "/d")
    assert "web console" not in serving_line(Settings(console=""), "/d")
