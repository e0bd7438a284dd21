"""The `twistd vaultaire` command line: start-up errors, dev keys, config file, TLS."""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from daemon import (
    ACCESS_KEY,
    SECRET_KEY,
    Daemon,
    assert_one_line_failure,
    free_port,
    https_daemon,
    run_twistd,
)

pytestmark = pytest.mark.timeout(90)

ENV_KEYS = {"VAULTAIRE_ACCESS_KEY": ACCESS_KEY, "VAULTAIRE_SECRET_KEY": SECRET_KEY}


def endpoints() -> list[str]:
    return [
        "--listen",
        f"tcp:{free_port()}:interface=127.0.0.1",
        "--ops",
        f"tcp:{free_port()}:interface=127.0.0.1",
    ]


# -- start-up failures: one line on stderr, non-zero exit


def test_config_file_invalid_toml(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[server\nlisten = 'tcp:1'\n")
    result = run_twistd(["--config", str(config), "--data", str(tmp_path / "d"), *endpoints()], tmp_path, ENV_KEYS)
    assert_one_line_failure(result, "TOML")
    assert not (tmp_path / "d").exists()


def test_config_file_unknown_setting(tmp_path: Path) -> None:
    config = tmp_path / "unknown.toml"
    config.write_text('[server]\nlisten = "tcp:8080"\nlistne = "tcp:9090"\n')
    result = run_twistd(["--config", str(config), "--data", str(tmp_path / "d"), *endpoints()], tmp_path, ENV_KEYS)
    assert_one_line_failure(result, "listne")


def test_config_file_unknown_section_and_wrong_type(tmp_path: Path) -> None:
    config = tmp_path / "section.toml"
    config.write_text('[sever]\nlisten = "tcp:8080"\n')
    result = run_twistd(["--config", str(config), "--data", str(tmp_path / "d"), *endpoints()], tmp_path, ENV_KEYS)
    assert_one_line_failure(result, "sever")
    config.write_text('[server]\nmax_clock_skew = "ten"\n')
    result = run_twistd(["--config", str(config), "--data", str(tmp_path / "d"), *endpoints()], tmp_path, ENV_KEYS)
    assert_one_line_failure(result, "max_clock_skew")


def test_config_file_missing(tmp_path: Path) -> None:
    result = run_twistd(
        ["--config", str(tmp_path / "nope.toml"), "--data", str(tmp_path / "d"), *endpoints()], tmp_path, ENV_KEYS
    )
    assert_one_line_failure(result, "nope.toml")


def test_data_dir_cannot_be_created(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    result = run_twistd(["--data", str(blocker / "data"), *endpoints()], tmp_path, ENV_KEYS)
    assert_one_line_failure(result, "data directory", str(blocker))


def _run_with_port_taken(tmp_path: Path, which: str) -> tuple[subprocess.CompletedProcess[str], int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        args = endpoints()
        args[args.index("--" + which) + 1] = f"tcp:{port}:interface=127.0.0.1"
        return run_twistd(["--data", str(tmp_path / "d"), *args], tmp_path, ENV_KEYS), port


@pytest.mark.parametrize("which", ["listen", "ops"])
def test_port_in_use_fails_with_message(tmp_path: Path, which: str) -> None:
    result, port = _run_with_port_taken(tmp_path, which)
    assert result.returncode != 0, result.stdout
    assert f"vaultaire: cannot listen on 127.0.0.1:{port}" in result.stdout + result.stderr


@pytest.mark.parametrize("which", ["listen", "ops"])
def test_port_in_use_one_line_on_stderr(tmp_path: Path, which: str) -> None:
    result, port = _run_with_port_taken(tmp_path, which)
    assert_one_line_failure(result, str(port))


def test_bad_endpoint_string(tmp_path: Path) -> None:
    result = run_twistd(
        ["--data", str(tmp_path / "d"), "--listen", "bogus:thing", "--ops", f"tcp:{free_port()}:interface=127.0.0.1"],
        tmp_path,
        ENV_KEYS,
    )
    assert_one_line_failure(result, "endpoint")


# -- development keys


def test_dev_keys_printed_written_and_kept(tmp_path: Path) -> None:
    d = Daemon(tmp_path / "dev", access_key=None, secret_key=None).start()
    try:
        creds_path = d.data_dir / "dev-credentials.json"
        creds = json.loads(creds_path.read_text())
        assert creds_path.stat().st_mode & 0o077 == 0, "dev credentials must be private to the owner"
        log = d.log_text()
        assert f"export AWS_ACCESS_KEY_ID={creds['access_key']}" in log
        assert f"export AWS_SECRET_ACCESS_KEY={creds['secret_key']}" in log
        d.access_key, d.secret_key = creds["access_key"], creds["secret_key"]
        s3 = d.boto3_client()
        s3.create_bucket(Bucket="dev-bucket")
        assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["dev-bucket"]
        # A restart keeps the same keys and generates no new ones.
        d.restart()
        assert json.loads(creds_path.read_text()) == creds
        assert d.log_text().count("export AWS_ACCESS_KEY_ID=") == 1
        assert [b["Name"] for b in d.boto3_client().list_buckets()["Buckets"]] == ["dev-bucket"]
    finally:
        d.stop()


def test_env_keys_no_dev_file(daemon: Daemon) -> None:
    assert not (daemon.data_dir / "dev-credentials.json").exists()
    assert "export AWS_ACCESS_KEY_ID" not in daemon.log_text()
    daemon.boto3_client().list_buckets()


def test_only_one_env_key_refused(tmp_path: Path) -> None:
    result = run_twistd(
        ["--data", str(tmp_path / "d"), *endpoints()], tmp_path, {"VAULTAIRE_ACCESS_KEY": ACCESS_KEY}, timeout=30
    )
    assert "VAULTAIRE_SECRET_KEY" in result.stdout + result.stderr
    assert result.returncode != 0


# -- config file values and command-line overrides


def test_config_values_used_and_overridden(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        # The config names a port that is taken: only the command-line --listen override lets it start.
        held.bind(("127.0.0.1", 0))
        held.listen(1)
        held_port = held.getsockname()[1]
        config_data = tmp_path / "data-from-config"
        config = tmp_path / "vaultaire.toml"
        config.write_text(
            "[server]\n"
            f'data = "{config_data}"\n'
            f'listen = "tcp:{held_port}:interface=127.0.0.1"\n'
            'region = "eu-test-1"\n'
            'health_path = "/_cfg/health"\n'
            "[logging]\n"
            'level = "info"\n'
        )
        d = Daemon(tmp_path / "run", extra_args=["--config", str(config)], pass_data=False, region="eu-test-1")
        d.data_dir = config_data
        d.start()
        try:
            assert (config_data / "catalog.sqlite3").exists()
            assert not (tmp_path / "run" / "data").exists()
            s3 = d.boto3_client()
            s3.create_bucket(Bucket="cfg-bucket")
            assert s3.get_bucket_location(Bucket="cfg-bucket")["LocationConstraint"] == "eu-test-1"
            with urllib.request.urlopen(d.endpoint_url + "/_cfg/health", timeout=10) as r:
                assert r.status == 200 and json.loads(r.read())["status"] == "ok"
            # A client signing for another region is told which one this server is.
            with pytest.raises(ClientError) as info:
                Daemon.boto3_client(_with_region(d, "us-east-1")).list_buckets()
            # S3: 400 AuthorizationHeaderMalformed, the message naming the region expected.
            error = info.value.response["Error"]
            assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
            assert error["Code"] == "AuthorizationHeaderMalformed" and "expecting 'eu-test-1'" in error["Message"]
        finally:
            d.stop()

        # --region on the command line beats the file.
        d.extra_args += ["--region", "ap-test-2"]
        d.region = "ap-test-2"
        d.restart()
        try:
            s3 = d.boto3_client()
            assert s3.get_bucket_location(Bucket="cfg-bucket")["LocationConstraint"] == "ap-test-2"
        finally:
            d.stop()
        held.settimeout(0)
        with pytest.raises(BlockingIOError):
            held.accept()  # nobody ever connected to the config file's port


def _with_region(d: Daemon, region: str) -> Daemon:
    clone = Daemon.__new__(Daemon)
    clone.__dict__.update(d.__dict__)
    clone.region = region
    return clone


# -- TLS


@pytest.fixture
def tls_daemon(tmp_path: Path) -> Iterator[Daemon]:
    d, _ = https_daemon(tmp_path / "tls")
    d.start()
    yield d
    d.stop()


def test_ssl_endpoint(tls_daemon: Daemon) -> None:
    # Checksums only when required: over HTTPS newer boto3 otherwise sends aws-chunked bodies
    # (see test_ssl_put_with_default_checksums).
    s3 = tls_daemon.boto3_client(request_checksum_calculation="when_required")
    s3.create_bucket(Bucket="tls-bucket")
    s3.put_object(Bucket="tls-bucket", Key="secret", Body=b"over tls")
    assert s3.get_object(Bucket="tls-bucket", Key="secret")["Body"].read() == b"over tls"
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="tls-bucket")["Contents"]] == ["secret"]
    # An unverified client cannot be fooled into plain HTTP on the TLS port.
    with pytest.raises((OSError, http.client.HTTPException)):
        urllib.request.urlopen(f"http://127.0.0.1:{tls_daemon.port}/_vaultaire/health", timeout=5).read()
    # A client that does not trust the certificate refuses it.
    untrusting = Daemon.boto3_client(_with_verify(tls_daemon, True))
    with pytest.raises(Exception, match="(?i)certificate|SSL"):
        untrusting.list_buckets()


def test_ssl_put_with_default_checksums(tls_daemon: Daemon) -> None:
    # boto3 >= 1.36 with default checksums sends PutObject over HTTPS as aws-chunked
    # (STREAMING-UNSIGNED-PAYLOAD-TRAILER, Transfer-Encoding: chunked, no Content-Length).
    s3 = tls_daemon.boto3_client()
    s3.create_bucket(Bucket="tls-default")
    s3.put_object(Bucket="tls-default", Key="k", Body=b"default checksums")
    assert s3.get_object(Bucket="tls-default", Key="k")["Body"].read() == b"default checksums"


def _with_verify(d: Daemon, verify: object) -> Daemon:
    clone = Daemon.__new__(Daemon)
    clone.__dict__.update(d.__dict__)
    clone.verify = verify
    return clone
