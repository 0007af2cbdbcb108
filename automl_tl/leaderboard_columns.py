"""The leaderboard's columns as text, and what a run with a target domain adds: its columns and the source guard.

Every run has `COLUMNS` (CSV, Markdown, the report) and `TERMINAL_COLUMNS`. With a target, a
trial's ``val score`` is a validator's value (or target validation accuracy), so the board shows
beside it the method, the source validation score the guard reads, and the labelled target test
score where one was measured (evaluation only). The guard is
`automl_tl.domains.guard`, applied to the rows of a study the board only reads, so the board
marks the same trial best that the search chose among.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from automl_tl.domains import Candidate, guard, source_reference
from automl_tl.vocabulary import cell, columns
from automl_tl.vocabulary.adaptations import SOURCE_ONLY, VALIDATORS, describe_adaptation

if TYPE_CHECKING:
    from automl_tl.leaderboard import Row

ADAPTATION_COLUMNS = ["adaptation", "source val", "target test (eval only)"]
"""Shown before ``val score`` when the run had a target; the last only where a target test was measured."""
COLUMNS = ["rank", "trial", *(d.column for d in columns() if d.column), "val score", "val 95% interval", "trainable", "time", "state"]
"""CSV and Markdown columns: the search dimensions that have a column (`automl_tl.vocabulary`), then the outcome."""
TERMINAL_COLUMNS = ["#", "trial", "backbone", "strategy", "head", "pooling", "lr bb/head", "val", "params", "time", "state"]
"""Short headers; the freeze depth shows as ``k=`` in the strategy, the learning rates share a column,
and under each validation score ``±`` is half the width of its 95 % interval."""
MIN_WIDTH = {"strategy": 7, "state": 8, "val": 6, "pooling": 7}
NUMERIC = {"rank", "#", "trial", "lr bb/head", "val score", "val", "trainable", "params", "time", *ADAPTATION_COLUMNS[1:],
           *(d.column for d in columns() if d.numeric and d.column)}


def cells(row: Row, plain: bool) -> list[str]:
    """One row's `COLUMNS` as text: ``plain`` for machines (CSV), else rounded for people."""

    def num(value: float | None, fmt: str) -> str:
        return "" if value is None else format(value, fmt)

    state = {"fail": "failed"}.get(row.state, row.state) + (f": {row.reason}" if row.reason else "")
    return [
        str(row.rank),
        str(row.trial),
        *(cell(d, row.params) for d in columns()),
        num(row.score, ".4f"),
        f"{row.interval['low']:.4f}–{row.interval['high']:.4f}" if row.interval else "",
        "" if row.trainable_params is None else (str(row.trainable_params) if plain else _human(row.trainable_params)),
        num(row.seconds, ".1f") if plain else (num(row.seconds, ".0f") + " s" if row.seconds is not None else ""),
        state,
    ]


def _human(n: int) -> str:
    for unit, size in (("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)


def with_adaptation(base: list[str], rows: list[Row], before: str) -> list[str]:
    """``base`` with the adaptation columns the rows can fill inserted before ``before``."""
    extra = ADAPTATION_COLUMNS if any(r.target_test for r in rows) else ADAPTATION_COLUMNS[:2]
    at = base.index(before)
    return [*base[:at], *extra, *base[at:]]


def adaptation_cells(row: Row, source_metric: str) -> dict[str, str]:
    """A row's adaptation columns as text, by column name."""
    source = row.scores.get(source_metric)
    test = (row.target_test or {}).get(source_metric)
    return {"adaptation": describe_adaptation(row.params) if row.params else "",
            "source val": "" if source is None else format(source, ".4f"),
            "target test (eval only)": "" if test is None else format(test, ".4f")}


def ranked_by(objective: str, adapting: bool) -> str:
    """What the trials were ranked by, in words: ``macro_f1 on validation``, ``snd on the unlabelled target``."""
    if adapting and objective in VALIDATORS and objective != "source":
        return f"{objective} on the unlabelled target"
    return f"{objective} on validation"


def guarded_best(rows: list[Row], selection: dict[str, Any]) -> int | None:
    """The best completed trial the run's source guard lets through, noting on each adapted trial it
    ruled out why; None where the run had no guard (the best value is the best)."""
    margin = selection.get("margin")
    if margin is None:
        return None
    complete, candidates = _candidates(rows, selection)
    kept, floor = guard(candidates, margin)
    allowed = {c.trial for c in kept}
    for row, candidate in zip(complete, candidates, strict=True):
        if floor is not None and candidate.trial not in allowed:
            row.reason = f"not chosen: source val {candidate.source or 0.0:.4f} below {floor:.4f}"
    return max(kept, key=lambda c: c.value).trial if kept else None


def source_only(rows: list[Row], selection: dict[str, Any]) -> Row | None:
    """The source-only trial adaptation is measured against (`automl_tl.domains.source_reference`), if one completed."""
    complete, candidates = _candidates(rows, selection)
    reference = source_reference(candidates)
    return None if reference is None else complete[candidates.index(reference)]


def _candidates(rows: list[Row], selection: dict[str, Any]) -> tuple[list[Row], list[Candidate]]:
    """The completed rows, and each as the source guard sees it."""
    metric = selection.get("source_metric", "macro_f1")
    complete = [r for r in rows if r.state == "complete" and r.score is not None]
    return complete, [Candidate(r.trial, r.score or 0.0, r.params.get("adaptation", SOURCE_ONLY), r.scores.get(metric)) for r in complete]
