"""Acceptance: boto3 with SSE-S3 and SSE-C against a real `twistd vaultaire` over TLS."""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError
from daemon import Daemon, blob_files, https_daemon

pytestmark = pytest.mark.timeout(180)

MIB = 2**20
MARKER = b"SSE-CLIENT-PLAINTEXT-MARKER"
KEY_A = os.urandom(32)
KEY_B = os.urandom(32)


def body_of(size: int) -> bytes:
    return (MARKER * (size // len(MARKER) + 1))[:size]


@pytest.fixture(scope="module")
def tls_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    base = tmp_path_factory.mktemp("sse")
    d, _ = https_daemon(base / "daemon")
    d.start()
    yield d
    d.stop()


@pytest.fixture(scope="module")
def s3(tls_daemon: Daemon) -> Any:
    client = tls_daemon.boto3_client()
    client.create_bucket(Bucket="sse")
    return client


def no_plaintext_on_disk(daemon: Daemon) -> None:
    files = blob_files(daemon.data_dir)
    assert files
    for path in files:
        assert MARKER not in path.read_bytes(), path


def test_boto3_sse_s3_put_get_range_multipart_copy(s3: Any, tls_daemon: Daemon) -> None:
    data = body_of(300_000)
    put = s3.put_object(Bucket="sse", Key="s3/one", Body=data, ServerSideEncryption="AES256")
    assert put["ServerSideEncryption"] == "AES256"
    assert put["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
    got = s3.get_object(Bucket="sse", Key="s3/one")
    assert got["ServerSideEncryption"] == "AES256" and got["Body"].read() == data
    part = s3.get_object(Bucket="sse", Key="s3/one", Range="bytes=100000-200000")
    assert part["Body"].read() == data[100000:200001]
    assert s3.head_object(Bucket="sse", Key="s3/one")["ServerSideEncryption"] == "AES256"

    big = body_of(12 * MIB)
    config = TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB)
    s3.upload_fileobj(io.BytesIO(big), "sse", "s3/big", ExtraArgs={"ServerSideEncryption": "AES256"}, Config=config)
    head = s3.head_object(Bucket="sse", Key="s3/big")
    assert head["ServerSideEncryption"] == "AES256" and head["ETag"].endswith('-3"')
    assert s3.get_object(Bucket="sse", Key="s3/big")["Body"].read() == big
    middle = s3.get_object(Bucket="sse", Key="s3/big", Range=f"bytes={5 * MIB - 5}-{10 * MIB + 5}")["Body"].read()
    assert middle == big[5 * MIB - 5 : 10 * MIB + 6]
    assert s3.get_object(Bucket="sse", Key="s3/big", PartNumber=2)["Body"].read() == big[5 * MIB : 10 * MIB]

    copied = s3.copy_object(
        Bucket="sse", Key="s3/copy", CopySource={"Bucket": "sse", "Key": "s3/big"}, ServerSideEncryption="AES256"
    )
    assert copied["ServerSideEncryption"] == "AES256"
    assert s3.get_object(Bucket="sse", Key="s3/copy")["Body"].read() == big
    no_plaintext_on_disk(tls_daemon)

    # aws:kms without a key id: the deployment's aws/s3 key, made at first use.
    kms = s3.put_object(Bucket="sse", Key="s3/kms", Body=data, ServerSideEncryption="aws:kms")
    assert kms["ServerSideEncryption"] == "aws:kms" and kms["SSEKMSKeyId"].startswith("arn:aws:kms:")
    assert s3.get_object(Bucket="sse", Key="s3/kms")["Body"].read() == data
    with pytest.raises(ClientError) as info:
        s3.put_object(Bucket="sse", Key="s3/kms", Body=b"x", ServerSideEncryption="aws:kms:dsse")
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 501


def test_boto3_sse_c_put_get_head_copy_multipart(s3: Any, tls_daemon: Daemon) -> None:
    data = body_of(200_000)
    a = {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": KEY_A}
    b = {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": KEY_B}
    put = s3.put_object(Bucket="sse", Key="c/one", Body=data, **a)
    assert put["SSECustomerAlgorithm"] == "AES256" and put["SSECustomerKeyMD5"]
    assert put["ETag"] != f'"{hashlib.md5(data).hexdigest()}"'
    assert s3.get_object(Bucket="sse", Key="c/one", **a)["Body"].read() == data
    assert s3.get_object(Bucket="sse", Key="c/one", Range="bytes=70000-70010", **a)["Body"].read() == data[70000:70011]
    assert s3.head_object(Bucket="sse", Key="c/one", **a)["SSECustomerAlgorithm"] == "AES256"
    for kwargs, status in (({}, 400), (b, 403)):
        with pytest.raises(ClientError) as info:
            s3.get_object(Bucket="sse", Key="c/one", **kwargs)
        assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
        with pytest.raises(ClientError) as info:
            s3.head_object(Bucket="sse", Key="c/one", **kwargs)
        assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == status

    s3.copy_object(
        Bucket="sse",
        Key="c/copy",
        CopySource={"Bucket": "sse", "Key": "c/one"},
        CopySourceSSECustomerAlgorithm="AES256",
        CopySourceSSECustomerKey=KEY_A,
        **b,
    )
    assert s3.get_object(Bucket="sse", Key="c/copy", **b)["Body"].read() == data

    big = body_of(11 * MIB)
    config = TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB)
    s3.upload_fileobj(io.BytesIO(big), "sse", "c/big", ExtraArgs=a, Config=config)
    assert s3.get_object(Bucket="sse", Key="c/big", **a)["Body"].read() == big
    middle = s3.get_object(Bucket="sse", Key="c/big", Range=f"bytes={5 * MIB - 5}-{5 * MIB + 5}", **a)
    assert middle["Body"].read() == big[5 * MIB - 5 : 5 * MIB + 6]
    no_plaintext_on_disk(tls_daemon)


def test_sse_c_over_plain_http_is_refused_by_default(tmp_path: Path) -> None:
    d = Daemon(tmp_path / "plain").start()
    try:
        s3 = d.boto3_client()
        s3.create_bucket(Bucket="plain")
        with pytest.raises(ClientError) as info:
            s3.put_object(Bucket="plain", Key="k", Body=b"x", SSECustomerAlgorithm="AES256", SSECustomerKey=KEY_A)
        assert info.value.response["Error"]["Code"] == "InvalidRequest"
        assert blob_files(d.data_dir) == []
    finally:
        d.stop()


def test_boto3_bucket_default_encryption(s3: Any, tls_daemon: Daemon) -> None:
    s3.create_bucket(Bucket="sse-default")
    with pytest.raises(ClientError) as info:
        s3.get_bucket_encryption(Bucket="sse-default")
    assert info.value.response["Error"]["Code"] == "ServerSideEncryptionConfigurationNotFoundError"
    s3.put_bucket_encryption(
        Bucket="sse-default",
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
        },
    )
    rules = s3.get_bucket_encryption(Bucket="sse-default")["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert s3.put_object(Bucket="sse-default", Key="k", Body=b"x")["ServerSideEncryption"] == "AES256"
    assert s3.head_object(Bucket="sse-default", Key="k")["ServerSideEncryption"] == "AES256"
    # A KMS default naming a key that does not exist is kept (as on S3); writes then say so.
    s3.put_bucket_encryption(
        Bucket="sse-default",
        ServerSideEncryptionConfiguration={
            "Rules": [
                {
                    "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": "k1"},
                    "BucketKeyEnabled": True,
                }
            ]
        },
    )
    rule = s3.get_bucket_encryption(Bucket="sse-default")["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["KMSMasterKeyID"] == "k1" and rule["BucketKeyEnabled"]
    with pytest.raises(ClientError) as info:
        s3.put_object(Bucket="sse-default", Key="k1", Body=b"x")
    assert info.value.response["Error"]["Code"] == "KMS.NotFoundException"
    s3.delete_bucket_encryption(Bucket="sse-default")
    assert "ServerSideEncryption" not in s3.put_object(Bucket="sse-default", Key="k2", Body=b"x")
