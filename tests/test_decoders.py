"""Every state of every request-body decoder consumes input or fails (issue 21, item 1).

Arbitrary bytes (near-valid framing, mutated) in arbitrary splits go through
the aws-chunked decoder (signed and unsigned), the multipart/form-data reader
of POST Object, and Twisted's own HTTP chunked decoder. Each must end, within
a deadline and a memory bound, with its data or with an S3 client error:
never a hang, never another exception (which the daemon would answer 500).
"""

from __future__ import annotations

import hashlib
import socket
from datetime import UTC, datetime

import pytest
import pytest_twisted
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThread
from twisted.web.http import _ChunkedTransferDecoder, _DataLoss, _MalformedChunkedDataError

from tests.decoding import DecoderHung, Pieces, deadline, drain, peak_memory, result_of, split
from tests.s3helpers import ACCESS, REGION, SECRET
from vaultaire import sigv4
from vaultaire.api.chunked import AwsChunkedSource, ChunkSigning
from vaultaire.api.errors import S3Error
from vaultaire.api.form import FormReader
from vaultaire.errors import IncompleteBody

AMZ_DATE = "20260101T000000Z"
SCOPE = sigv4.credential_scope(AMZ_DATE[:8], REGION, "s3")
KEY = sigv4.signing_key(SECRET, AMZ_DATE[:8], REGION, "s3")
SEED = "0" * 64
SIGNING = ChunkSigning(KEY, AMZ_DATE, SCOPE, SEED)

# Tokens that steer random bytes into the decoders' interesting states.
TOKENS = [
    b"\r\n",
    b"\r\n\r\n",
    b"-1",
    b"+a",
    b" 1",
    b"1_0",
    b"0",
    b"ffffffffffffffffff",
    b"10",
    b";chunk-signature=",
    b"x-amz-checksum-crc32:",
    b"x-amz-trailer-signature:",
    b"--B",
    b"\r\n--B",
    b"\r\n--B--",
    b'Content-Disposition: form-data; name="file"; filename="f"',
    b'Content-Disposition: form-data; name="key"',
]

noise = st.lists(st.one_of(st.binary(max_size=24), st.sampled_from(TOKENS)), max_size=30).map(b"".join)
cuts = st.lists(st.integers(min_value=0, max_value=10**6), max_size=40)

BOUND_SECONDS = 10.0


def memory_limit(data: bytes) -> int:
    """Decoders hold at most a line, a batch of output and their input's pieces: linear, small."""
    return 8 * len(data) + 2 * 2**20


def aws_chunked(data: bytes, sizes: list[int], signed: bool, trailer: bytes | None) -> bytes:
    """A well-formed aws-chunked body (signatures valid when ``signed``), to be mutated."""
    out, previous, at = b"", SEED, 0
    pieces = []
    for size in sizes:
        pieces.append(data[at : at + size])
        at += size
    pieces = [p for p in pieces if p] + ([data[at:]] if data[at:] else []) + [b""]
    for piece in pieces:
        ext = b""
        if signed:
            previous = sigv4.chunk_signature(KEY, AMZ_DATE, SCOPE, previous, hashlib.sha256(piece).hexdigest())
            ext = b";chunk-signature=" + previous.encode()
        out += f"{len(piece):x}".encode() + ext + b"\r\n" + piece + (b"\r\n" if piece else b"")
    if trailer is not None:
        out += trailer + b"\r\n"
        if signed:
            signature = sigv4.trailer_signature(KEY, AMZ_DATE, SCOPE, previous, trailer + b"\n")
            out += b"x-amz-trailer-signature:" + signature.encode() + b"\r\n"
    return out + b"\r\n"


@st.composite
def mutated(draw: st.DrawFn, valid: bytes) -> bytes:
    """``valid`` with a few spans replaced by noise, or pure noise."""
    if draw(st.booleans()) and draw(st.booleans()):
        return draw(noise)
    body = valid
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(body)))
        cut = draw(st.integers(0, 8))
        body = body[:at] + draw(noise) + body[at + cut :]
    return body


