"""The text plugin's options (a recipe's ``[options]`` table), checked once into a typed object.

The core checks names and types and builds the object (`automl_tl.config.plugin_options`); the
values the types cannot check are checked here, so a wrong option fails with one line before any
model loads.
"""

from __future__ import annotations

from dataclasses import dataclass

from automl_tl.errors import UserError

POOLINGS = ("auto", "cls", "mean")


@dataclass
class TextOptions:
    text_column: str | int | None = None
    """Column (name, or 0-based number for a file without header) holding the text; auto-detected when obvious."""
    label_column: str | int | None = None
    """Column holding the label; auto-detected when obvious."""
    group_column: str | int | None = None
    """Optional column of groups (author, user...): examples of a group stay in one split."""
    header: bool | None = None
    """Whether a CSV/TSV file's first row names the columns; None: detect."""
    max_length: int | None = None
    """Tokens per text (special tokens included); None: a high percentile of the training texts' lengths."""
    length_percentile: float = 98.0
    """Which percentile of the training texts' token counts sets ``max_length`` when it is not given."""
    pooling: str = "auto"
    """The backbone's own ("default") pooling: ``cls`` (first token), ``mean``, or ``auto``: what a
    sentence-transformers model folder declares (``1_Pooling/config.json``), else ``cls``."""

    def __post_init__(self) -> None:
        """Values the types cannot check; the core has checked names and types (`automl_tl.config.resolve`)."""
        for name in ("text_column", "label_column", "group_column"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, str | int)):
                raise UserError(f"options.{name}: give a column name or a 0-based column number, got {value!r}")
            if isinstance(value, int) and value < 0:
                raise UserError(f"options.{name}: a column number is 0 or more, got {value}")
        if self.header is not None and not isinstance(self.header, bool):
            raise UserError(f"options.header: true or false, got {self.header!r}")
        if self.max_length is not None and (
            isinstance(self.max_length, bool) or not isinstance(self.max_length, int) or self.max_length < 4
        ):
            raise UserError(f"options.max_length: a whole number of tokens, 4 or more, got {self.max_length!r}")
        percentile = self.length_percentile
        if isinstance(percentile, bool) or not isinstance(percentile, int | float) or not 50 <= percentile <= 100:
            raise UserError(f"options.length_percentile: a number from 50 to 100, got {percentile!r}")
        if self.pooling not in POOLINGS:
            raise UserError(f"options.pooling: one of {', '.join(POOLINGS)}, got {self.pooling!r}")


