"""The report's domain-adaptation section: what adapting to the target changed, against the source-only model.

"Before" is the source-only trial the search measures adaptation against (the source guard's
reference, `automl_tl.domains.source_reference`); "after" is the chosen model, refit when the run
refits. Their scores come from the study: each trial's validation scores, its labelled target test
scores (evaluation only, recorded per class too), and test.json's target test of the delivered model.

The projection needs a model and data: the run's final model through `load_model` and the run's
data read again (`Model.run_data`), as the app's mistakes gallery reads them, then the search's own
feature store and tail. A run keeps only its chosen model's weights, so "before" is the frozen
backbone's own pooling: exactly what the source-only linear probe's head reads, not any fine-tuned
source-only tail; the caption says so. Each domain is a seeded sample of at most `SAMPLE` examples,
so the section costs one backbone pass over a few hundred. A model or data that is gone leaves one
sentence in place of the figure. Like the rest of the report, modality-agnostic: the plugin reads
and preprocesses, the section only sees feature vectors.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure as Canvas

from automl_tl.contract import Example
from automl_tl.errors import UserError
from automl_tl.leaderboard import Leaderboard, Row
from automl_tl.leaderboard_columns import ranked_by
from automl_tl.model.source import final_training
from automl_tl.report.document import Block, Figure, Paragraph, Section, Status, Table
from automl_tl.report.plots import OKABE_ITO, WIDE, png
from automl_tl.vocabulary import describe
from automl_tl.vocabulary.adaptations import SOURCE_ONLY, describe_adaptation

"""Says what the report is doing now (the terminal shows it while a model loads and data passes through it)."""
SAMPLE = 200
"""Examples per domain in the projection: enough to show where each domain lies, one quick backbone pass."""
DOMAINS = {"source": ("source", OKABE_ITO["blue"], "o"), "target": ("target (unlabelled)", OKABE_ITO["vermillion"], "^")}


def section(label: str, board: Leaderboard, status: Status) -> Section | None:
    """The section of a run that had a target domain; None for a run without one."""
    if not board.adapting:
        return None
    before, after = board.source_only, board.chosen
    if after is None:
        return Section("Domain adaptation", [Paragraph("No trial has completed yet, so there is nothing to compare.", note=True)])
    blocks: list[Block] = [Paragraph(_lead(board, before, after)), _scores(board, before, after)]
    return Section("Domain adaptation", blocks + _per_class(board, before) + [projection(Path(label), after, status)])


def _lead(board: Leaderboard, before: Row | None, after: Row) -> str:
    metric = _source_metric(board)
    if after.params.get("adaptation", SOURCE_ONLY) == SOURCE_ONLY:
        guarded = " within the source guard" if (board.run.get("selection") or {}).get("margin") is not None else ""
        text = f"The search chose a source-only model (trial {after.trial}): no adapted trial did better by {board.chosen_by}{guarded}"
        if before is None or before.trial == after.trial:
            return text + ", so before and after are the same configuration."
    else:
        text = f"Adapted with {describe_adaptation(after.params)} (trial {after.trial})"
        if before is None:
            return text + "; no source-only trial completed, so there is no before to compare with."
    text += f", against the source-only trial {before.trial} ({describe(before.params)}): "
    changes = [_change(f"source validation {metric}", before.scores.get(metric), after.scores.get(metric))]
    target = (board.test or {}).get("target")
    if target and before.target_test:
        changes.append(_change("target test macro-F1 (labelled, evaluation only)", before.target_test.get("macro_f1"), target["macro_f1"]))
    return text + "; ".join(changes) + "."


def _change(what: str, old: float | None, new: float | None) -> str:
    if old is None or new is None:
        return f"{what} not recorded"
    return f"{what} {old:.4f} → {new:.4f} ({new - old:+.4f})"


def _scores(board: Leaderboard, before: Row | None, after: Row) -> Table:
    """Before and after, side by side: validation scores, then target test scores only where a labelled target test exists."""
    metric = _source_metric(board)
    test = board.test or {}
    header = ["model", "trial", "adaptation", f"source val {metric}"]
    if board.objective != metric:
        header.append(ranked_by(board.objective, True))
    labelled = bool(test.get("target")) or any(r.target_test for r in (before, after) if r is not None)
    if labelled:
        header += ["target test accuracy (eval only)", "target test macro-F1 (eval only)"]

    def row(name: str, trial: Row, target: dict[str, Any] | None, searched: bool = True) -> list[str]:
        cells = [name, str(trial.trial), describe_adaptation(trial.params)]
        cells.append(_number(trial.scores.get(metric)) if searched else "")
        if board.objective != metric:
            cells.append(_number(trial.score) if searched else "")
        if labelled:
            cells += [_number((target or {}).get("accuracy")), _number((target or {}).get("macro_f1"))]
        return cells

    separate = before is not None and before.trial != after.trial
    rows = []
    if before is not None and separate:
        rows.append(row("before: source only", before, before.target_test))
    name = "after: chosen" if separate or before is None else "before and after: source only, chosen"
    if test.get("refit") and test.get("trial") == after.trial:
        rows += [row(f"{name}, as searched", after, after.target_test),
                 row(f"{name}, {final_training(test)} (delivered)", after, test.get("target"), searched=False)]
    else:
        rows.append(row(f"{name} (delivered)", after, test.get("target") or after.target_test))
    return Table(header, rows, ["baseline"] + [""] * (len(rows) - 1) if separate else [], frozenset(header[3:]))


def _per_class(board: Leaderboard, before: Row | None) -> list[Block]:
    """Each class's target test recall and F1 before and after, where a labelled target test set was scored."""
    target = (board.test or {}).get("target")
    if not target or before is None:
        return []
    old = (before.target_test or {}).get("per_class")
    if not old:
        return [Paragraph(f"Per-class target scores of trial {before.trial} were not recorded (the run was made before "
                          "automl-tl recorded them), so per-class changes cannot be shown.", note=True)]
    rows = []
    for name, new in target["per_class"].items():
        was = old.get(name, {})
        rows.append([name, _number(was.get("recall"), ".3f"), _number(new["recall"], ".3f"), _number(was.get("f1"), ".3f"),
                     _number(new["f1"], ".3f"), _number(new["f1"] - was["f1"], "+.3f") if "f1" in was else "", str(new["support"])])
    header = ["class", "recall before", "recall after", "F1 before", "F1 after", "F1 change", "support"]
    caption = (f"Each class on the labelled target test set (evaluation only, never read to choose): before is trial "
               f"{before.trial} as the search trained it, after the delivered model.")
    return [Paragraph(caption), Table(header, rows, [], frozenset(header[1:]))]


