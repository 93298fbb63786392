"""Confluent wire format: magic byte 0, the schema id as 4 big-endian bytes, then the Avro body."""

from __future__ import annotations

import struct

from streams.errors import DeserializationError

MAGIC = 0
_HEADER = struct.Struct(">BI")  # unsigned: a stray first byte reads as 0-255, as a hex dump shows it
HEADER_SIZE = _HEADER.size


def header(schema_id: int) -> bytes:
    """The 5 bytes in front of every body written with ``schema_id``."""
    return _HEADER.pack(MAGIC, schema_id)


def schema_id_of(data: bytes | None) -> int:
    """The schema id of a message in the wire format (its Avro body starts at ``HEADER_SIZE``);
    anything else is a poison pill."""
    if data is None:
        raise DeserializationError("message has no value (tombstone) where an Avro record was expected")
    if len(data) < HEADER_SIZE:
        raise DeserializationError(f"message of {len(data)} bytes is too short for the Avro wire format")
    magic, schema_id = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise DeserializationError(f"unknown magic byte {magic}: not Confluent Avro wire format")
    return int(schema_id)
