"""What `automl-tl predict` was pointed at, turned into the examples to predict.

INPUT arguments are files, folders, manifests (the plugin decides: `ModalityPlugin.read_inputs`)
or ``-`` for standard input: one example a line for plugins whose examples are texts, one path a
line for the others. Every line is kept, blank ones too, so output rows stay aligned with input
lines. A path that does not exist, or a manifest that cannot be read, becomes one failed row; the
rest go on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from automl_tl.config import plugin_options
from automl_tl.contract import Input, ModalityPlugin
from automl_tl.errors import UserError
from automl_tl.registry import expect

STDIN = "-"


@dataclass(frozen=True)
class Unreadable:
    """An input that yields no example: the row says why."""

    name: str
    error: str


Entry = Input | Unreadable


def expand(arguments: Sequence[str], plugin: ModalityPlugin, options: Mapping[str, Any], stdin: TextIO) -> list[Entry]:
    """The examples ``arguments`` hold, in order (``-`` reads ``stdin`` once)."""
    entries: list[Entry] = []
    for argument in arguments:
        if argument != STDIN:
            entries += _from_path(Path(argument), plugin, options)
            continue
        for line in stdin.read().splitlines():
            if plugin.stdin_examples:
                entries.append(Input(line, line))
            else:
                entries += _from_path(Path(line.strip()), plugin, options)
    return entries


def _from_path(path: Path, plugin: ModalityPlugin, options: Mapping[str, Any]) -> list[Entry]:
    if not str(path) or not path.exists():
        return [Unreadable(str(path), "no such file or folder")]
    try:
        found = plugin.read_inputs(path, plugin_options(plugin, options))
    except UserError as exc:
        return [Unreadable(str(path), exc.message)]
    except OSError as exc:
        return [Unreadable(str(path), f"cannot read it: {exc.strerror or exc}")]
    return [expect(plugin, "read_inputs()", entry, Input) for entry in expect(plugin, "read_inputs()", found, Sequence)]