@st.composite
def aws_chunked_case(draw: st.DrawFn) -> tuple[bytes, bool, int | None]:
    data = draw(st.binary(max_size=3000))
    sizes = draw(st.lists(st.integers(1, 1500), max_size=5))
    signed = draw(st.booleans())
    trailer = draw(st.sampled_from([None, b"x-amz-checksum-crc32:AAAAAA=="]))
    declared = draw(st.sampled_from([len(data), None, 0, len(data) + 1]))
    body = draw(mutated(aws_chunked(data, sizes, signed, trailer)))
    return body, signed, declared


def decode_aws_chunked(pieces: list[bytes], signed: bool, declared: int | None) -> bytes | Exception:
    source = Pieces(pieces)
    decoder = AwsChunkedSource(source, SIGNING if signed else None, declared)
    try:
        return drain(decoder.read, max_reads=sum(map(len, pieces)) + 2)
    except (S3Error, IncompleteBody) as e:  # a client error, answered 4xx
        return e


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(case=aws_chunked_case(), cuts=cuts)
def test_aws_chunked_decoder_always_ends(case, cuts):
    body, signed, declared = case
    with deadline(BOUND_SECONDS), peak_memory(memory_limit(body)):
        outcome = decode_aws_chunked(split(body, cuts), signed, declared)
    if isinstance(outcome, S3Error):
        assert 400 <= outcome.status < 500


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.binary(max_size=3000), sizes=st.lists(st.integers(1, 1500), max_size=5), signed=st.booleans(), cuts=cuts)
def test_aws_chunked_decoder_reads_valid_bodies_in_any_split(data, sizes, signed, cuts):
    body = aws_chunked(data, sizes, signed, None)
    with deadline(BOUND_SECONDS):
        assert decode_aws_chunked(split(body, cuts), signed, len(data)) == data


@pytest.mark.parametrize("signed", [False, True], ids=["unsigned-trailer", "signed"])
@pytest.mark.parametrize("size", [b"-1", b"-0", b"+1", b" 1", b"1_0", b"0x10", b"1" * 17, b"", b"fffffffff"])
def test_chunk_size_must_be_plain_hex_within_the_declared_length(signed, size):
    ext = b";chunk-signature=" + b"0" * 64 if signed else b""
    body = size + ext + b"\r\nhello\r\n" + b"0" + ext + b"\r\n\r\n"
    with deadline(BOUND_SECONDS):
        outcome = decode_aws_chunked([body], signed, 5)
    assert isinstance(outcome, S3Error) and (outcome.status, outcome.code) == (400, "IncompleteBody"), outcome


def test_trailer_lines_are_bounded():
    body = b"0\r\n" + b"x-amz-meta-a:b\r\n" * 100_000 + b"\r\n"
    with deadline(BOUND_SECONDS), peak_memory(8 * len(body)):
        outcome = decode_aws_chunked(split(body, range(0, len(body), 1000)), False, 0)
    assert isinstance(outcome, S3Error) and outcome.status == 400


# -- multipart/form-data (POST Object)


def form(fields: dict[str, bytes], file: bytes) -> bytes:
    out = b""
    for name, value in fields.items():
        out += b'--B\r\nContent-Disposition: form-data; name="' + name.encode() + b'"\r\n\r\n' + value + b"\r\n"
    out += b'--B\r\nContent-Disposition: form-data; name="file"; filename="f"\r\nContent-Type: text/plain\r\n\r\n'
    return out + file + b"\r\n--B--\r\n"


@st.composite
def form_case(draw: st.DrawFn) -> bytes:
    fields = draw(st.dictionaries(st.sampled_from(["key", "policy", "x-amz-meta-a", "acl"]), st.binary(max_size=50)))
    return draw(mutated(form(fields, draw(st.binary(max_size=3000)))))


def read_form(pieces: list[bytes]) -> bytes | Exception:
    reader = FormReader(Pieces(pieces), b"B")
    try:
        result_of(Deferred.fromCoroutine(reader.read_fields()))
        return drain(reader.read, max_reads=sum(map(len, pieces)) + 2)
    except (S3Error, IncompleteBody) as e:
        return e


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(body=form_case(), cuts=cuts)
def test_form_reader_always_ends(body, cuts):
    with deadline(BOUND_SECONDS), peak_memory(memory_limit(body)):
        outcome = read_form(split(body, cuts))
    if isinstance(outcome, S3Error):
        assert 400 <= outcome.status < 500


