"""What a report says, decided once for every format: a `Document` built from `Leaderboard`s.

The reader is a stakeholder who did not run the search: the headline answers "how good is it, on
what, compared with the obvious thing", the rest shows how the search got there and how to
reproduce it. Everything comes from the leaderboard data model, i.e. from the study's storage.
The figures' module (matplotlib) is imported where a figure is drawn: the app shows a leaderboard
without loading it.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path, PurePath
from typing import Any

from automl_tl import __version__
from automl_tl.domains import SHIFT, describe_shift
from automl_tl.errors import UserError
from automl_tl.leaderboard import NUMERIC, Leaderboard, Row, test_line
from automl_tl.model.source import final_model_line
from automl_tl.provenance import Provenance
from automl_tl.report.document import Block, Document, Facts, Paragraph, Section, Status, Table
from automl_tl.vocabulary import describe

ENVIRONMENT_LABELS = {
    "automl_tl": "automl-tl", "python": "Python", "torch": "PyTorch", "optuna": "Optuna",
    "platform": "platform", "processor": "processor", "cpus": "CPU cores", "torch_threads": "PyTorch threads",
}


def build(runs: Sequence[tuple[str, Leaderboard]], status: Status = lambda what: None) -> Document:
    """The report of one or several runs, each given as (how the user named it, its leaderboard);
    ``status`` hears what takes a while (the adaptation section loads a model and reads data)."""
    for label, board in runs:
        if not board.rows:
            raise UserError(f"run {label} has no trials yet", hint="report on it once `automl-tl search` has run a trial")
    generated = f"Generated {datetime.now():%Y-%m-%d %H:%M} by automl-tl {__version__}"
    if len(runs) == 1:
        label, board = runs[0]
        return Document(f"{board.study}: transfer-learning search report", f"{generated} from {label}.",
                        _run_sections(label, board, status))
    sections = [Section("Comparison across runs", [comparison(runs)])]
    sections += [Section(f"Run {i}: {board.study} ({label})", children=_run_sections(label, board, status))
                 for i, (label, board) in enumerate(runs, start=1)]
    return Document(f"Transfer-learning search report: {len(runs)} runs", f"{generated} from {', '.join(l for l, _ in runs)}.",
                    sections)


def _run_sections(label: str, board: Leaderboard, status: Status) -> list[Section]:
    from automl_tl.report import adaptation, plots  # matplotlib loads when a report is built, not with the app

    classes = board.run.get("data", {}).get("classes", [])
    adapted = adaptation.section(label, board, status)
    return [
        Section("Headline", _headline(board)),
        Section("Leaderboard", [leaderboard_table(board), Paragraph(_leaderboard_caption(board))]),
        Section("How the search went", [plots.score_over_trials(board), plots.score_over_time(board)]),
        Section("What mattered", [plots.score_by_strategy(board), plots.score_by_freeze_depth(board),
                                  plots.learning_rate_vs_score(board), plots.importance(board)]),
        Section("Best model on the test split", test_blocks(board, classes) + _use_blocks(label)),
        *([adapted] if adapted else []),
        Section("Environment and reproducibility", [_environment(label, board)]),
    ]


def _headline(board: Leaderboard) -> list[Block]:
    data = board.run.get("data", {})
    best, baseline, test, chosen = board.best, board.baseline, board.test, board.chosen
    lead = "No trial has completed yet."
    if chosen is not None:
        lead = f"Chosen model: {_configuration(chosen)}."
        if test and test.get("trial") == chosen.trial:
            lead += f" On {test.get('n', '?')} held-out test examples it scores accuracy {test['accuracy']:.3f} and macro-F1 {test['macro_f1']:.3f}."
        if test and test.get("chosen") and chosen is not best:
            lead += f" Why not the best validation score: {test['chosen']}."
        if test and best is not None and test.get("best_trial", test.get("trial")) != best.trial:
            lead += f" The test split was last evaluated for trial {test.get('trial')}; the search has found a better trial since."
    classes = data.get("classes", [])
    sizes = data.get("sizes", {})
    items = [
        ("Task", f"{board.run.get('modality', 'unknown')} classification into {len(classes)} classes"
                 + (f": {_listing(classes)}" if classes else "")),
        ("Data", data.get("description")),
        ("Split", " / ".join(f"{sizes[s]} {s}" for s in ("train", "validation", "test") if s in sizes) or None),
        ("How test data was held out", data.get("split")),
        ("Selection", f"{_selection(board)}; the test split is used once, after the search"),
        ("Best trial", f"trial {best.trial}, validation {board.objective} {best.score:.4f}" if best and best.score is not None else None),
        ("Test score", test_line(board) if test else "not evaluated yet (the search was interrupted or is running)"),
        ("Baseline", _baseline_sentence(board, best, baseline)),
        ("Search", f"{_trial_counts(board)}; {_duration(board.compute_seconds)} of compute"),
    ]
    return [Paragraph(lead), Facts([(k, v) for k, v in items if v])]


def _selection(board: Leaderboard) -> str:
    """How the search chose, in words: with a target, by its target measure under the source guard (docs/adaptation.md)."""
    shift = f" ({describe_shift(board.run[SHIFT])})" if board.run.get(SHIFT) else ""
    if not board.adapting or board.objective in (None, board.run.get("selection", {}).get("source_metric")):
        return f"by validation {board.objective}, keeping the simplest model within validation noise of the best{shift}"
    margin = board.run.get("selection", {}).get("margin")
    guard = f", among the trials within {margin} of the best source validation" if margin is not None else ""
    return f"by {board.chosen_by}{guard}{shift}"


def _baseline_sentence(board: Leaderboard, best: Row | None, baseline: Row | None) -> str | None:
    if best is None or baseline is None or baseline.score is None or best.score is None:
        return None
    name = baseline.baseline or "linear probe (frozen backbone, linear head)"
    if baseline.trial == best.trial:
        return f"the best model is itself the simplest baseline, a {name}"
    gain = best.score - baseline.score
    return (f"{name}, trial {baseline.trial}: validation {board.objective} {baseline.score:.4f}; "
            f"the best model is {gain:+.4f} ({100 * gain:+.1f} points) against it")


def leaderboard_table(board: Leaderboard) -> Table:
    """The leaderboard's rows and columns (`COLUMNS`), each row marked best, baseline or by its state."""
    baseline = board.baseline
    kinds = []
    for row in board.rows:
        if row is board.best:
            kinds.append("best")
        elif baseline is not None and row is baseline:
            kinds.append("baseline")
        else:
            kinds.append({"complete": ""}.get(row.state, row.state))
    return Table(board.columns, [board.cells(r, plain=False) for r in board.rows], kinds, frozenset(NUMERIC) & set(board.columns))


