"""A `Document` as one self-contained HTML file: inline CSS, images as base64 data URIs.

The file must still open in ten years, offline, attached to an e-mail or in a ticket: it references
nothing outside itself (no CDN, no script, no font) and prints cleanly.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from html import escape

from automl_tl.report.document import Block, Document, Facts, Figure, Paragraph, Section, Table

CSS = """
:root { --ink: #1a1a1a; --muted: #666; --rule: #d9d9d9; --best: #dcebf7; --baseline: #fbefd9; }
body { margin: 0; background: #fff; color: var(--ink);
       font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 32px 48px; }
h1 { font-size: 1.6rem; margin: 0 0 4px; }
h2 { font-size: 1.3rem; margin: 36px 0 12px; padding-bottom: 2px; border-bottom: 2px solid var(--ink); }
h3 { font-size: 1.1rem; margin: 24px 0 8px; }
.subtitle { color: var(--muted); margin: 0 0 8px; }
section.headline > p:first-of-type { font-size: 1.15rem; font-weight: 600; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 3px 18px; margin: 0; }
dl.facts dt { color: var(--muted); font-weight: 600; }
dl.facts dd { margin: 0; overflow-wrap: anywhere; }
.table-wrap { overflow-x: auto; }
table { border-collapse: collapse; font-size: 13px; font-variant-numeric: tabular-nums; margin: 4px 0 8px; }
th, td { padding: 3px 7px; text-align: left; white-space: nowrap; border-bottom: 1px solid var(--rule); }
th { border-bottom: 2px solid var(--ink); }
td:last-child { white-space: normal; min-width: 9em; }
.num { text-align: right; }
tr.best { background: var(--best); font-weight: 700; }
tr.baseline { background: var(--baseline); }
tr.pruned, tr.fail, tr.running { color: var(--muted); }
tr.pruned td:last-child, tr.fail td:last-child, tr.running td:last-child { font-style: italic; }
.figures { display: grid; grid-template-columns: repeat(auto-fit, minmax(460px, 1fr)); gap: 18px 28px; margin: 8px 0; }
figure { margin: 0; break-inside: avoid; }
figure img { display: block; max-width: 100%; height: auto; }
figcaption { color: var(--muted); font-size: 13px; margin-top: 4px; }
p.note { color: var(--muted); font-style: italic; border-left: 3px solid var(--rule); padding-left: 10px; }
@media print {
  body { font-size: 10.5pt; }
  main { max-width: none; padding: 0; }
  h2, h3 { break-after: avoid; }
  tr, figure, dl { break-inside: avoid; }
  .table-wrap { overflow: visible; }
  tr.best, tr.baseline { print-color-adjust: exact; -webkit-print-color-adjust: exact; }
}
"""


def render(document: Document) -> str:
    body = "\n".join(_section(s, level=2) for s in document.sections)
    return (
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<title>{escape(document.title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n"
        f"<header><h1>{escape(document.title)}</h1><p class=\"subtitle\">{escape(document.subtitle)}</p></header>\n"
        f"{body}\n</main>\n</body>\n</html>\n"
    )


def _section(section: Section, level: int) -> str:
    parts = [f"<section class=\"{_slug(section.title)}\">", f"<h{level}>{escape(section.title)}</h{level}>",
             fragment(section.blocks), *(_section(child, level + 1) for child in section.children), "</section>"]
    return "\n".join(parts)


def fragment(blocks: Sequence[Block]) -> str:
    """Blocks as HTML, without a page around them (the app shows report blocks inside its own pages)."""
    parts: list[str] = []
    figures: list[str] = []
    for block in blocks:  # consecutive figures share a grid, two side by side on a wide screen
        if isinstance(block, Figure):
            figures.append(_figure(block))
            continue
        if figures:
            parts.append(f"<div class=\"figures\">{''.join(figures)}</div>")
            figures = []
        parts.append(_block(block))
    if figures:
        parts.append(f"<div class=\"figures\">{''.join(figures)}</div>")
    return "\n".join(parts)


def _block(block: Block) -> str:
    if isinstance(block, Paragraph):
        return f"<p class=\"note\">{escape(block.text)}</p>" if block.note else f"<p>{escape(block.text)}</p>"
    if isinstance(block, Facts):
        items = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in block.items)
        return f"<dl class=\"facts\">{items}</dl>"
    if isinstance(block, Table):
        return _table(block)
    return _figure(block)


def _table(table: Table) -> str:
    def cell(tag: str, column: str, text: str) -> str:
        numeric = " class=\"num\"" if column in table.numeric else ""
        return f"<{tag}{numeric}>{escape(text)}</{tag}>"

    head = "".join(cell("th", c, c) for c in table.header)
    kinds = table.kinds or [""] * len(table.rows)
    rows = "".join(
        (f"<tr class=\"{kind}\">" if kind else "<tr>") + "".join(cell("td", c, v) for c, v in zip(table.header, row, strict=True)) + "</tr>"
        for row, kind in zip(table.rows, kinds, strict=True)
    )
    return f"<div class=\"table-wrap\"><table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></div>"


def _figure(figure: Figure) -> str:
    data = base64.b64encode(figure.png).decode("ascii")
    return (f"<figure><img src=\"data:image/png;base64,{data}\" alt=\"{escape(figure.caption)}\">"
            f"<figcaption>{escape(figure.caption)}</figcaption></figure>")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
