"""One data model for every leaderboard: the terminal table, CSV, JSON, Markdown and the report.

Everything is read from the study's storage (trial user attributes and the study's ``run`` and
``test`` attributes), so any worker, or a machine that only sees the database, renders the same
leaderboard for a finished, interrupted or running search.
"""

from __future__ import annotations

import csv
import io
import json
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from collections.abc import Callable
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState
from rich import box
from rich.table import Table

from automl_tl.config import SearchConfig
from automl_tl.domains import SHIFT, describe_shift, shift_found
from automl_tl.errors import UserError
from automl_tl.leaderboard_columns import (
    ADAPTATION_COLUMNS, COLUMNS, MIN_WIDTH, NUMERIC, TERMINAL_COLUMNS, adaptation_cells, cells, guarded_best, ranked_by, source_only,
    with_adaptation,
)
from automl_tl.model.source import final_training
from automl_tl.rundir import RunDir
from automl_tl.storage import load_study, reader_url
from automl_tl.trials import PRUNED_AFTER, RETRY_OF, STOPPED, as_read, fail_reason, is_interrupted, seconds
from automl_tl.vocabulary import STRATEGIES, describe_strategy

STATE_ORDER = {TrialState.COMPLETE: 0, TrialState.PRUNED: 1, TrialState.RUNNING: 2, TrialState.FAIL: 3}
HEARTBEAT = SearchConfig.model_fields["heartbeat"].default
"""The heartbeat of a run that recorded none: a running trial silent for its grace reads as interrupted."""


@dataclass
class Row:
    rank: int
    trial: int
    state: str
    score: float | None
    """Validation objective at the best epoch (best by the curve smoothed over neighbouring epochs; for a pruned trial, the best before it was stopped)."""
    accuracy: float | None
    macro_f1: float | None
    interval: dict[str, Any] | None
    """The score's 95 % bootstrap interval on the validation split (``low``, ``high``), for completed trials."""
    trainable_params: int | None
    seconds: float | None
    reason: str | None
    """Why it ended so: a failure's reason, a pruned trial's last epoch, a complete one cut short by the time budget."""
    params: dict[str, Any] = field(default_factory=dict)
    """The trial's configuration, one value per search dimension (`automl_tl.vocabulary.DIMENSIONS`)."""
    history: list[dict[str, float]] = field(default_factory=list)
    started: str | None = None
    """When the trial started and ended (ISO 8601, the storage's clock): the report plots score over wall time."""
    finished: str | None = None
    baseline: str | None = None
    """Set when the engine ran this trial as the reference to beat (e.g. ``"linear probe"``)."""
    scores: dict[str, float] = field(default_factory=dict)
    """Every metric of its best epoch: the source's, and with a target each validator's (`VALIDATORS`)."""
    target_test: dict[str, Any] | None = None
    """Its scores on the labelled target test set, overall and per class: evaluation only, never read to choose."""

    @property
    def strategy(self) -> str | None:
        return self.params.get("strategy")

    @property
    def freeze_depth(self) -> int | None:
        return self.params.get("freeze_depth")


