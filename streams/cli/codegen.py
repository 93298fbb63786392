"""`streams codegen`: pydantic models from .avsc files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from streams.cli._common import console
from streams.serde.codegen import render_module
from streams.serde.schema import load_dir


def codegen(
    source: Annotated[Path, typer.Argument(help="Directory of .avsc files (searched recursively).")],
    output: Annotated[Path, typer.Argument(help="Python module to write.", dir_okay=False)],
    check: Annotated[bool, typer.Option(help="Fail if OUTPUT differs instead of writing it.")] = False,
) -> None:
    """Generate one pydantic model per Avro record schema, with the schema embedded."""
    rendered = render_module(load_dir(source), source.as_posix())
    current = output.read_text(encoding="utf-8") if output.exists() else None
    if check:
        if current != rendered:
            console.print(
                f"[red]{output} is out of date with {source}[/]: run `streams codegen {source} {output}`"
            )
            raise typer.Exit(1)
        console.print(f"{output} matches {source}")
        return
    output.write_text(rendered, encoding="utf-8")
    console.print(f"wrote {output} from {source}")