def _leaderboard_caption(board: Leaderboard) -> str:
    parts = [f"Ranked by validation {board.objective} (a pruned trial shows its best score before it was stopped)."]
    if board.best:
        parts.append(f"Best: trial {board.best.trial}.")
    if board.baseline and board.baseline is not board.best:
        parts.append(f"Baseline: trial {board.baseline.trial}.")
    parts.append("Pruned and failed trials stay listed; their state says why.")
    return " ".join(parts)


def _use_blocks(label: str) -> list[Block]:
    """Where the final model is and how to predict with it, when the run directory is at hand."""
    line = final_model_line(Path(label))
    return [Paragraph(line)] if line else []


def test_blocks(board: Leaderboard, classes: Sequence[str]) -> list[Block]:
    """The one test evaluation: the sentence, the confusion matrix, per-class scores as a figure and a table."""
    test = board.test
    if not test:
        return [Paragraph("The test split has not been evaluated yet: the search was interrupted or is still running.", note=True)]
    from automl_tl.report import plots

    rows = [[name, f"{s['precision']:.3f}", f"{s['recall']:.3f}", f"{s['f1']:.3f}", str(s["support"])]
            for name, s in test["per_class"].items()]
    return [
        Paragraph(test_line(board) + "."),
        plots.confusion_matrix(test, classes),
        plots.per_class_scores(test),
        Table(["class", "precision", "recall", "F1", "support"], rows, [], frozenset({"precision", "recall", "F1", "support"})),
    ]


def _environment(label: str, board: Leaderboard) -> Facts:
    run = board.run
    environment: dict[str, Any] = run.get("environment", {})
    search = run.get("config", {}).get("search", {})
    command = run.get("command") or []
    starts = [r.started for r in board.rows if r.started]
    ends = [r.finished for r in board.rows if r.finished]
    items = [
        ("Run directory", label),
        ("Study", board.study),
        ("Command", shlex.join([PurePath(command[0]).name, *command[1:]]) if command else None),
        ("Seed", str(run["seed"]) if "seed" in run else None),
        ("Search settings", ", ".join(f"{k}={v}" for k, v in search.items()) or None),
        ("Plugins", ", ".join(Provenance(**p).label() for p in run.get("plugins", [])) or None),
        *[(ENVIRONMENT_LABELS.get(k, k.replace("_", " ")), str(v)) for k, v in environment.items()],
        ("Total compute", f"{_duration(board.compute_seconds)} summed over {len(board.rows)} trial(s)"),
        ("Wall clock", f"{min(starts)[:16].replace('T', ' ')} to {max(ends)[:16].replace('T', ' ')}" if starts and ends else None),
        ("Fingerprint", run.get("fingerprint")),
    ]
    return Facts([(k, v) for k, v in items if v])


def comparison(runs: Sequence[tuple[str, Leaderboard]]) -> Table:
    """One row per run: task, data, trials, best configuration and scores, compute (the report's and the app's)."""
    header = ["run", "task", "classes", "train / val / test", "trials", "best configuration", "best val score",
              "test accuracy", "test macro-F1", "compute"]
    rows = []
    for label, board in runs:
        data = board.run.get("data", {})
        sizes = data.get("sizes", {})
        test = board.test or {}
        rows.append([
            label,
            f"{board.run.get('modality', '?')}: {data.get('name', '?')}",
            str(len(data.get("classes", []))),
            " / ".join(str(sizes.get(s, "?")) for s in ("train", "validation", "test")),
            _trial_counts(board),
            _configuration(board.best) if board.best else "none completed",
            f"{board.best.score:.4f} ({board.objective})" if board.best and board.best.score is not None else "",
            f"{test['accuracy']:.4f}" if "accuracy" in test else "",
            f"{test['macro_f1']:.4f}" if "macro_f1" in test else "",
            _duration(board.compute_seconds),
        ])
    return Table(header, rows, [], frozenset({"classes", "best val score", "test accuracy", "test macro-F1", "compute"}))


def _configuration(row: Row) -> str:
    return f"trial {row.trial} ({describe(row.params)})"


def _trial_counts(board: Leaderboard) -> str:
    c = board.counts
    text = f"{len(board.rows)} trials: {c.get('complete', 0)} complete, {c.get('pruned', 0)} pruned, {c.get('fail', 0)} failed"
    return text + (f", {c['running']} running" if c.get("running") else "")


def _listing(items: Sequence[str], limit: int = 12) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
