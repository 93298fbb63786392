"""Generate pydantic models from Avro record schemas, so .avsc files stay the single source of truth.

The generated module embeds each schema in its model's ``__avro_schema__``; a test (and
``streams codegen --check``) regenerates it and fails on any difference, so model and schema cannot
drift. Supported: primitives, records (nested and referenced by name), enums, arrays, maps, unions
(``["null", T]`` becomes ``T | None``) and the timestamp/date logical types.
"""

from __future__ import annotations

import keyword
import pprint
from dataclasses import dataclass, field
from typing import Any

from streams.errors import SchemaError
from streams.serde.schema import SchemaJSON

_PRIMITIVES = {
    "null": "None",
    "boolean": "bool",
    "int": "int",
    "long": "int",
    "float": "float",
    "double": "float",
    "bytes": "bytes",
    "string": "str",
}
_LOGICAL = {
    "timestamp-millis": "datetime",
    "timestamp-micros": "datetime",
    "local-timestamp-millis": "datetime",
    "local-timestamp-micros": "datetime",
    "date": "date",
    "uuid": "UUID",
}


@dataclass
class _Module:
    """What has been generated so far: class sources in dependency order and names already defined."""

    classes: list[str] = field(default_factory=list)
    defined: dict[str, str] = field(default_factory=dict)  # Avro full name -> Python class name
    imports: set[str] = field(default_factory=set)
    enums: set[str] = field(default_factory=set)  # Python names of generated enums


def _short(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def _full(name: str, namespace: str | None) -> str:
    return name if "." in name or not namespace else f"{namespace}.{name}"


def _annotation(avro_type: Any, namespace: str | None, module: _Module) -> str:
    if isinstance(avro_type, str):
        if avro_type in _PRIMITIVES:
            return _PRIMITIVES[avro_type]
        full = _full(avro_type, namespace)
        if full in module.defined:
            return module.defined[full]
        if avro_type in module.defined:
            return module.defined[avro_type]
        raise SchemaError(f"unknown Avro type {avro_type!r}")
    if isinstance(avro_type, list):
        branches = [_annotation(t, namespace, module) for t in avro_type]
        # Optional types read best as `T | None`, whatever the branch order in the schema.
        branches.sort(key=lambda b: b == "None")
        return " | ".join(branches)
    if not isinstance(avro_type, dict):
        raise SchemaError(f"unsupported Avro type {avro_type!r}")
    logical = avro_type.get("logicalType")
    if logical in _LOGICAL:
        python = _LOGICAL[logical]
        module.imports.add(python)
        return python
    kind = avro_type.get("type")
    if kind == "record":
        return _record(avro_type, namespace, module)
    if kind == "enum":
        return _enum(avro_type, namespace, module)
    if kind == "array":
        return f"list[{_annotation(avro_type['items'], namespace, module)}]"
    if kind == "map":
        return f"dict[str, {_annotation(avro_type['values'], namespace, module)}]"
    if kind in _PRIMITIVES:
        return _PRIMITIVES[kind]
    raise SchemaError(f"unsupported Avro type {avro_type!r} (fixed and decimal are not supported yet)")


def _enum(schema: SchemaJSON, namespace: str | None, module: _Module) -> str:
    full = _full(schema["name"], schema.get("namespace", namespace))
    if full in module.defined:
        raise SchemaError(f"Avro name {full} is defined twice")
    name = _short(schema["name"])
    module.imports.add("StrEnum")
    lines = [f"class {name}(StrEnum):"]
    if schema.get("doc"):
        lines.append(f"    {_docstring(schema['doc'])}")
        lines.append("")
    lines += [f"    {symbol} = {symbol!r}" for symbol in schema["symbols"]]
    module.classes.append("\n".join(lines))
    module.defined[full] = name
    module.enums.add(name)
    return name


def _record(schema: SchemaJSON, namespace: str | None, module: _Module, *, top: bool = False) -> str:
    own_namespace = schema.get("namespace", namespace)
    full = _full(schema["name"], own_namespace)
    if full in module.defined:
        raise SchemaError(f"Avro name {full} is defined twice")
    name = _short(schema["name"])
    # Nested named types are generated first so the class body can refer to them.
    fields = [(f, _annotation(f["type"], own_namespace, module)) for f in schema["fields"]]
    lines = [f"class {name}(Record):"]
    if schema.get("doc"):
        lines.append(f"    {_docstring(schema['doc'])}")
        lines.append("")
    if top:
        literal = pprint.pformat(schema, width=96, sort_dicts=False).replace("\n", "\n    ")
        lines.append(f"    __avro_schema__: ClassVar[dict[str, Any]] = {literal}")
        lines.append("")
    for avro_field, annotation in fields:
        lines.append(f"    {_field(avro_field, annotation, module)}")
    module.classes.append("\n".join(lines))
    module.defined[full] = name
    return name


def _field(avro_field: SchemaJSON, annotation: str, module: _Module) -> str:
    name = avro_field["name"]
    if keyword.iskeyword(name) or not name.isidentifier():
        raise SchemaError(f"field name {name!r} is not a Python identifier")
    args: list[str] = []
    if "default" in avro_field:
        default = avro_field["default"]
        if default == {}:
            args.append("default_factory=dict")
        elif default == []:
            args.append("default_factory=list")
        elif isinstance(default, str) and annotation in module.enums:
            args.append(f"default={annotation}.{default}")
        else:
            args.append(f"default={default!r}")
    if avro_field.get("doc"):
        args.append(f"description={avro_field['doc']!r}")
    if not args:
        return f"{name}: {annotation}"
    line = f"{name}: {annotation} = Field({', '.join(args)})"
    if len(line) <= 96:
        return line
    return f"{name}: {annotation} = Field(\n" + "".join(f"        {a},\n" for a in args) + "    )"


def _docstring(text: str) -> str:
    return '"""' + text.replace('"""', "'''") + '"""'


def render_module(schemas: list[SchemaJSON], source: str) -> str:
    """Python source of a module with one model per top-level schema (and its nested types)."""
    module = _Module()
    for schema in schemas:
        _record(schema, None, module, top=True)
    header = [
        f'"""Typed events generated by `streams codegen` from {source}.',
        "",
        "Do not edit: change the .avsc files and run `make codegen`; a test fails when they drift.",
        '"""',
        "",
        "from __future__ import annotations",
        "",
    ]
    stdlib = []
    if "datetime" in module.imports or "date" in module.imports:
        stdlib.append("from datetime " + "import " + ", ".join(sorted(module.imports & {"date", "datetime"})))
    if "StrEnum" in module.imports:
        stdlib.append("from enum import StrEnum")
    stdlib.append("from typing import Any, ClassVar")
    if "UUID" in module.imports:
        stdlib.append("from uuid import UUID")
    header += [*stdlib, "", "from pydantic import Field", "", "from streams.serde.record import Record", ""]
    names = sorted(module.defined.values())
    header += ["__all__ = [", *(f"    {n!r}," for n in names), "]"]
    return "\n".join(header) + "\n\n\n" + "\n\n\n".join(module.classes) + "\n"
