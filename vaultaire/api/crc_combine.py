"""Combining CRCs of consecutive pieces into the CRC of the whole (zlib's crc32_combine).

A FULL_OBJECT multipart checksum is the CRC of the whole artifact, which is
never read back whole: it is combined from the parts' CRCs and sizes. The
math works for every reflected CRC whose initial value and final XOR are all
ones, which is the case for CRC32, CRC32C and CRC64NVME.
"""

from __future__ import annotations

# Reflected polynomials and widths.
POLYNOMIALS = {
    "crc32": (0xEDB88320, 32),
    "crc32c": (0x82F63B78, 32),
    "crc64nvme": (0x9A6C9329AC4BC9B5, 64),
}


def _times(matrix: list[int], vector: int) -> int:
    total = 0
    row = 0
    while vector:
        if vector & 1:
            total ^= matrix[row]
        vector >>= 1
        row += 1
    return total


def _square(matrix: list[int]) -> list[int]:
    return [_times(matrix, column) for column in matrix]


def crc_combine(algorithm: str, crc1: int, crc2: int, length2: int) -> int:
    """The CRC of A+B from crc(A), crc(B) and len(B) in bytes."""
    if length2 == 0:
        return crc1
    poly, width = POLYNOMIALS[algorithm]
    odd = [poly] + [1 << n for n in range(width - 1)]  # the operator for one zero bit
    even = _square(odd)  # two zero bits
    odd = _square(even)  # four zero bits
    while True:
        even = _square(odd)  # applies 2^k zero bytes in turn
        if length2 & 1:
            crc1 = _times(even, crc1)
        length2 >>= 1
        if not length2:
            break
        odd = _square(even)
        if length2 & 1:
            crc1 = _times(odd, crc1)
        length2 >>= 1
        if not length2:
            break
    return crc1 ^ crc2
