"""What every CLI command shares: consoles, settings, the registry, and loading `module:app` references."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from streams.app import App
from streams.config import Settings
from streams.errors import ConfigError
from streams.serde.registry import ConfluentRegistry

# Plain lines are never broken at the terminal's width (soft_wrap): output piped to another program or
# a file keeps one line per message; a terminal still wraps long lines visually.
console = Console(soft_wrap=True)
err_console = Console(stderr=True)


# Wider than any table: only used to measure a table's natural width.
_UNBOUNDED = 100_000


def print_table(table: Table) -> None:
    """Print ``table`` on stdout: fitted to the terminal, or at its full width when stdout is a pipe or
    a file, where there is no screen to fit and a cut cell (a topic name, a reason) would be lost."""
    if console.is_terminal:
        console.print(table, soft_wrap=False)
        return
    natural = Measurement.get(console, console.options.update_width(_UNBOUNDED), table).maximum
    Console(file=console.file, width=max(natural, console.width)).print(table)


def settings() -> Settings:
    return Settings()


def registry(config: Settings) -> ConfluentRegistry:
    return ConfluentRegistry(config.registry_config())


def load_app(reference: str) -> App:
    """Import ``package.module:attribute`` (attribute defaults to ``app``) and check it is an App."""
    module_name, _, attribute = reference.partition(":")
    attribute = attribute or "app"
    # Like `python -m`, let users name modules in the directory they run from.
    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise ConfigError(f"cannot import {module_name!r} from {reference!r}: {exc}") from exc
    found = getattr(module, attribute, None)
    if not isinstance(found, App):
        raise ConfigError(f"{reference!r} is not an App (found {type(found).__name__})")
    return found
