"""The report's figures: static PNGs drawn with matplotlib's Agg renderer.

Static images keep the report one self-contained file that opens anywhere and prints. Every plot
must survive a grey-scale printer and a colour-blind reader, so colours come from the Okabe–Ito
palette (and cividis for the confusion matrix; each strategy's colour and marker are declared in
`automl_tl.vocabulary.STRATEGIES`) and every category also has its own marker shape;
a pruned trial is drawn hollow. A plot that has nothing to show returns a sentence that says why.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure as Canvas
from matplotlib.lines import Line2D
from matplotlib.ticker import NullFormatter

from automl_tl.leaderboard import Leaderboard, Row
from automl_tl.report.document import Figure, Paragraph
from automl_tl.vocabulary import STRATEGIES, strategy_style

OKABE_ITO = {
    "blue": "#0072B2", "orange": "#E69F00", "green": "#009E73", "purple": "#CC79A7",
    "sky": "#56B4E9", "vermillion": "#D55E00", "yellow": "#F0E442", "black": "#000000",
}
STYLE = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#dddddd",
    "grid.linewidth": 0.6,
    "legend.frameon": False,
}
DPI = 120
WIDE = (6.4, 3.4)
TICK_CHARS = 24
"""The longest class label drawn on an axis; longer ones are cut (the per-class table has them whole)."""


def score_over_trials(board: Leaderboard) -> Figure | Paragraph:
    rows = _scored(board)
    if not rows:
        return _nothing_yet()

    def draw(fig: Canvas) -> None:
        ax = fig.add_subplot()
        _points(ax, rows, [r.trial for r in rows])
        best = _best_so_far([(r.trial, r) for r in board.rows])
        if best:
            _best_line(ax, best, max(r.trial for r in rows))
        ax.set_xlabel("trial")
        _score_axis(ax, rows, board.objective)
        _integer_axis(ax, [r.trial for r in rows])
        _legend(fig, rows, best_line=bool(best))

    return Figure("score-over-trials", f"Validation {board.objective} of each trial, in the order they ran; "
                  f"the line is the best completed trial so far.{_failed_note(board)}", png(draw, WIDE))


def score_over_time(board: Leaderboard) -> Figure | Paragraph:
    rows = [r for r in _scored(board) if r.finished]
    starts = [datetime.fromisoformat(r.started) for r in board.rows if r.started]
    if not rows or not starts:
        return _nothing_yet()
    origin = min(starts)

    def minutes(row: Row) -> float:
        return (datetime.fromisoformat(row.finished or "") - origin).total_seconds() / 60

    def draw(fig: Canvas) -> None:
        ax = fig.add_subplot()
        _points(ax, rows, [minutes(r) for r in rows])
        best = _best_so_far([(minutes(r), r) for r in board.rows if r.finished])
        if best:
            _best_line(ax, best, max(minutes(r) for r in rows))
        ax.set_xlabel("wall time since the first trial started (minutes)")
        _score_axis(ax, rows, board.objective)
        _legend(fig, rows, best_line=bool(best))

    return Figure("score-over-time", f"Validation {board.objective} against the wall time at which each trial ended; "
                  "the line is the best completed trial so far.", png(draw, WIDE))


def epoch_curves(board: Leaderboard) -> Figure | Paragraph:
    """Each trial's validation score per epoch, coloured by strategy; the best trial drawn bold."""
    rows = [r for r in board.rows if any(board.objective in h for h in r.history)]
    if not rows:
        return Paragraph("No trial has finished an epoch yet, so there are no learning curves to draw.", note=True)

    def draw(fig: Canvas) -> None:
        ax = fig.add_subplot()
        for row in reversed(rows):  # the best last, on top
            colour, marker, _ = strategy_style(row.strategy)
            points = [(h["epoch"], h[board.objective]) for h in row.history if board.objective in h]
            best = row is board.best
            done = row.state == "complete"
            ax.plot(*zip(*points, strict=True), color=colour, marker=marker, markersize=4 if best else 3,
                    markerfacecolor=colour if done else "none", linewidth=2.2 if best else 0.9,
                    alpha=1.0 if best else 0.6, linestyle="-" if done else ":")
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"validation {board.objective}")
        _integer_axis(ax, [h["epoch"] for r in rows for h in r.history])
        _legend(fig, rows, best_line=False)

    return Figure("epoch-curves", f"Validation {board.objective} after each epoch of each trial; the best trial is bold, "
                  "pruned, failed and running trials dotted and hollow.", png(draw, WIDE))