@settings(max_examples=100, deadline=None)
@given(file=st.binary(max_size=3000), cuts=cuts)
def test_form_reader_reads_the_file_in_any_split(file, cuts):
    with deadline(BOUND_SECONDS):
        assert read_form(split(form({"key": b"k"}, file), cuts)) == file


def test_form_reader_bounds_the_fields_it_holds():
    body = b"--B\r\n" + b"x" * (4 * 2**20)
    with deadline(BOUND_SECONDS), peak_memory(6 * 2**20):
        outcome = read_form(split(body, range(0, len(body), 65536)))
    assert isinstance(outcome, S3Error) and outcome.status == 400


# -- Twisted's HTTP/1.1 chunked decoder (plain Transfer-Encoding: chunked)


def http_chunked(data: bytes, sizes: list[int]) -> bytes:
    out, at = b"", 0
    for size in sizes:
        piece = data[at : at + size]
        at += size
        if piece:
            out += f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    if data[at:]:
        out += f"{len(data) - at:x}\r\n".encode() + data[at:] + b"\r\n"
    return out + b"0\r\n\r\n"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(
    data=st.binary(max_size=3000),
    sizes=st.lists(st.integers(1, 1500), max_size=5),
    mutate=st.data(),
    cuts=cuts,
)
def test_twisted_chunked_decoder_always_ends(data, sizes, mutate, cuts):
    body = mutate.draw(mutated(http_chunked(data, sizes)))
    received: list[bytes] = []
    finished: list[bytes] = []
    decoder = _ChunkedTransferDecoder(received.append, finished.append)
    with deadline(BOUND_SECONDS), peak_memory(memory_limit(body)):
        try:
            for piece in split(body, cuts):
                decoder.dataReceived(piece)
                if finished:
                    break
            else:
                decoder.noMoreData()
        except (_MalformedChunkedDataError, _DataLoss):
            return  # the channel answers 400 Bad Request and closes
    assert finished
    if body == http_chunked(data, sizes):
        assert b"".join(received) == data


# -- the decoder inside the daemon: one bad request must not take the worker


def until_closed(port: int, request: bytes) -> bytes:
    """Send ``request`` on a fresh socket; everything the server answers until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=8) as sock:
        sock.sendall(request)
        out = b""
        try:
            while chunk := sock.recv(65536):
                out += chunk
        except TimeoutError:
            return out + b"\n(no close)"
        return out


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "mode", ["STREAMING-AWS4-HMAC-SHA256-PAYLOAD", "STREAMING-UNSIGNED-PAYLOAD-TRAILER"], ids=["signed", "unsigned"]
)
@pytest_twisted.ensureDeferred
async def test_negative_chunk_size_is_refused_and_the_connection_closed(server, mode):
    url = f"{server.url}/bucket/k"
    headers = {"content-encoding": "aws-chunked", "x-amz-decoded-content-length": "5"}
    headers.update(sigv4.sign_headers("PUT", url, headers, mode, ACCESS, SECRET, REGION, now=datetime.now(UTC)))
    ext = b";chunk-signature=" + b"0" * 64 if mode.startswith("STREAMING-AWS4") else b""
    # More body follows the bad size, so the answer comes while the body is still pending.
    body = b"-1" + ext + b"\r\nhello\r\n" + b"x" * 100_000
    head = f"PUT /bucket/k HTTP/1.1\r\nHost: 127.0.0.1:{server.port.getHost().port}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items() if k != "host")
    head += f"Content-Length: {len(body)}\r\n\r\n"
    answer = await deferToThread(until_closed, server.port.getHost().port, head.encode() + body)
    status, _, rest = answer.partition(b"\r\n")
    assert status.startswith(b"HTTP/1.1 400"), answer[:500]
    assert b"<Code>IncompleteBody</Code>" in rest
    assert b"connection: close" in rest.lower()
    # The worker still serves, and nothing was stored.
    assert (await server.request("GET", "/_vaultaire/health", sign=False)).code == 200
    r = await server.request("HEAD", "/bucket/k")
    assert r.code == 404
    assert server.blob_files() == []


def test_hang_detector_detects_a_hang():
    """The deadline this file relies on does fire on a busy loop (else every 'ends' above proves nothing)."""
    with pytest.raises(DecoderHung), deadline(0.2):
        while True:
            pass
