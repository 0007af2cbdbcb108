"""Reports for stakeholders: one file they can open, read, print and keep.

`write_report` turns the leaderboards of one or more runs into a self-contained HTML page, or a
Markdown page with its figures as PNG files beside it. The content is decided once, in `content`;
`html` and `markdown` only render it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from automl_tl.errors import UserError
from automl_tl.leaderboard import Leaderboard
from automl_tl.report import html, markdown
from automl_tl.report.content import build
from automl_tl.report.document import Status

ReportFormat = Literal["html", "markdown"]


def write_report(runs: Sequence[tuple[str, Leaderboard]], out: Path, format: ReportFormat,
                 status: Status = lambda what: None) -> list[Path]:
    """Write the report of ``runs`` (label, leaderboard) to ``out``; returns every file written, ``out`` first.

    ``status`` hears what takes a while, for a progress line."""
    document = build(runs, status)
    if format == "html":
        files = {out: html.render(document).encode("utf-8")}
    else:
        text, images = markdown.render(document, out.stem)
        files = {out: text.encode("utf-8"), **{out.parent / name: png for name, png in images.items()}}
    for path, data in files.items():
        try:  # written plainly, not via a temporary file: that would make it private (0600), and a report is for sharing
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        except OSError as exc:
            raise UserError(f"cannot write the report to {path}: {exc.strerror or exc}",
                            hint="pass --out a file in a writable folder") from None
    return list(files)
