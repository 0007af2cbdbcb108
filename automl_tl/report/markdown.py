"""A `Document` as Markdown for a wiki, with its figures as PNG files beside the ``.md``.

Wikis (GitHub, GitLab, Confluence imports) render relative image links but many strip data URIs,
so images travel as files named ``<report stem>-<nn>-<figure>.png``: upload them with the page.

Every text is shown as written (`_inline`): Markdown passes raw HTML through, so a class label
such as ``<img src=x onerror=...>`` would otherwise become markup in the page, where the HTML
report shows it as text.
"""

from __future__ import annotations

from html import escape
from urllib.parse import quote

from automl_tl.report.document import Block, Document, Facts, Figure, Paragraph, Section, Table


def render(document: Document, stem: str) -> tuple[str, dict[str, bytes]]:
    """The Markdown text and the images it links to, by file name (relative to the ``.md``)."""
    images: dict[str, bytes] = {}
    lines = [f"# {_inline(document.title)}", "", f"_{_inline(document.subtitle)}_", ""]
    for section in document.sections:
        lines += _section(section, 2, stem, images)
    return "\n".join(lines).rstrip() + "\n", images


def _section(section: Section, level: int, stem: str, images: dict[str, bytes]) -> list[str]:
    lines = ["#" * level + " " + _inline(section.title), ""]
    for block in section.blocks:
        lines += _block(block, stem, images) + [""]
    for child in section.children:
        lines += _section(child, level + 1, stem, images)
    return lines


def _block(block: Block, stem: str, images: dict[str, bytes]) -> list[str]:
    if isinstance(block, Paragraph):
        return [f"_{_inline(block.text)}_" if block.note else _inline(block.text)]
    if isinstance(block, Facts):
        return [f"- **{_inline(label)}**: {_inline(value)}" for label, value in block.items]
    if isinstance(block, Table):
        return _table(block)
    return _figure(block, stem, images)


def _table(table: Table) -> list[str]:
    align = ["---:" if c in table.numeric else "---" for c in table.header]
    lines = ["| " + " | ".join(map(_inline, table.header)) + " |", "| " + " | ".join(align) + " |"]
    return lines + ["| " + " | ".join(map(_inline, row)) + " |" for row in table.rows]


def _figure(figure: Figure, stem: str, images: dict[str, bytes]) -> list[str]:
    name = f"{stem}-{len(images) + 1:02d}-{figure.name}.png"  # numbered: several runs have the same figures
    images[name] = figure.png
    return [f"![{_inline(figure.caption)}]({quote(name)})", "", f"_{_inline(figure.caption)}_"]


_MARKUP = str.maketrans({c: "\\" + c for c in "\\`*_[]|"})
"""Characters that would start Markdown markup (emphasis, code, links) or end a table cell."""


def _inline(text: str) -> str:
    """Text shown as written: HTML escaped as the HTML report escapes it, markup characters backslashed, one line."""
    return escape(text, quote=False).translate(_MARKUP).replace("\n", " ")