def score_by_strategy(board: Leaderboard) -> Figure | Paragraph:
    rows = _scored(board)
    if not rows:
        return _nothing_yet()
    order = [s for s in STRATEGIES if any(r.strategy == s for r in rows)]
    order += sorted({r.strategy or "?" for r in rows} - set(order))
    jitter = np.random.default_rng(0).uniform(-0.15, 0.15, len(rows))  # seeded: the same run draws the same figure

    def draw(fig: Canvas) -> None:
        ax = fig.add_subplot()
        _points(ax, rows, [order.index(r.strategy or "?") + j for r, j in zip(rows, jitter, strict=True)])
        for i, strategy in enumerate(order):
            complete = [r.score for r in rows if r.strategy == strategy and r.state == "complete" and r.score is not None]
            if complete:
                ax.hlines(max(complete), i - 0.3, i + 0.3, color=OKABE_ITO["black"], linewidth=1.5)
        ax.set_xticks(range(len(order)), [strategy_style(s)[2].replace(" ", "\n", 1) for s in order])  # two lines: no overlap
        ax.set_xlim(-0.6, len(order) - 0.4)
        _score_axis(ax, rows, board.objective)
        ax.grid(axis="x", visible=False)
        _legend(fig, rows, best_line=False)

    return Figure("score-by-strategy", f"Validation {board.objective} by transfer strategy; the bar marks each "
                  "strategy's best completed trial.", png(draw, WIDE))


def score_by_freeze_depth(board: Leaderboard) -> Figure | Paragraph:
    rows = [r for r in _scored(board) if r.freeze_depth is not None]
    if not rows:
        return _nothing_yet()

    def draw(fig: Canvas) -> None:
        ax = fig.add_subplot()
        _points(ax, rows, [r.freeze_depth or 0 for r in rows])
        ax.set_xlabel("backbone blocks frozen (0: the whole backbone trains; all: feature extraction)")
        _score_axis(ax, rows, board.objective)
        _integer_axis(ax, [r.freeze_depth or 0 for r in rows])
        _legend(fig, rows, best_line=False)

    return Figure("score-by-freeze-depth", f"Validation {board.objective} by how many backbone blocks stayed frozen.",
                  png(draw, WIDE))


def learning_rate_vs_score(board: Leaderboard) -> Figure | Paragraph:
    rows = _scored(board)
    rates = [(name, label, [r for r in rows if r.params.get(name) is not None])
             for name, label in (("head_lr", "head learning rate"), ("backbone_lr", "backbone learning rate"))]
    rates = [entry for entry in rates if entry[2]]
    if not rates:
        return _nothing_yet()

    def draw(fig: Canvas) -> None:
        axes = fig.subplots(1, len(rates), sharey=True, squeeze=False)[0]
        for ax, (name, label, subset) in zip(axes, rates, strict=True):
            _points(ax, subset, [r.params[name] for r in subset])
            _log_axis(ax, [r.params[name] for r in subset])
            ax.set(xlabel=f"{label} (log scale)")
        _score_axis(axes[0], rows, board.objective)  # shared by both panels
        _legend(fig, rows, best_line=False)

    note = " The backbone's rate applies only to trials that train it." if len(rates) == 2 else ""
    return Figure("learning-rate-vs-score", f"Learning rate against validation {board.objective}.{note}", png(draw, WIDE))


