"""The report as a tree of plain blocks.

`content` decides *what* a report says once; `html` and `markdown` only decide how each kind of
block looks. A fact added to the report therefore shows up in both formats, and they cannot drift.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

Status = Callable[[str], None]
"""Hears what takes a while while a report is built (`automl-tl report` shows it as a progress line)."""


@dataclass(frozen=True)
class Paragraph:
    text: str
    note: bool = False
    """A remark standing in for something that cannot be shown (a plot without enough trials)."""


@dataclass(frozen=True)
class Facts:
    """Label/value pairs, read top to bottom: the headline, the environment."""

    items: list[tuple[str, str]]


@dataclass(frozen=True)
class Table:
    header: list[str]
    rows: list[list[str]]
    kinds: list[str] = field(default_factory=list)
    """Per row, how it should stand out: "best", "baseline", "pruned", "fail", "running" or ""."""
    numeric: frozenset[str] = frozenset()
    """Columns aligned right, so digits line up."""


@dataclass(frozen=True)
class Figure:
    name: str
    """A short slug: the PNG's file name where a format keeps images as files."""
    caption: str
    png: bytes


Block = Paragraph | Facts | Table | Figure


@dataclass
class Section:
    title: str
    blocks: list[Block] = field(default_factory=list)
    children: list[Section] = field(default_factory=list)


@dataclass
class Document:
    title: str
    subtitle: str
    sections: list[Section]

