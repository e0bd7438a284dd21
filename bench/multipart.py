#!/usr/bin/env python3
"""Multipart benchmarks against a real `twistd vaultaire` (run by hand, never from the tests).

(a) complete-10k: a daemon with ``[multipart] min_part_size = 1`` takes 10,000 tiny parts
    (uploaded by 32 threads), then CompleteMultipartUpload is timed alone (one presigned
    POST with a prebuilt body over an open connection; target < 1 s), and the whole
    artifact is read back and compared.
(b) throughput: a 1 GiB file uploaded multipart (boto3 TransferConfig, 64 MiB parts,
    4 concurrent) vs one single PUT of the same file (curl -T to a presigned URL).
    MB/s are 10^6 bytes per second.

    /work/venv/bin/python bench/multipart.py            # both
    /work/venv/bin/python bench/multipart.py --benches complete-10k --parts 10000

The daemon is started with tests/daemon.py's ``Daemon`` (free 127.0.0.1 ports, fresh data
directory under --scratch, default a temp dir removed at the end) and stopped by PID.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import itertools
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from daemon import Daemon  # noqa: E402  (tests/daemon.py: the shared real-daemon helper)

MIB = 2**20


def config(path: Path, **multipart: int) -> Path:
    path.write_text("[multipart]\n" + "".join(f"{k} = {v}\n" for k, v in multipart.items()))
    return path


def presigned_conn(url: str) -> tuple[http.client.HTTPConnection, str]:
    parts = urllib.parse.urlsplit(url)
    return http.client.HTTPConnection(parts.hostname, parts.port, timeout=300), f"{parts.path}?{parts.query}"


def bench_complete(scratch: Path, n_parts: int, threads: int) -> dict[str, Any]:
    daemon = Daemon(scratch / "complete", extra_args=["--config", str(config(scratch / "c.toml", min_part_size=1))])
    daemon.start()
    try:
        s3 = daemon.boto3_client(max_pool_connections=threads)
        s3.create_bucket(Bucket="bench")
        key = "ten-thousand"
        upload = s3.create_multipart_upload(Bucket="bench", Key=key)["UploadId"]
        bodies = [f"part {n:05d} ".encode() + os.urandom(100) for n in range(1, n_parts + 1)]

        def put(n: int) -> str:
            return s3.upload_part(Bucket="bench", Key=key, UploadId=upload, PartNumber=n, Body=bodies[n - 1])["ETag"]

        t0 = time.monotonic()
        with ThreadPoolExecutor(threads) as pool:
            etags = list(pool.map(put, range(1, n_parts + 1)))
        upload_s = time.monotonic() - t0

        xml = "".join(f"<Part><PartNumber>{n}</PartNumber><ETag>{e}</ETag></Part>" for n, e in enumerate(etags, 1))
        body = f"<CompleteMultipartUpload>{xml}</CompleteMultipartUpload>".encode()
        url = s3.generate_presigned_url(
            "complete_multipart_upload", Params={"Bucket": "bench", "Key": key, "UploadId": upload}, HttpMethod="POST"
        )
        conn, target = presigned_conn(url)
        conn.connect()  # the connection is open before the clock starts
        t0 = time.monotonic()
        conn.request("POST", target, body=body)
        response = conn.getresponse()
        answer = response.read()
        complete_s = time.monotonic() - t0
        conn.close()
        if response.status != 200 or b"<CompleteMultipartUploadResult" not in answer:
            raise SystemExit(f"Complete failed: {response.status} {answer[:500]!r}")

        expected = hashlib.md5(b"".join(bodies)).hexdigest()
        expected_etag = hashlib.md5(b"".join(hashlib.md5(b).digest() for b in bodies)).hexdigest() + f"-{n_parts}"
        t0 = time.monotonic()
        got = s3.get_object(Bucket="bench", Key=key)
        h = hashlib.md5()
        for chunk in got["Body"].iter_chunks(MIB):
            h.update(chunk)
        get_s = time.monotonic() - t0
        ok = h.hexdigest() == expected and got["ETag"].strip('"') == expected_etag
        if not ok:
            raise SystemExit(f"GET after Complete differs: md5 {h.hexdigest()} != {expected} or ETag {got['ETag']}")
        return {
            "parts": n_parts,
            "bytes": sum(map(len, bodies)),
            "upload_parts_s": round(upload_s, 2),
            "parts_per_s": round(n_parts / upload_s),
            "complete_s": round(complete_s, 3),
            "complete_body_bytes": len(body),
            "get_whole_s": round(get_s, 3),
            "verified": ok,
        }
    finally:
        daemon.stop(timeout=60)


def make_file(path: Path, size: int) -> str:
    block = bytearray(os.urandom(MIB))
    h = hashlib.md5()
    with open(path, "wb") as f:
        for counter in itertools.count():
            done = counter * MIB
            if done >= size:
                break
            block[:16] = counter.to_bytes(16, "big")
            chunk = memoryview(block)[: min(MIB, size - done)]
            f.write(chunk)
            h.update(chunk)
    return h.hexdigest()


def bench_throughput(scratch: Path, size_mib: int, part_mib: int, concurrency: int) -> dict[str, Any]:
    from boto3.s3.transfer import TransferConfig

    source = scratch / "source.bin"
    size = size_mib * MIB
    md5 = make_file(source, size)
    daemon = Daemon(scratch / "throughput")
    daemon.start()
    try:
        s3 = daemon.boto3_client(max_pool_connections=concurrency * 2)
        s3.create_bucket(Bucket="bench")
        subprocess.run(["sync"], check=True)

        cfg = TransferConfig(
            multipart_threshold=part_mib * MIB, multipart_chunksize=part_mib * MIB, max_concurrency=concurrency
        )
        t0 = time.monotonic()
        s3.upload_file(str(source), "bench", "multipart", Config=cfg)
        multipart_s = time.monotonic() - t0
        head = s3.head_object(Bucket="bench", Key="multipart")
        parts = head["ETag"].strip('"').rpartition("-")[2]
        if head["ContentLength"] != size or not parts.isdigit():
            raise SystemExit(f"multipart upload looks wrong: {head}")
        subprocess.run(["sync"], check=True)

        url = s3.generate_presigned_url("put_object", Params={"Bucket": "bench", "Key": "single"}, ExpiresIn=3600)
        t0 = time.monotonic()
        curl = subprocess.run(
            ["curl", "-sS", "-f", "-o", "/dev/null", "-w", "%{http_code}", "-T", str(source), url],
            capture_output=True,
            text=True,
        )
        single_s = time.monotonic() - t0
        if curl.returncode != 0 or curl.stdout != "200":
            raise SystemExit(f"curl PUT failed: {curl.returncode} {curl.stdout} {curl.stderr}")
        head = s3.head_object(Bucket="bench", Key="single")
        if head["ContentLength"] != size or head["ETag"].strip('"') != md5:
            raise SystemExit(f"single PUT looks wrong: {head}")
        return {
            "size_MiB": size_mib,
            "multipart_parts": int(parts),
            "multipart_part_MiB": part_mib,
            "multipart_concurrency": concurrency,
            "multipart_s": round(multipart_s, 2),
            "multipart_MB_per_s": round(size / multipart_s / 1e6),
            "single_put_s": round(single_s, 2),
            "single_put_MB_per_s": round(size / single_s / 1e6),
        }
    finally:
        daemon.stop(timeout=60)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--benches", default="complete-10k,throughput")
    ap.add_argument("--parts", type=int, default=10_000)
    ap.add_argument("--threads", type=int, default=32)
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--part-mib", type=int, default=64)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--scratch", type=Path, default=None)
    ap.add_argument("--keep-scratch", action="store_true")
    args = ap.parse_args()
    benches = args.benches.split(",")
    unknown = set(benches) - {"complete-10k", "throughput"}
    if unknown:
        ap.error(f"unknown benches: {', '.join(sorted(unknown))}")

    scratch = args.scratch or Path(tempfile.mkdtemp(prefix="vmultipart-"))
    scratch.mkdir(parents=True, exist_ok=True)
    try:
        if "complete-10k" in benches:
            r = bench_complete(scratch, args.parts, args.threads)
            print(f"complete-10k: {r}", flush=True)
            verdict = "OK" if r["complete_s"] < 1.0 else "OVER TARGET"
            print(
                f"  CompleteMultipartUpload of {r['parts']} parts: {r['complete_s']:.3f} s "
                f"(target < 1 s: {verdict}); parts uploaded at {r['parts_per_s']}/s",
                flush=True,
            )
        if "throughput" in benches:
            r = bench_throughput(scratch, args.size_mib, args.part_mib, args.concurrency)
            print(f"throughput: {r}", flush=True)
            print(
                f"  {r['size_MiB']} MiB: multipart {r['multipart_MB_per_s']} MB/s "
                f"({r['multipart_parts']} x {r['multipart_part_MiB']} MiB, {r['multipart_concurrency']} at once) "
                f"vs single PUT {r['single_put_MB_per_s']} MB/s",
                flush=True,
            )
    finally:
        if not args.keep_scratch and args.scratch is None:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
