"""Typed events: pydantic models bound to one Avro record schema each.

A :class:`Record` subclass carries its schema in ``__avro_schema__`` (generated from avro/*.avsc by
:mod:`streams.serde.codegen`, so model and schema cannot drift). Owns the conversion between models and
the plain values fastavro reads and writes; knows nothing of the wire format or the registry.
"""

from __future__ import annotations

from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict

from streams.serde import schema as avro_schema


class Record(BaseModel):
    """Base of every typed event. Subclasses set ``__avro_schema__`` to their Avro record schema."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    __avro_schema__: ClassVar[avro_schema.SchemaJSON]

    @classmethod
    def avro_schema(cls) -> avro_schema.SchemaJSON:
        schema: avro_schema.SchemaJSON | None = getattr(cls, "__avro_schema__", None)
        if schema is None:
            raise TypeError(f"{cls.__name__} has no __avro_schema__; generate it with `streams codegen`")
        return schema

    @classmethod
    def avro_name(cls) -> str:
        return avro_schema.full_name(cls.avro_schema())

    def to_avro(self) -> dict[str, Any]:
        """Values for fastavro: nested records become dicts; enums stay ``StrEnum`` members, which
        fastavro accepts as their symbols (they compare equal to them)."""
        return self.model_dump()

    @classmethod
    def from_avro(cls, value: dict[str, Any]) -> Self:
        return cls.model_validate(value)
