"""Which configuration the search hands on: the simplest one the validation split cannot tell from the best.

The best validation score is an estimate, and on a few hundred examples (or one held-out speaker)
several configurations a clip or two apart tie: the highest of them wins by noise as often as by
merit, and a fine-tune that wins that way can test below a plain linear probe. So every completed
trial is compared with the best on the same validation examples (a paired bootstrap of the
difference in the objective); those whose difference interval reaches zero are *within noise* of
the best, and among them the one with the fewest trainable parameters is chosen — the linear
probe, whenever the fine-tunes do not beat it by more than the noise. The output says so. Fewer
counts only when it is a smaller model (`SIMPLER`): two full fine-tunes whose heads differ are one
size, and between them the better score is the better evidence.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from optuna.trial import FrozenTrial

from automl_tl.search.metrics import paired_difference, score_of
from automl_tl.vocabulary import describe_strategy

PREDICTIONS = "validation_predictions"
"""User attribute of a completed trial: its best epoch's predicted class per validation example."""
SIMPLER = 0.5
"""A trial within noise is simpler than the best only with at most this share of its trainable parameters."""


@dataclass(frozen=True)
class Choice:
    trial: FrozenTrial
    """The configuration refit and tested."""
    best: FrozenTrial
    """The highest score."""
    within: list[FrozenTrial]
    """The trials the scores cannot tell from the best (the best first)."""
    reason: str
    """One line for the output, `test.json` and the report."""
    ranked: list[FrozenTrial] = field(default_factory=list)
    """Every trial the scores compared, the best first (`automl_tl.search.crossval.candidates` reads past ``within``)."""


def choose(
    completed: list[FrozenTrial], labels: np.ndarray, n_classes: int, objective: str,
    predictions: Mapping[int, np.ndarray] | None = None, where: str = "validation",
) -> Choice | None:
    """The simplest trial within noise of the best one (None before any completed).

    ``predictions`` (by trial number, for ``labels``) default to each trial's validation
    predictions; cross-validation passes out-of-fold ones, ``where`` says which in the reason.
    An empty mapping ranks by the trials' values alone: an adapting run's validator scores the
    target as a whole, with no per-example predictions to compare (`automl_tl.domains.adapted_choice`).
    """
    if not completed:
        return None
    if predictions is None:
        predictions = {t.number: np.asarray(t.user_attrs[PREDICTIONS]) for t in completed if PREDICTIONS in t.user_attrs}
    scored = [t for t in completed if t.number in predictions]
    if not scored:  # a study recorded before predictions were kept, or a target without per-example labels
        best = max(completed, key=lambda t: (t.value or 0.0, -t.number))
        return Choice(best, best, [best], f"trial {best.number}: the best {objective} on {where}")
    score = {t.number: score_of(labels, predictions[t.number], n_classes, objective) for t in scored}
    ranked = sorted(scored, key=lambda t: (-score[t.number], t.number))
    best = ranked[0]
    differences = {t.number: paired_difference(labels, predictions[best.number], predictions[t.number], n_classes, objective)
                   for t in scored if t is not best}
    within = [best] + [t for t in scored if t is not best and differences[t.number][1] <= 0]
    smaller = [t for t in within[1:] if simplicity(t)[0] <= SIMPLER * simplicity(best)[0]]
    chosen = min(smaller, key=simplicity) if smaller else best
    if chosen is best:
        others = len(within) - 1
        tied = (f"; {others} other trial(s) within noise of it are no smaller models "
                f"(more than {SIMPLER:.0%} of its trainable parameters)") if others else ""
        return Choice(best, best, within, f"trial {best.number}: the best {objective} on {where}{tied}", ranked)
    gain, low, high = differences[chosen.number]
    return Choice(chosen, best, within, (
        f"trial {chosen.number} ({_name(chosen)}, {_parameters(chosen)}): the best, trial {best.number} ({_name(best)}), "
        f"is {gain:+.4f} {objective} above it on {where}, within noise (95 % interval {low:+.4f} … {high:+.4f}); "
        "the simpler model is kept"
    ), ranked)


def at_ceiling(choice: Choice, labels: np.ndarray) -> bool:
    """Whether the validation split has nothing left to rank by: the best trial misses at most one of its
    examples and others tie with it. Then the split says nothing of how the configurations differ on data
    unlike it, and data that differs in a way the split does not hold out (words no training clip says,
    other devices) can score them far apart: docs/results.md's speaker task tested 0.78–0.92 so."""
    predicted = choice.best.user_attrs.get(PREDICTIONS)
    return len(choice.within) > 1 and predicted is not None and int((np.asarray(predicted) != labels).sum()) <= 1


def simplicity(trial: FrozenTrial) -> tuple[float, int]:
    """Fewest trainable parameters first (a linear probe before any fine-tune), then the earliest."""
    return float(trial.user_attrs.get("trainable_params") or np.inf), trial.number


def _name(trial: FrozenTrial) -> str:
    if trial.user_attrs.get("baseline"):
        return str(trial.user_attrs["baseline"])
    return describe_strategy(trial.user_attrs.get("params", {}))


def _parameters(trial: FrozenTrial) -> str:
    count = trial.user_attrs.get("trainable_params")
    return f"{count:,} trainable parameters" if count is not None else "parameters unknown"