def importance(board: Leaderboard) -> Figure | Paragraph:
    if not board.importance:
        return Paragraph(board.importance_note or "Hyperparameter importance was not computed for this report.", note=True)
    names = sorted(board.importance, key=board.importance.__getitem__)
    values = [board.importance[n] for n in names]

    def draw(fig: Canvas) -> None:
        ax = fig.add_subplot()
        ax.barh(names, values, color=OKABE_ITO["blue"], edgecolor=OKABE_ITO["black"], linewidth=0.5)
        for y, value in enumerate(values):
            ax.annotate(f"{value:.2f}", (value, y), xytext=(3, 0), textcoords="offset points", va="center")
        ax.set(xlabel="importance (PED-ANOVA; all dimensions sum to 1)", xlim=(0, max(values) * 1.15 or 1))
        ax.grid(axis="y", visible=False)

    height = max(2.2, 0.35 * len(names) + 1.0)
    return Figure("importance", "Which search dimensions mattered most for reaching the run's best validation scores "
                  "(Optuna's PED-ANOVA over completed trials; a conditional dimension such as the freeze depth counts "
                  "where it was sampled). With few trials, read it as a rough guide.", png(draw, (WIDE[0], height)))


def confusion_matrix(test: dict[str, Any], classes: Sequence[str]) -> Figure:
    """The best model's confusion on the test split (``test`` is the study's ``test`` attribute)."""
    matrix = np.asarray(test["confusion"], dtype=float)
    totals = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0)
    n = len(classes)
    side = min(max(3.6, 0.42 * n + 1.8), 14.0)

    def draw(fig: Canvas) -> None:
        ax = fig.add_subplot()
        image = ax.imshow(share, cmap="cividis", vmin=0, vmax=1)
        ax.set_xticks(range(n), [_tick(c) for c in classes], rotation=90 if n > 8 else 0)
        ax.set_yticks(range(n), [_tick(c) for c in classes])
        ax.set(xlabel="predicted", ylabel="true")
        ax.grid(False)
        if n <= 25:  # beyond that the counts would overlap; the colour still reads
            for (i, j), count in np.ndenumerate(matrix):
                if count:
                    ax.text(j, i, f"{count:.0f}", ha="center", va="center", fontsize=8 if n <= 12 else 6,
                            color="black" if share[i, j] > 0.5 else "white")
        fig.colorbar(image, ax=ax, shrink=0.8, label="share of the true class")

    return Figure("confusion-matrix", "Confusion matrix of the best model on the test split: rows are true classes, "
                  "columns predictions; cells hold counts, shaded by the share of their row.", png(draw, (side + 1.2, side)))


def per_class_scores(test: dict[str, Any]) -> Figure:
    per_class = test["per_class"]
    classes = list(per_class)[::-1]  # first class on top
    measures = (("precision", OKABE_ITO["blue"], "o"), ("recall", OKABE_ITO["orange"], "s"), ("f1", OKABE_ITO["black"], "D"))

    def draw(fig: Canvas) -> None:
        ax = fig.add_subplot()
        for offset, (measure, colour, marker) in zip((-0.2, 0.0, 0.2), measures, strict=True):
            ax.scatter([per_class[c][measure] for c in classes], np.arange(len(classes)) + offset, color=colour,
                       marker=marker, s=28, label="F1" if measure == "f1" else measure, zorder=3)
        ax.set_yticks(range(len(classes)), [_tick(c) for c in classes])
        low = min(min(v[m] for m, _, _ in measures) for v in per_class.values())
        ax.set(xlabel="score on the test split", xlim=(max(0.0, low - 0.05), 1.01), ylim=(-0.6, len(classes) - 0.4))
        fig.legend(loc="outside right upper")

    height = max(2.4, 0.3 * len(classes) + 1.0)
    return Figure("per-class-scores", "Precision, recall and F1 of the best model for each class on the test split.",
                  png(draw, (WIDE[0], height)))


def _tick(label: str) -> str:
    """A class label as a tick label: one line of at most `TICK_CHARS`, its ``$`` drawn as itself.

    A long label squeezed the plot to nothing (matplotlib warns and clips it), and matplotlib reads
    text between two ``$`` as TeX, which can fail to parse: a label is data, never markup.
    """
    flat = " ".join(label.split())
    short = flat if len(flat) <= TICK_CHARS else flat[: TICK_CHARS - 1] + "…"
    return short.replace("$", r"\$")


