"""Typed events: pydantic models bound to one Avro record schema each.

A :class:`Record` subclass carries its schema in ``__avro_schema__`` (generated from avro/*.avsc by
:mod:`streams.serde.codegen`, so model and schema cannot drift). Owns the conversion between models and
the plain values fastavro reads and writes; knows nothing of the wire format or the registry.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, time
from decimal import Decimal
from types import UnionType
from typing import Any, ClassVar, Self, Union, get_args, get_origin
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from streams.serde import schema as avro_schema


class Record(BaseModel):
    """Base of every typed event. Subclasses set ``__avro_schema__`` to their Avro record schema."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    __avro_schema__: ClassVar[avro_schema.SchemaJSON]
    _flat_fields: ClassVar[bool | None] = None  # set per class on first encode (see to_avro)
    _plain_fields: ClassVar[bool | None] = None  # set per class on first decode (see from_avro)

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

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """As pydantic's (a shallow copy, ``update`` applied unvalidated), without its generic
        bookkeeping for private attributes and extra fields, which records do not have: a handler
        that relays a record with one field changed spent more on the copy than on decoding it."""
        cls = type(self)
        if deep or cls.__private_attributes__ or cls.model_config.get("extra") == "allow":
            return super().model_copy(update=update, deep=deep)
        copied = cls.__new__(cls)
        fields_set = set(self.__pydantic_fields_set__)
        if update:
            _set_attribute(copied, "__dict__", {**self.__dict__, **update})
            fields_set.update(update)
        else:
            _set_attribute(copied, "__dict__", dict(self.__dict__))
        _set_attribute(copied, "__pydantic_fields_set__", fields_set)
        _set_attribute(copied, "__pydantic_extra__", None)
        _set_attribute(copied, "__pydantic_private__", None)
        return copied

    @classmethod
    def _flat(cls) -> bool:
        flat: bool | None = cls.__dict__.get("_flat_fields")
        if flat is None:
            flat = not any(_holds_model(field.annotation) for field in cls.model_fields.values())
            cls._flat_fields = flat
        return flat

    @classmethod
    def from_avro(cls, value: dict[str, Any]) -> Self:
        """The record of one value fastavro decoded with this record's schema.

        When validating could change nothing (see :func:`_takes_decoded_as_is`) the decoded dict becomes
        the record as it is: fastavro has already checked every value against the schema, and a
        second pass in pydantic cost as much as the Avro decoding itself."""
        plain: bool | None = cls.__dict__.get("_plain_fields")
        if plain is None:
            plain = cls._plain_fields = _takes_decoded_as_is(cls)
        if not plain:
            return cls.model_validate(value)
        record = cls.__new__(cls)
        _set_attribute(record, "__dict__", value)
        _set_attribute(record, "__pydantic_fields_set__", set(value))
        _set_attribute(record, "__pydantic_extra__", None)
        _set_attribute(record, "__pydantic_private__", None)
        return record


_set_attribute = object.__setattr__

# What fastavro gives for Avro primitives and logical types, which pydantic keeps unchanged.
_AS_DECODED: frozenset[Any] = frozenset(
    {str, int, float, bool, bytes, type(None), datetime, date, time, UUID, Decimal, Any}
)


def _takes_decoded_as_is(cls: type[BaseModel]) -> bool:
    """Whether validating what fastavro decoded with ``cls``'s schema would return the same values: no
    validators, no constraints, aliases or private attributes, and fields whose types fastavro already
    produces (no nested models or enums, which pydantic would convert)."""
    decorators = cls.__pydantic_decorators__
    if (
        decorators.validators
        or decorators.field_validators
        or decorators.root_validators
        or decorators.model_validators
        or cls.__private_attributes__
        or cls.model_post_init is not BaseModel.model_post_init
    ):
        return False
    return all(
        not field.metadata and field.alias in (None, name) and _as_decoded(field.annotation)
        for name, field in cls.model_fields.items()
    )


def _as_decoded(annotation: Any) -> bool:
    if annotation in _AS_DECODED:
        return True
    origin = get_origin(annotation)
    if origin in (dict, list, Union, UnionType):
        return all(_as_decoded(arg) for arg in get_args(annotation))
    return False


def _holds_model(annotation: Any) -> bool:
    """Whether a field's type is or contains a pydantic model (in a union, list or map)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return True
    return any(_holds_model(arg) for arg in get_args(annotation))