def projection(run: Path, after: Row, status: Status) -> Figure | Paragraph:
    """Source and target examples in the first two principal components of the features the head reads, before and after."""
    try:
        features = head_features(run, status)
    except UserError as exc:
        return Paragraph(f"The feature projection is not drawn: {exc.message}.", note=True)
    counts = {d: len(f) for d, f in features["after"].items()}
    panels = [("before: frozen backbone (the linear probe's input)", features["before"]),
              (f"after: the chosen model's head input ({describe_adaptation(after.params)})", features["after"])]

    def draw(fig: Canvas) -> None:
        axes = fig.subplots(1, 2)
        for ax, (title, panel) in zip(axes, panels, strict=True):
            points, explained = principal_components(panel)
            for domain, xy in points.items():
                name, colour, marker = DOMAINS[domain]
                ax.scatter(xy[:, 0], xy[:, 1], s=12, marker=marker, color=colour, alpha=0.6, linewidths=0, label=name)
            ax.set(title=title, xlabel=f"PC1 ({explained[0]:.0%} of variance)", ylabel=f"PC2 ({explained[1]:.0%})")
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncols=2)

    caption = (f"Where the models place {counts.get('source', 0)} source examples (every split) and {counts.get('target', 0)} "
               "unlabelled target examples (seeded samples), each panel projected on its own two principal components. "
               "Before: the frozen pretrained backbone's pooled features, which the source-only linear probe reads; a run "
               "keeps only its chosen model's weights, so a fine-tuned source-only trial is not shown. After: what the "
               "chosen model's head reads, a target example's after the model's own mapping of target features, if any.")
    return Figure("adaptation-projection", caption, png(draw, (WIDE[0] * 1.5, WIDE[1] * 1.3)))


def head_features(run: Path, status: Status) -> dict[str, dict[str, np.ndarray]]:
    """``{"before" | "after": {"source" | "target": (n, width)}}``: the frozen backbone's pooled features
    and the final model's head input, for a sample of each domain; a `UserError` when the model or the data is gone."""
    from automl_tl.model.predictor import load_model  # torch loads only for a run that adapted
    from automl_tl.search.features import FeatureStore
    from automl_tl.search.train import head_inputs, input_mode
    from automl_tl.vocabulary import TrialParams

    status(f"{run}: loading the final model")
    model = load_model(run)
    status(f"{run}: reading the run's data")
    data = model.run_data()
    if data.target is None:
        raise UserError(f"the configuration of {run} no longer names a target")
    rng = random.Random(0)
    source = data.splits.train + data.splits.validation + data.splits.test
    samples = {"source": sample(source, rng), "target": sample(data.target.unlabelled, rng)}
    samples = {domain: examples for domain, examples in samples.items() if examples}
    assert model.backbone is not None and model.network is not None  # a run directory's model
    tail = model.network.tails[0]  # a run ranked on a target is never cross-validated, so its model is one tail
    store = FeatureStore(model.backbone, samples, model.labels,
                         progress=lambda what, done, total: status(f"{run}: {what} {done}/{total}"))
    params = TrialParams(**model.source.params)
    mode = input_mode(params)
    if mode != "live":  # the one backbone pass also keeps what the tail reads
        store.cached_depths = {params.freeze_depth}
    return {"before": {d: store.pooled(d)[1].numpy() for d in samples},
            "after": {d: head_inputs(tail, store, d, mode, params).numpy() for d in samples}}


def sample(examples: Sequence[Example], rng: random.Random) -> list[Example]:
    """At most `SAMPLE` of ``examples``, in their order."""
    if len(examples) <= SAMPLE:
        return list(examples)
    return [examples[i] for i in sorted(rng.sample(range(len(examples)), SAMPLE))]


def principal_components(features: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Each domain's points on the first two principal components of all domains together, and the share
    of variance each component explains."""
    joined = np.concatenate(list(features.values())).astype(np.float64)
    centred = joined - joined.mean(axis=0)
    _, singular, components = np.linalg.svd(centred, full_matrices=False)
    variance = singular**2
    explained = variance / variance.sum() if variance.sum() > 0 else np.zeros_like(variance)
    projected = centred @ components[:2].T
    bounds = np.cumsum([0, *(len(f) for f in features.values())])
    return {d: projected[a:b] for d, a, b in zip(features, bounds[:-1], bounds[1:], strict=True)}, explained


def _source_metric(board: Leaderboard) -> str:
    return board.run.get("selection", {}).get("source_metric", "macro_f1")


def _number(value: float | None, fmt: str = ".4f") -> str:
    return "" if value is None else format(value, fmt)
