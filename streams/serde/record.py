"""Typed events: pydantic models bound to one Avro record schema each.

A :class:`Record` subclass carries its schema in ``__avro_schema__`` (generated from avro/*.avsc by
:mod:`streams.serde.codegen`, so model and schema cannot drift). Owns the conversion between models and
the plain values fastavro reads and writes; knows nothing of the wire format or the registry.
"""

from __future__ import annotations

from typing import Any, ClassVar, Self, get_args

from pydantic import BaseModel, ConfigDict

from streams.serde import schema as avro_schema


class Record(BaseModel):
    """Base of every typed event. Subclasses set ``__avro_schema__`` to their Avro record schema."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    __avro_schema__: ClassVar[avro_schema.SchemaJSON]
    _flat_fields: ClassVar[bool | None] = None  # set per class on first encode (see to_avro)

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
        fastavro accepts as their symbols (they compare equal to them).

        A record without nested records is its own field dict already (the model is frozen and takes
        no extra fields, and fastavro only reads it), so it skips ``model_dump``: about a fifth of the
        cost of encoding one, on every message sent."""
        if type(self)._flat():
            return self.__dict__
        return self.model_dump()

    @classmethod
    def _flat(cls) -> bool:
        flat: bool | None = cls.__dict__.get("_flat_fields")
        if flat is None:
            flat = not any(_holds_model(field.annotation) for field in cls.model_fields.values())
            cls._flat_fields = flat
        return flat

    @classmethod
    def from_avro(cls, value: dict[str, Any]) -> Self:
        return cls.model_validate(value)


def _holds_model(annotation: Any) -> bool:
    """Whether a field's type is or contains a pydantic model (in a union, list or map)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return True
    return any(_holds_model(arg) for arg in get_args(annotation))
