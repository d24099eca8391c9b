"""CRC32C (Castagnoli), as the protocol checksums every frame with it.

Reflected polynomial 0x82F63B78, initial value and final XOR 0xFFFFFFFF, so that
``crc32c(b"123456789") == 0xE3069283``. The pure-Python table version is always there; when the
``crc32c`` package (a C implementation) is importable, :func:`crc32c` uses it instead.
"""

from __future__ import annotations

from typing import Callable, Optional

_POLY = 0x82F63B78


def _make_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ _POLY if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_TABLE = _make_table()


def crc32c_pure(data: bytes, crc: int = 0) -> int:
    """CRC32C of ``data``, continuing from the CRC ``crc`` of the bytes before it."""
    crc ^= 0xFFFFFFFF
    table = _TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _accelerated() -> Optional[Callable[[bytes, int], int]]:
    try:
        import crc32c as fast  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    function = getattr(fast, "crc32c", None)
    if function is None:
        return None

    def accelerated(data: bytes, crc: int = 0) -> int:
        return int(function(data, crc))

    return accelerated


ACCELERATED: Optional[Callable[[bytes, int], int]] = _accelerated()


def crc32c(data: bytes, crc: int = 0) -> int:
    """CRC32C of ``data`` (continuing from ``crc``), with the fastest implementation present."""
    if ACCELERATED is not None:
        return ACCELERATED(data, crc)
    return crc32c_pure(data, crc)