@dataclass
class Leaderboard:
    study: str
    objective: str
    run: dict[str, Any]
    """What the run was: modality, data, splits, classes, config, environment (the ``run`` attribute)."""
    rows: list[Row]
    test: dict[str, Any] | None
    """The best trial's one evaluation on the test split, when it has been made."""
    counts: dict[str, int]
    compute_seconds: float
    importance: dict[str, float] | None = None
    """Hyperparameter importances (Optuna's PED-ANOVA, summing to 1), when asked for and computable."""
    importance_note: str | None = None
    """Why `importance` is missing, in a sentence a reader can act on."""
    interrupted: int = 0
    """How many failed trials were interrupted (killed, Ctrl-C...): they spend no budget and are retried once."""
    guarded: int | None = None
    """With a source guard (`automl_tl.domains.guard`), the best trial it lets through; None without one."""

    @classmethod
    def from_study(cls, study: optuna.Study, importance: bool = False) -> Leaderboard:
        """The leaderboard of ``study``; ``importance`` adds hyperparameter importances (a little slower)."""
        attrs = study.user_attrs  # a query each time it is read
        run = attrs.get("run", {})
        every = as_read(study, run.get("config", {}).get("search", {}).get("heartbeat", HEARTBEAT))
        trials = [t for t in every if t.state in STATE_ORDER]
        trials.sort(key=lambda t: (STATE_ORDER[t.state], -(_score(t) if _score(t) is not None else -1.0), t.number))
        rows = [_row(rank, t) for rank, t in enumerate(trials, start=1)]
        retries = {t.user_attrs[RETRY_OF]: t.number for t in every if RETRY_OF in t.user_attrs}
        for row in rows:
            if row.trial in retries:
                row.reason = f"{row.reason}; retried as trial {retries[row.trial]}"
        counts = {state.name.lower(): sum(1 for t in trials if t.state == state) for state in STATE_ORDER}
        guarded = guarded_best(rows, run.get("selection") or {})
        return cls(
            study=study.study_name,
            objective=run.get("objective", "score"),
            run=run,
            rows=rows,
            test=attrs.get("test"),
            counts=counts,
            compute_seconds=sum(r.seconds or 0.0 for r in rows),
            interrupted=sum(1 for t in trials if is_interrupted(t)),
            guarded=guarded,
            **(_importance(study) if importance else {}),
        )

    @classmethod
    def of_run(cls, run_dir: Path, storage: str | None = None, importance: bool = False) -> Leaderboard:
        """The leaderboard of a run directory (its study may live elsewhere, e.g. in PostgreSQL)."""
        saved = RunDir(run_dir).load_config()
        if saved is None:
            raise UserError(f"{run_dir} is not a run directory (no config.json)", hint="pass the folder a search wrote, e.g. runs/speech-default")
        url = storage or reader_url(saved.get("storage")) or RunDir(run_dir).default_storage
        return cls.from_study(load_study(url, saved["study"]), importance=importance)

    @property
    def chosen(self) -> Row | None:
        """The configuration the search handed on: the one it tested, else the best so far.

        Not always the best score: within validation noise the simpler model is kept (`automl_tl.search.selection`).
        """
        tested = (self.test or {}).get("trial")
        return next((r for r in self.rows if r.trial == tested), None) if tested is not None else self.best

    @property
    def best(self) -> Row | None:
        """The highest completed score, among the trials the source guard lets through when there is one."""
        if self.guarded is not None:
            return next((r for r in self.rows if r.trial == self.guarded), None)
        return self.rows[0] if self.rows and self.rows[0].state == "complete" else None

    @property
    def chosen_by(self) -> str:
        """What the trials were ranked by, in words (`automl_tl.leaderboard_columns.ranked_by`)."""
        return ranked_by(self.objective, self.adapting)

    @property
    def adapting(self) -> bool:
        """The run had a target domain: the leaderboard then shows the adaptation columns."""
        return "target" in self.run.get("data", {})

    @property
    def columns(self) -> list[str]:
        """`COLUMNS`, with a target the method and the source validation score beside the validator's value,
        and the target test score where one was measured."""
        return with_adaptation(COLUMNS, self.rows, before="val score") if self.adapting else COLUMNS

    def cells(self, row: Row, plain: bool) -> list[str]:
        """One row's `columns` as text."""
        named = dict(zip(COLUMNS, cells(row, plain), strict=True))
        if self.adapting:
            named.update(adaptation_cells(row, self.run.get("selection", {}).get("source_metric", "macro_f1")))
        return [named[c] for c in self.columns]

    @property
    def baseline(self) -> Row | None:
        """The simplest model the run measured: the trial the engine marked, else its best linear probe.

        A linear probe (frozen backbone, linear head) is what a practitioner would try first, so
        the report states how much the search gained over it.
        """
        complete = [r for r in self.rows if r.state == "complete"]
        marked = [r for r in complete if r.baseline]
        probes = [r for r in complete if r.strategy in STRATEGIES and not STRATEGIES[r.strategy].trains_backbone
                  and r.params.get("head") == "linear"]
        return (marked or probes or [None])[0]

    @property
    def source_only(self) -> Row | None:
        """With a target, the source-only trial adaptation is measured against (the report's "before")."""
        return source_only(self.rows, self.run.get("selection") or {}) if self.adapting else None

    def top(self, k: int | None) -> Leaderboard:
        if k is None:
            return self
        return replace(self, rows=self.rows[:k])

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, default=str)

    def to_csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(self.columns)
        for row in self.rows:
            writer.writerow(self.cells(row, plain=True))
        return out.getvalue()

    def to_markdown(self) -> str:
        lines = [f"## {self.study}: {self.chosen_by}", ""]
        lines += [_summary(self), ""]
        lines.append("| " + " | ".join(self.columns) + " |")
        lines.append("|" + "---|" * len(self.columns))
        for row in self.rows:
            lines.append("| " + " | ".join(self.cells(row, plain=False)) + " |")
        if self.test:
            lines += ["", test_line(self)]
        return "\n".join(lines) + "\n"

    def to_table(self) -> Table:
        """The terminal view: the columns of `COLUMNS`, folded to stay readable in 80 columns."""
        backbones = {r.params["backbone"] for r in self.rows if r.params.get("backbone")}
        single = next(iter(backbones)) if len(backbones) == 1 else None
        title = f"{self.study} — {self.chosen_by}" + (f" — {single}" if single else "")
        table = Table(title=title, caption=_summary(self), header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
        columns = [c for c in TERMINAL_COLUMNS if c != "backbone" or single is None]
        if self.adapting:
            at = columns.index("val")
            columns[at:at] = [c for c in self.columns if c in ADAPTATION_COLUMNS]
        for column in columns:
            table.add_column(column, justify="right" if column in NUMERIC else "left",
                             min_width=MIN_WIDTH.get(column), overflow="fold")
        for row in self.rows:
            style = {"complete": None, "running": "italic", "pruned": "dim", "fail": "dim red"}[row.state]
            if row is self.best:
                style = "bold green"
            named = dict(zip(self.columns, self.cells(row, plain=False), strict=True))
            rates = (row.params.get("backbone_lr"), row.params.get("head_lr"))
            terminal = {**named, "#": named["rank"], "strategy": describe_strategy(row.params),
                        "lr bb/head": "/".join(format(r, ".0e") for r in rates if r is not None),
                        "val": named["val score"] + (f"\n±{(row.interval['high'] - row.interval['low']) / 2:.3f}" if row.interval else ""),
                        "params": named["trainable"]}
            table.add_row(*(terminal[c] for c in columns), style=style)
        return table


TEXT_FORMATS: dict[str, Callable[[Leaderboard], str]] = {
    "csv": Leaderboard.to_csv, "json": Leaderboard.to_json, "markdown": Leaderboard.to_markdown,
}
"""Every text rendering of a leaderboard by the name ``--format`` takes (the terminal's is `Leaderboard.to_table`)."""



def test_line(board: Leaderboard) -> str:
    """The one test evaluation in a sentence, each score with its 95 % bootstrap interval."""
    test = board.test or {}
    how = final_training(test)
    intervals = test.get("intervals", {})

    def score(metric: str, name: str) -> str:
        text = f"{name} {test.get(metric, float('nan')):.4f}"
        if metric in intervals:
            spread = intervals[metric]
            text += f" (95 % interval {spread['low']:.3f}–{spread['high']:.3f})"
        return text

    unit = next(iter(intervals.values()), {}).get("unit")
    over = f"; intervals resample {unit}" if unit else ""
    line = (
        f"Held-out test (trial {test.get('trial')}'s configuration, {how}, evaluated once after the search): "
        f"{score('accuracy', 'accuracy')}, {score('macro_f1', 'macro-F1')} on {test.get('n', '?')} examples{over}"
    )
    target = test.get("target")
    if target:
        line += (f"; target test (labelled, evaluation only): accuracy {target['accuracy']:.4f}, "
                 f"macro-F1 {target['macro_f1']:.4f} on {target['n']} examples")
    return line


def _summary(board: Leaderboard) -> str:
    c = board.counts
    parts = [f"{c.get('complete', 0)} complete, {c.get('pruned', 0)} pruned, {c.get('fail', 0)} failed"
             + (f" ({board.interrupted} interrupted: not counted, retried once)" if board.interrupted else "")]
    if c.get("running"):
        parts.append(f"{c['running']} running")
    parts.append(f"compute {board.compute_seconds:.0f} s")
    if not shift_found(board.run.get(SHIFT)):
        parts.append(describe_shift(board.run[SHIFT]))
    return "; ".join(parts)


def _score(trial: FrozenTrial) -> float | None:
    if trial.state == TrialState.COMPLETE:
        return trial.value
    values = list(trial.intermediate_values.values())
    return max(values) if values else None


def _row(rank: int, trial: FrozenTrial) -> Row:
    attrs = trial.user_attrs
    params = attrs.get("params", {})
    scores = attrs.get("scores", {})
    took = None if is_interrupted(trial) else seconds(trial)  # an interrupted trial ends when a worker notices, maybe hours later
    reason = attrs.get(STOPPED) if trial.state == TrialState.COMPLETE else fail_reason(trial)
    if trial.state == TrialState.PRUNED and (attrs.get(PRUNED_AFTER) or trial.intermediate_values):
        reason = f"after {attrs.get(PRUNED_AFTER) or f'epoch {max(trial.intermediate_values)}'}"  # a run before the attribute: steps were epochs
    return Row(
        rank=rank,
        trial=trial.number,
        state="fail" if trial.state == TrialState.FAIL else trial.state.name.lower(),
        score=_score(trial),
        accuracy=scores.get("accuracy"),
        macro_f1=scores.get("macro_f1"),
        interval=attrs.get("interval"),
        trainable_params=attrs.get("trainable_params"),
        seconds=took,
        reason=reason,
        params=params,
        history=attrs.get("history", []),
        started=trial.datetime_start.isoformat() if trial.datetime_start else None,
        finished=trial.datetime_complete.isoformat() if trial.datetime_complete else None,
        baseline=attrs.get("baseline"),
        scores=scores,
        target_test=attrs.get("target_test"),
    )


def _importance(study: optuna.Study) -> dict[str, Any]:
    """``importance`` or ``importance_note`` for `Leaderboard`: never an exception, the board must render."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(complete) < 2:
        return {"importance_note": f"Hyperparameter importance needs at least 2 completed trials; this run has {len(complete)}."}
    try:
        with warnings.catch_warnings():  # "fewer than 2 trials in a regime": expected in a small search
            warnings.simplefilter("ignore")
            # PED-ANOVA named, not Optuna's default: no scikit-learn needed, and the report can say what it shows
            values = optuna.importance.get_param_importances(study, evaluator=optuna.importance.PedAnovaImportanceEvaluator())
    except Exception as exc:  # too few varied parameters, a degenerate forest, ...
        return {"importance_note": f"Hyperparameter importance could not be computed ({type(exc).__name__}: {exc})."}
    if not values:
        return {"importance_note": "Hyperparameter importance: no parameter varied across every completed trial."}
    return {"importance": {name: float(value) for name, value in values.items()}}