def _integer_axis(ax: Axes, values: Sequence[int]) -> None:
    """Whole-number ticks, with room around a single value (the default would show 1.9 ... 2.1)."""
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlim(min(values) - 0.5, max(values) + 0.5)


def _log_axis(ax: Axes, values: Sequence[float]) -> None:
    """A log x axis spanning at least a decade, labelled at powers of ten only.

    Learning rates of a short search often lie within a factor of two: matplotlib would then label
    its minor ticks, and the labels overlap into an unreadable smear.
    """
    low, high = min(values), max(values)
    if high / low < 10:
        centre = (low * high) ** 0.5
        low, high = centre / 10**0.5, centre * 10**0.5
    ax.set_xscale("log")
    ax.set_xlim(low / 1.3, high * 1.3)
    ax.xaxis.set_minor_formatter(NullFormatter())


def png(draw: Callable[[Canvas], None], size: tuple[float, float]) -> bytes:
    """Draw on a fresh figure with the report's style and return it as PNG (no global pyplot state)."""
    with matplotlib.rc_context(STYLE):
        fig = Canvas(figsize=size, layout="constrained")
        FigureCanvasAgg(fig)
        draw(fig)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def _scored(board: Leaderboard) -> list[Row]:
    """Trials with a validation score: complete ones and those pruned after at least one epoch."""
    return [r for r in board.rows if r.score is not None and r.state in ("complete", "pruned")]


def _points(ax: Axes, rows: Sequence[Row], xs: Sequence[float]) -> None:
    """One marker per trial: colour and shape by strategy, hollow when the trial was pruned."""
    for row, x in zip(rows, xs, strict=True):
        colour, marker, _ = strategy_style(row.strategy)
        hollow = row.state != "complete"
        ax.scatter([x], [row.score], marker=marker, s=36, zorder=3, linewidths=1.2,
                   facecolors="none" if hollow else colour, edgecolors=colour)


def _score_axis(ax: Axes, rows: Sequence[Row], objective: str) -> None:
    """The y axis of a score: labelled, and kept inside [0, 1] where scores live (autoscale would show 1.04)."""
    scores = [r.score for r in rows if r.score is not None]
    margin = max(0.01, (max(scores) - min(scores)) * 0.08)
    ax.set_ylim(max(0.0, min(scores) - margin), min(1.0, max(scores)) + min(margin, 0.01))
    ax.set_ylabel(f"validation {objective}")


def _best_so_far(ordered: Sequence[tuple[float, Row]]) -> list[tuple[float, float]]:
    """(x, best completed score up to x) at each improvement, in x order."""
    steps: list[tuple[float, float]] = []
    for x, row in sorted(ordered, key=lambda item: item[0]):
        if row.state == "complete" and row.score is not None and (not steps or row.score > steps[-1][1]):
            steps.append((x, row.score))
    return steps


def _best_line(ax: Axes, steps: list[tuple[float, float]], end: float) -> None:
    xs = [x for x, _ in steps] + [max(end, steps[-1][0])]
    ys = [y for _, y in steps] + [steps[-1][1]]
    ax.step(xs, ys, where="post", color=OKABE_ITO["black"], linewidth=1.2, zorder=2)


def _legend(fig: Canvas, rows: Sequence[Row], best_line: bool) -> None:
    present = [s for s in (*STRATEGIES, None) if any(strategy_style(r.strategy) == strategy_style(s) for r in rows)]
    handles = [Line2D([], [], linestyle="", marker=strategy_style(s)[1], color=strategy_style(s)[0], label=strategy_style(s)[2]) for s in present]
    if any(r.state != "complete" for r in rows):
        handles.append(Line2D([], [], linestyle="", marker="o", markerfacecolor="none", color="#555555", label="pruned (hollow)"))
    if best_line:
        handles.append(Line2D([], [], color=OKABE_ITO["black"], label="best so far"))
    fig.legend(handles=handles, loc="outside right upper")


def _nothing_yet() -> Paragraph:
    return Paragraph("No trial has a validation score yet, so there is nothing to plot.", note=True)


def _failed_note(board: Leaderboard) -> str:
    failed = board.counts.get("fail", 0)
    return f" {failed} failed trial(s) have no score and are not drawn." if failed else ""
