"""Which configuration the search hands on: the simplest one the validation split cannot tell from the best.

The best validation score is an estimate, and on a few hundred examples (or one held-out speaker)
several configurations a clip or two apart tie: the highest of them wins by noise as often as by
merit, and a fine-tune that wins that way can test below a plain linear probe. So every completed
trial is compared with the best on the same validation examples (a paired bootstrap of the
difference in the objective); those whose difference interval reaches zero are *within noise* of
the best, and among them the one with the fewest trainable parameters is chosen — the linear
probe, whenever the fine-tunes do not beat it by more than the noise. The output says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from optuna.trial import FrozenTrial

from automl_tl.search.metrics import paired_difference
from automl_tl.vocabulary import describe_strategy

PREDICTIONS = "validation_predictions"
"""User attribute of a completed trial: its best epoch's predicted class per validation example."""


@dataclass(frozen=True)
class Choice:
    trial: FrozenTrial
    """The configuration refit and tested."""
    best: FrozenTrial
    """The highest validation score."""
    reason: str
    """One line for the output, `test.json` and the report."""


def choose(completed: list[FrozenTrial], labels: np.ndarray, n_classes: int, objective: str) -> Choice | None:
    """The simplest completed trial within validation noise of the best one (None before any completed)."""
    if not completed:
        return None
    best = max(completed, key=lambda t: (t.value or 0.0, -t.number))
    if PREDICTIONS not in best.user_attrs:  # a study recorded before predictions were kept
        return Choice(best, best, f"trial {best.number}: the best validation {objective}")
    within = [best]
    for trial in completed:
        if trial is best or PREDICTIONS not in trial.user_attrs:
            continue
        _, low, _ = paired_difference(labels, np.asarray(best.user_attrs[PREDICTIONS]),
                                      np.asarray(trial.user_attrs[PREDICTIONS]), n_classes, objective)
        if low <= 0:
            within.append(trial)
    chosen = min(within, key=_simplicity)
    if chosen is best:
        others = len(within) - 1
        tied = f"; {others} other trial(s) within noise of it have more trainable parameters" if others else ""
        return Choice(best, best, f"trial {best.number}: the best validation {objective}{tied}")
    gain, low, high = paired_difference(labels, np.asarray(best.user_attrs[PREDICTIONS]),
                                        np.asarray(chosen.user_attrs[PREDICTIONS]), n_classes, objective)
    what = f"{_name(chosen)}, {_parameters(chosen)}"
    return Choice(chosen, best, (
        f"trial {chosen.number} ({what}): the best, trial {best.number} ({_name(best)}), is {gain:+.4f} {objective} "
        f"above it on validation, within noise (95 % interval {low:+.4f} … {high:+.4f}); the simpler model is kept"
    ))


def _simplicity(trial: FrozenTrial) -> tuple[float, int]:
    """Fewest trainable parameters first (a linear probe before any fine-tune), then the earliest."""
    return float(trial.user_attrs.get("trainable_params") or np.inf), trial.number


def _name(trial: FrozenTrial) -> str:
    if trial.user_attrs.get("baseline"):
        return str(trial.user_attrs["baseline"])
    return describe_strategy(trial.user_attrs.get("params", {}))


def _parameters(trial: FrozenTrial) -> str:
    count = trial.user_attrs.get("trainable_params")
    return f"{count:,} trainable parameters" if count is not None else "parameters unknown"
